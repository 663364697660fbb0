//! Paper sources: HTTP in, `Vec<Paper>` out.
//!
//! Each source lives in its own file behind the [`Source`] trait, and knows only how to ask one
//! service for one day's papers and turn the answer into [`Paper`]s. Sources do not touch the
//! database (the fetch job in `jobs` upserts what they return) and never decide what is new for
//! whom. Retries, timeouts and the User-Agent are shared in [`http`].

pub mod hf;
pub mod http;

use crate::model::Paper;
use chrono::NaiveDate;
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

/// A service that lists papers by day.
pub trait Source: Send + Sync {
    /// The name used in `source_state`, `paperboy fetch --source NAME` and logs (`hf`, ...).
    fn name(&self) -> &'static str;

    /// Everything the source lists for `date` (a UTC calendar date).
    fn fetch_day(&self, date: NaiveDate) -> BoxFuture<'_, Result<SourceBatch, SourceError>>;
}
