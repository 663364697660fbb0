//! `source_state`: per source, the checkpoint (the last day fetched), the last success and the
//! last error, the conditional-GET validators of its listing, and what staleness needs (when it
//! first ran, when it last produced papers).
//!
//! The fetch job writes it after every run; `paperboy check`, `paperboy papers`, catch-up and
//! staleness read it. Not for deciding what is stale (that rule lives in `jobs::fetch`).

use super::{Store, StoreError, from_ms, on_pool, to_ms};
use chrono::{DateTime, NaiveDate, Utc};

/// Everything `source_state` knows about one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStatus {
    pub source: String,
    /// The last day fetched, YYYY-MM-DD.
    pub checkpoint: Option<NaiveDate>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub first_run_at: Option<DateTime<Utc>>,
    /// The last successful run that produced at least one paper.
    pub last_papers_at: Option<DateTime<Utc>>,
    /// Papers and skipped items in the last successful run.
    pub last_fetched: Option<i64>,
    pub last_skipped: Option<i64>,
}

/// How one successful run went, for [`Store::record_source_run`].
#[derive(Debug, Clone, Default)]
pub struct SourceRun<'a> {
    /// The day the run covered; the checkpoint only moves forward.
    pub day: Option<NaiveDate>,
    pub fetched: usize,
    pub skipped: usize,
    /// New validators of the listing; `None` keeps the stored ones (a 304, or no listing).
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

type Row = (
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

const COLUMNS: &str = "source, checkpoint, last_success_at, last_error_at, last_error, etag, \
    last_modified, first_run_at, last_papers_at, last_fetched, last_skipped";

fn from_row(r: Row) -> SourceStatus {
    SourceStatus {
        source: r.0,
        checkpoint: r.1.and_then(|d| d.parse().ok()),
        last_success_at: r.2.map(from_ms),
        last_error_at: r.3.map(from_ms),
        last_error: r.4,
        etag: r.5,
        last_modified: r.6,
        first_run_at: r.7.map(from_ms),
        last_papers_at: r.8.map(from_ms),
        last_fetched: r.9,
        last_skipped: r.10,
    }
}

impl Store {
    /// The state of every source that has run at least once, by name.
    pub async fn source_statuses(&self) -> Result<Vec<SourceStatus>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM source_state ORDER BY source");
        let rows: Vec<Row> =
            on_pool!(self, p => sqlx::query_as::<_, Row>(&sql).fetch_all(p).await)?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    pub async fn source_status(&self, source: &str) -> Result<Option<SourceStatus>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM source_state WHERE source = $1");
        let row: Option<Row> = on_pool!(self, p => sqlx::query_as::<_, Row>(&sql)
            .bind(source)
            .fetch_optional(p)
            .await)?;
        Ok(row.map(from_row))
    }

    /// Records a successful run: checkpoint forward, validators, counts, and `last_papers_at`
    /// when it produced papers.
    pub async fn record_source_run(
        &self,
        source: &str,
        run: &SourceRun<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let papers_at = (run.fetched > 0).then(|| to_ms(now));
        on_pool!(self, p => sqlx::query(
            "INSERT INTO source_state (source, checkpoint, last_success_at, first_run_at,
               last_papers_at, last_fetched, last_skipped, etag, last_modified)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (source) DO UPDATE SET
               checkpoint = CASE WHEN excluded.checkpoint IS NULL THEN source_state.checkpoint
                                 WHEN source_state.checkpoint IS NULL OR excluded.checkpoint > source_state.checkpoint
                                 THEN excluded.checkpoint ELSE source_state.checkpoint END,
               last_success_at = excluded.last_success_at,
               first_run_at = COALESCE(source_state.first_run_at, excluded.first_run_at),
               last_papers_at = COALESCE(excluded.last_papers_at, source_state.last_papers_at),
               last_fetched = excluded.last_fetched,
               last_skipped = excluded.last_skipped,
               etag = CASE WHEN excluded.etag IS NULL AND excluded.last_modified IS NULL
                           THEN source_state.etag ELSE excluded.etag END,
               last_modified = CASE WHEN excluded.etag IS NULL AND excluded.last_modified IS NULL
                           THEN source_state.last_modified ELSE excluded.last_modified END",
        )
        .bind(source)
        .bind(run.day.map(|d| d.to_string()))
        .bind(to_ms(now))
        .bind(papers_at)
        .bind(run.fetched as i64)
        .bind(run.skipped as i64)
        .bind(run.etag)
        .bind(run.last_modified)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Records a failed run (the error text names the URL and what to check).
    pub async fn record_source_failure(
        &self,
        source: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO source_state (source, last_error, last_error_at, first_run_at)
             VALUES ($1, $2, $3, $3)
             ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error,
               last_error_at = excluded.last_error_at,
               first_run_at = COALESCE(source_state.first_run_at, excluded.first_run_at)",
        )
        .bind(source)
        .bind(error)
        .bind(to_ms(now))
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
