//! Read-only queries for operators: what `/metrics` and `/readyz` derive from the database.
//!
//! Derived at scrape time rather than counted in memory, so that several instances sharing one
//! PostgreSQL database report the same queue depth and the same last fetch. Nothing here writes.

use super::{Store, StoreError, from_ms, on_pool};
use chrono::{DateTime, Utc};

/// How one source's fetches have gone, from `source_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    pub source: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl Store {
    /// How many deliveries are in each status (`planned`, `sending`, `sent`, …). Statuses with
    /// no delivery are absent.
    pub async fn delivery_status_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as::<_, (String, i64)>(
            "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status"
        )
        .fetch_all(p)
        .await)?)
    }

    /// When the most recent digest was accepted by the SMTP server (or written to a file).
    pub async fn last_sent_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms: Option<i64> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT MAX(sent_at) FROM deliveries WHERE status = 'sent'"
        )
        .fetch_one(p)
        .await)?;
        Ok(ms.map(from_ms))
    }

    /// Every source that has run at least once, by name.
    pub async fn source_states(&self) -> Result<Vec<SourceState>, StoreError> {
        type Row = (String, Option<i64>, Option<i64>, Option<String>);
        let rows: Vec<Row> = on_pool!(self, p => sqlx::query_as::<_, Row>(
            "SELECT source, last_success_at, last_error_at, last_error FROM source_state ORDER BY source"
        )
        .fetch_all(p)
        .await)?;
        Ok(rows
            .into_iter()
            .map(
                |(source, last_success_at, last_error_at, last_error)| SourceState {
                    source,
                    last_success_at: last_success_at.map(from_ms),
                    last_error_at: last_error_at.map(from_ms),
                    last_error,
                },
            )
            .collect())
    }
}
