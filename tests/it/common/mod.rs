//! Shared harness for the end-to-end tests: the real parts a user would run, on loopback. One
//! module per part; everything is re-exported here, so a test says `use crate::common::*`.
//!
//! - `smtp_sink`: [`SmtpSink`], Postfix's `smtp-sink` (a real SMTP server we did not write) on a
//!   free port, dumping every mail transaction to a file; `received_mail`: [`ReceivedMail`]
//!   reads those files (and the file transport's `.eml` files) back.
//! - `hf_server`: [`FixtureServer`], an axum server speaking the Hugging Face daily-papers API,
//!   serving the real fixture bodies from `tests/fixtures/hf/`, with per-date faults.
//! - `app`: [`TestApp`], a temporary directory with a `paperboy.toml` and a database, and a way
//!   to run the built `paperboy` binary at a chosen "now" (`PAPERBOY_NOW`); `process`: how a
//!   program is run ([`Invocation`]) and what it printed ([`CmdOutput`]).
//! - `postgres`: the database is a SQLite file, or with `PAPERBOY_TEST_DATABASE=postgres` a fresh
//!   PostgreSQL database on 127.0.0.1:5432 ([`PgDatabase`]) that is dropped when the test ends.
//! - `tls_relay`: [`TlsRelay`], aiosmtpd with STARTTLS or implicit TLS and AUTH, with a
//!   certificate from a private CA ([`TestCa`], made with `openssl`).
//! - `dovecot`: [`Dovecot`], a real IMAP server with TLS serving one mailbox, for the bounce
//!   mailbox.
//! - `tools`: missing tools, free ports, polling.
//!
//! Tools a developer laptop may lack (smtp-sink) make a test skip with a printed reason, unless
//! `PAPERBOY_REQUIRE_ALL=1` is set (CI sets it): then a missing tool fails the test.

mod app;
mod dovecot;
mod hf_server;
mod postgres;
mod process;
mod received_mail;
mod smtp_sink;
mod tls_relay;
mod tools;

pub use app::*;
pub use dovecot::*;
pub use hf_server::*;
pub use postgres::*;
pub use process::*;
pub use received_mail::*;
pub use smtp_sink::*;
pub use tls_relay::*;
pub use tools::*;
