//! The integration tests, as one test binary: each module is one area (the former
//! `tests/<area>.rs`), so a test's name says where it lives (`digest_flow::…`, `web_rules::…`),
//! and `cargo nextest run --test it digest_flow::` runs one area.
//!
//! One binary, not one per area: the shared harness is compiled and linked once instead of
//! once per file (27 links filled CI's disk once). A new area is a module here, not a new
//! `tests/*.rs` file, which cargo would build as a binary of its own.
//!
//! Tests run in one process under `cargo test` (as threads) and one process per test under
//! nextest; both work because nothing here changes process-wide state: no environment
//! variables are set, no signal handlers installed, and the daemon always runs as a child
//! process. The one static that tests share in-process is the arXiv API pacer (`arxiv_api`),
//! which only ever makes a test wait longer.
//!
//! Support modules (no tests of their own): `common`, a folder with one module per part
//! (`smtp_sink`, `received_mail`, `hf_server`, `app` with `TestApp`, `process`, `postgres`,
//! `tools`) re-exported as `crate::common::*`; `delivery_support`, `ops_support`,
//! `sources_support`, `web_common`.

mod common;
mod delivery_support;
mod ops_support;
mod sources_support;
mod web_common;

mod browser;
mod crash_delivery;
mod db_copy;
mod delivery_bounces;
mod delivery_dkim;
mod delivery_faults;
mod delivery_pool;
mod delivery_schedule;
mod delivery_tls;
mod delivery_webhooks;
mod digest_flow;
mod leader_lease;
mod matching_feedback;
mod matching_meaning;
mod matching_profile;
mod ops_check;
mod ops_metrics;
mod ops_notify;
mod ops_pg_restart;
mod ops_shutdown;
mod ops_systemd;
mod scaleout;
mod source_arxiv;
mod source_feeds;
mod source_hf;
mod source_oai;
mod subscriber_import;
mod web_flow;
mod web_postgres;
mod web_profile;
mod web_rules;
