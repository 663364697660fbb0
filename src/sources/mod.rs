//! Paper sources: HTTP in, `Vec<Paper>` out.
//!
//! Each source lives in its own file behind the [`Source`] trait, and knows only how to ask one
//! service for its latest listing or one past day's papers and turn the answer into [`Paper`]s:
//! Hugging Face (`hf`), the arXiv listing with the arXiv API or OAI-PMH behind it for past days
//! (`arxiv_rss`, `arxiv_api`, `arxiv_oai`, all read by `arxiv_xml`), and any RSS/Atom feed
//! (`feed`). Sources do not touch
//! the database (the fetch job in `jobs` upserts what they return, merges papers across sources
//! and keeps each source's checkpoint and validators) and never decide what is new for whom.
//! Retries, timeouts, conditional GET, pacing and the User-Agent are shared in [`http`].

pub mod arxiv_api;
pub mod arxiv_oai;
pub mod arxiv_rss;
pub mod arxiv_xml;
pub mod feed;
pub mod hf;
pub mod http;

use crate::model::Paper;
use chrono::{NaiveDate, Weekday};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One source's answer for one day.
#[derive(Debug, Default)]
pub struct SourceBatch {
    pub papers: Vec<Paper>,
    /// Items that could not be read. A broken item never fails the batch; it is counted and
    /// reported so the operator can see it.
    pub skipped: Vec<SkippedItem>,
    /// HTTP requests made (pages followed).
    pub requests: u32,
    /// Papers that may only update a known paper, never add one: arXiv's `replace` and
    /// `replace-cross` announcements (and `cross` unless `sources.arxiv.cross_lists`).
    pub updates: Vec<Paper>,
    /// The arXiv announce type of each listed paper, by key (`paper_sources.announce_type`).
    pub announce_types: HashMap<String, String>,
    /// The source name to record these papers under, when not the source's own (the arXiv
    /// source's API answers are `arxiv-api`).
    pub via: Option<String>,
    /// The server answered 304: nothing changed since the validators we sent.
    pub not_modified: bool,
    /// The validators of this answer, to send next time (conditional GET).
    pub validators: http::Validators,
}

#[derive(Debug, Clone)]
pub struct SkippedItem {
    /// Where the item was: page and position within the page, from 0.
    pub page: u32,
    pub position: usize,
    pub reason: String,
}

/// Why a whole fetch failed. Messages name the URL and say what to check.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{url} answered HTTP {status} after {attempts} attempt(s){hint}")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
        hint: String,
    },
    #[error(
        "{url} did not answer within {timeout_secs} s after {attempts} attempt(s); check that the source is reachable or raise `sources.timeout_secs`"
    )]
    Timeout {
        url: String,
        timeout_secs: u64,
        attempts: u32,
    },
    #[error(
        "could not connect to {url} after {attempts} attempt(s): {detail}; check `sources.<name>.base_url` and the network"
    )]
    Connect {
        url: String,
        attempts: u32,
        detail: String,
    },
    #[error("{url} sent a body paperboy cannot read: {detail}")]
    Malformed { url: String, detail: String },
    #[error("invalid source configuration: {0}")]
    Config(String),
}

/// A service that lists papers.
pub trait Source: Send + Sync {
    /// The name used in `source_state`, `paper_sources`, `paperboy fetch --source NAME` and logs
    /// (`hf`, `arxiv`, a feed's name).
    fn name(&self) -> &str;

    /// Everything the source lists for `date` (a UTC calendar date): the past days of catch-up
    /// and `paperboy fetch --from/--to`. A source that can only list what is current
    /// ([`Source::can_fetch_past_days`] false) lists that.
    fn fetch_day(&self, date: NaiveDate) -> BoxFuture<'_, Result<SourceBatch, SourceError>>;

    /// The source's current listing, for the scheduled fetch of `today`, as a conditional GET
    /// with the validators of the last answer where the source supports it.
    fn fetch_latest(
        &self,
        today: NaiveDate,
        validators: http::Validators,
    ) -> BoxFuture<'_, Result<SourceBatch, SourceError>> {
        let _ = validators;
        self.fetch_day(today)
    }

    /// Whether [`Source::fetch_day`] can list a past day (catch-up after downtime, backfill).
    fn can_fetch_past_days(&self) -> bool {
        true
    }

    /// Whether the source is expected to list papers on this UTC weekday: days without are
    /// never counted towards staleness (`sources.stale_after_days`).
    fn announces_on(&self, weekday: Weekday) -> bool {
        let _ = weekday;
        true
    }

    /// Where the source is, for `paperboy check` and error messages.
    fn location(&self) -> String;
}
