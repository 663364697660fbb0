//! The outbox: `deliveries` and `delivery_papers`.
//!
//! A delivery is one digest for one subscriber and one local date. It moves
//! `planned → sending (leased) → sent`, or `sending → retry → … → failed`; `empty` records that a
//! date was planned and nothing matched, so it is not planned again. The unique key on
//! (subscriber, digest date) makes planning twice harmless, and the one on (subscriber, paper)
//! makes sending a paper twice impossible.

use super::SubscriberRow;
use super::{Store, StoreError, dialect, from_ms, on_pool, to_ms};
use crate::model::{DigestDate, SubscriberId};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Planned,
    Sending,
    Sent,
    Retry,
    Failed,
    Empty,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Retry => "retry",
            Self::Failed => "failed",
            Self::Empty => "empty",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "planned" => Self::Planned,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "retry" => Self::Retry,
            "failed" => Self::Failed,
            "empty" => Self::Empty,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PlannedPaper {
    pub paper_id: String,
    pub rank: u32,
    pub score: f32,
    /// JSON: the explanation, as the matcher gave it.
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct PlannedDelivery {
    pub subscriber_id: SubscriberId,
    pub digest_date: DigestDate,
    pub planned_at: DateTime<Utc>,
    pub message_id: String,
    /// Best first. Empty means "nothing matched": recorded, never sent.
    pub papers: Vec<PlannedPaper>,
}

/// A delivery this worker holds the lease on.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub subscriber_id: SubscriberId,
    pub digest_date: NaiveDate,
    pub attempts: i64,
    pub message_id: String,
    pub planned_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryPaper {
    pub paper_id: String,
    pub rank: i64,
    pub score: f64,
    pub reason: String,
}

/// A delivery as `paperboy deliveries` shows it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub subscriber_id: i64,
    pub email: String,
    pub digest_date: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub planned_at: i64,
    pub sent_at: Option<i64>,
    pub papers: i64,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: i64,
    subscriber_id: i64,
    digest_date: String,
    attempts: i64,
    message_id: String,
    planned_at: i64,
}

impl Store {
    /// Takes up to `limit` due deliveries under a lease held by `owner` until `lease_until`.
    /// Due means planned or retrying with `next_attempt_at <= due_before`, or sending under a
    /// lease that expired (its worker died) before `now`.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        due_before: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let sql = dialect::claim_due(self.is_postgres());
        let rows: Vec<ClaimRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(owner)
            .bind(to_ms(lease_until))
            .bind(to_ms(due_before))
            .bind(to_ms(now))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(ClaimedDelivery {
                    id: r.id,
                    subscriber_id: SubscriberId(r.subscriber_id),
                    digest_date: r.digest_date.parse().ok()?,
                    attempts: r.attempts,
                    message_id: r.message_id,
                    planned_at: from_ms(r.planned_at),
                })
            })
            .collect())
    }

    pub async fn delivery_papers(
        &self,
        delivery_id: i64,
    ) -> Result<Vec<DeliveryPaper>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT paper_id, rank, score, reason FROM delivery_papers
              WHERE delivery_id = $1 ORDER BY rank"
        )
        .bind(delivery_id)
        .fetch_all(p)
        .await)?)
    }

    /// The planned papers of many deliveries at once, best first within each (the send job
    /// loads a whole claimed batch in one query instead of one per message).
    pub async fn delivery_papers_of(
        &self,
        delivery_ids: &[i64],
    ) -> Result<HashMap<i64, Vec<DeliveryPaper>>, StoreError> {
        let mut out: HashMap<i64, Vec<DeliveryPaper>> = HashMap::new();
        // Bounded chunks stay under both databases' bind-parameter limits.
        for chunk in delivery_ids.chunks(super::IN_LIST_MAX) {
            let sql = format!(
                "SELECT delivery_id, paper_id, rank, score, reason FROM delivery_papers
                  WHERE delivery_id IN ({}) ORDER BY delivery_id, rank",
                placeholders(chunk.len())
            );
            let rows: Vec<(i64, String, i64, f64, String)> = on_pool!(self, p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await
            })?;
            for (delivery, paper_id, rank, score, reason) in rows {
                out.entry(delivery).or_default().push(DeliveryPaper {
                    paper_id,
                    rank,
                    score,
                    reason,
                });
            }
        }
        Ok(out)
    }

    /// The subscribers of a claimed batch, in one query.
    pub async fn subscribers_by_ids(&self, ids: &[i64]) -> Result<Vec<SubscriberRow>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::IN_LIST_MAX) {
            let sql = format!(
                "SELECT id, email, status, interests, frequency, send_time, timezone, max_papers,
                        token_version, created_at, confirmed_at
                   FROM subscribers WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let rows: Vec<SubscriberRow> = on_pool!(self, p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await
            })?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Marks a delivery sent. Only the lease holder can: `false` means the lease was lost.
    pub async fn mark_sent(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => sqlx::query(
            "UPDATE deliveries SET status = 'sent', sent_at = $3, lease_owner = NULL,
               lease_until = NULL, last_error = NULL
             WHERE id = $1 AND lease_owner = $2 AND status = 'sending'"
        )
        .bind(id)
        .bind(owner)
        .bind(to_ms(now))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Marks several deliveries sent in one statement; returns those whose lease was still
    /// ours (the others were lost and are left alone).
    pub async fn mark_sent_many(
        &self,
        ids: &[i64],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<HashSet<i64>, StoreError> {
        let mut kept = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(super::IN_LIST_MAX) {
            let sql = format!(
                "UPDATE deliveries SET status = 'sent', sent_at = $2, lease_owner = NULL,
                   lease_until = NULL, last_error = NULL
                 WHERE lease_owner = $1 AND status = 'sending' AND id IN ({})
                 RETURNING id",
                (3..3 + chunk.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let done: Vec<i64> = on_pool!(self, p => {
                let mut q = sqlx::query_scalar(&sql).bind(owner).bind(to_ms(now));
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await
            })?;
            kept.extend(done);
        }
        Ok(kept)
    }

    /// A temporary failure: try again at `next_attempt_at`.
    pub async fn mark_retry(
        &self,
        id: i64,
        owner: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => sqlx::query(
            "UPDATE deliveries SET status = 'retry', next_attempt_at = $3, last_error = $4,
               lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2 AND status = 'sending'"
        )
        .bind(id)
        .bind(owner)
        .bind(to_ms(next_attempt_at))
        .bind(error)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// A permanent failure: the delivery will not be tried again.
    pub async fn mark_failed(&self, id: i64, owner: &str, error: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_error = $3, lease_owner = NULL,
               lease_until = NULL
             WHERE id = $1 AND lease_owner = $2 AND status = 'sending'"
        )
        .bind(id)
        .bind(owner)
        .bind(error)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Gives back every lease `owner` holds without having tried to send (on shutdown), so
    /// another worker can take them at once instead of waiting for the lease to expire.
    pub async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let done = on_pool!(self, p => sqlx::query(
            "UPDATE deliveries
                SET status = CASE WHEN attempts > 1 THEN 'retry' ELSE 'planned' END,
                    attempts = attempts - 1, lease_owner = NULL, lease_until = NULL
              WHERE lease_owner = $1 AND status = 'sending'"
        )
        .bind(owner)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Extends every lease `owner` holds to `until`: a live worker keeps what it is sending,
    /// however slow the server, while a dead one's leases run out soon.
    pub async fn renew_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(on_pool!(self, p => sqlx::query(
            "UPDATE deliveries SET lease_until = $2 WHERE lease_owner = $1 AND status = 'sending'"
        )
        .bind(owner)
        .bind(to_ms(until))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// Hands back one delivery this worker claimed but did not try (shutdown, circuit open).
    pub async fn release_lease(&self, id: i64, owner: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => sqlx::query(
            "UPDATE deliveries
                SET status = CASE WHEN attempts > 1 THEN 'retry' ELSE 'planned' END,
                    attempts = attempts - 1, lease_owner = NULL, lease_until = NULL
              WHERE id = $1 AND lease_owner = $2 AND status = 'sending'"
        )
        .bind(id)
        .bind(owner)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Who holds leases now (for finding the leases of workers known to be dead).
    pub async fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT DISTINCT lease_owner FROM deliveries
              WHERE status = 'sending' AND lease_owner IS NOT NULL"
        )
        .fetch_all(p)
        .await)?)
    }

    /// Ends the leases of a worker known to be dead, so they are claimed at once. The rows stay
    /// `sending` (their message may have gone out), so the attempt is counted.
    pub async fn expire_leases_of(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(on_pool!(self, p => sqlx::query(
            "UPDATE deliveries SET lease_until = 0 WHERE lease_owner = $1 AND status = 'sending'"
        )
        .bind(owner)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// Counts of deliveries per status (for tests, `check` and metrics).
    pub async fn delivery_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status"
        )
        .fetch_all(p)
        .await)?)
    }

    /// Deliveries, newest first, optionally of one status.
    pub async fn list_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT d.id, d.subscriber_id, s.email, d.digest_date, d.status, d.attempts,
                    d.last_error, d.planned_at, d.sent_at,
                    (SELECT COUNT(*) FROM delivery_papers dp WHERE dp.delivery_id = d.id) AS papers
               FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
              WHERE ($1 IS NULL OR d.status = $1)
              ORDER BY d.planned_at DESC, d.id DESC
              LIMIT $2"
        )
        .bind(status.map(DeliveryStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?)
    }
}

impl Store {
    /// Makes every delivery waiting for its retry backoff due at `now` (`paperboy send`).
    pub async fn make_retries_due(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(on_pool!(self, p => sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $1 WHERE status = 'retry' AND next_attempt_at > $1"
        )
        .bind(to_ms(now))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// How many deliveries are due at `now` (for progress bars and metrics).
    pub async fn count_due(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries
              WHERE (status IN ('planned', 'retry') AND next_attempt_at <= $1)
                 OR (status = 'sending' AND lease_until < $1)"
        )
        .bind(to_ms(now))
        .fetch_one(p)
        .await)?;
        Ok(n as u64)
    }
}

/// `$1, $2, …, $n`
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_with_subscriber;

    fn at(minute: i64) -> DateTime<Utc> {
        "2024-10-25T09:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(minute)
    }

    /// A store with one subscriber and these deliveries: (status, next attempt minute, lease
    /// end minute). Returns the store and the deliveries' ids in the order given.
    async fn outbox(
        dir: &tempfile::TempDir,
        rows: &[(&str, i64, Option<i64>)],
    ) -> (Store, Vec<i64>) {
        let (store, who) = store_with_subscriber(dir, "claim.db", at(0)).await;
        let mut ids = Vec::new();
        for (i, (status, next, lease)) in rows.iter().enumerate() {
            let id: i64 = on_pool!(store, p => sqlx::query_scalar(
                "INSERT INTO deliveries (subscriber_id, digest_date, status, next_attempt_at,
                   lease_owner, lease_until, message_id, planned_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $4) RETURNING id",
            )
            .bind(who.0)
            .bind(format!("2024-09-{:02}", i + 1))
            .bind(*status)
            .bind(to_ms(at(*next)))
            .bind(lease.map(|_| "other-worker"))
            .bind(lease.map(|m| to_ms(at(m))))
            .bind(format!("digest.test.{i}"))
            .fetch_one(p)
            .await)
            .unwrap();
            ids.push(id);
        }
        (store, ids)
    }

    #[tokio::test]
    async fn claims_take_every_kind_of_due_row_oldest_first_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = outbox(
            &dir,
            &[
                ("planned", 5, None),     // 0: due
                ("retry", 2, None),       // 1: due, oldest
                ("sending", 3, Some(9)),  // 2: lease ended at 9 < now (10): reclaimed
                ("sending", 1, Some(30)), // 3: lease still runs: not ours
                ("retry", 20, None),      // 4: not yet due
                ("planned", 5, None),     // 5: due, same time as 0, larger id
                ("sent", 0, None),        // 6: done
                ("failed", 0, None),      // 7: done
                ("planned", 11, None),    // 8: not yet due
            ],
        )
        .await;
        let now = at(10);
        let lease = at(12);
        let first = store.claim_due("me", now, now, lease, 3).await.unwrap();
        let second = store.claim_due("me", now, now, lease, 3).await.unwrap();
        let third = store.claim_due("me", now, now, lease, 3).await.unwrap();
        let got = |b: &[ClaimedDelivery]| b.iter().map(|d| d.id).collect::<Vec<_>>();
        let mut first_ids = got(&first);
        first_ids.sort_unstable();
        let mut want = vec![ids[1], ids[2], ids[0]];
        want.sort_unstable();
        assert_eq!(
            first_ids, want,
            "the three oldest due rows, whatever their status"
        );
        assert_eq!(got(&second), vec![ids[5]], "then the one left");
        assert!(
            third.is_empty(),
            "nothing else is due: {third:?}",
            third = got(&third)
        );
        assert!(first.iter().all(|d| d.attempts == 1));
    }

    /// The claim must read only the rows it takes: at 300,000 deliveries a claim that sorted
    /// every due row made the send rate fall with the size of the day.
    #[tokio::test]
    async fn the_claim_walks_the_due_index_and_sorts_only_what_it_takes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = outbox(&dir, &[("planned", 0, None)]).await;
        let sql = dialect::claim_due(false);
        let plan: Vec<(i64, i64, i64, String)> = on_pool!(store, p => sqlx::query_as(
            &format!("EXPLAIN QUERY PLAN {sql}"))
            .bind("me")
            .bind(0i64)
            .bind(0i64)
            .bind(0i64)
            .bind(10i64)
            .fetch_all(p)
            .await)
        .unwrap();
        let steps: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
        let searches = steps
            .iter()
            .filter(|s| {
                s.starts_with("SEARCH deliveries USING") && s.contains("deliveries_due_order")
            })
            .count();
        assert_eq!(searches, 3, "each arm searches the due index: {steps:#?}");
        assert!(
            !steps
                .iter()
                .any(|s| s.contains("MULTI-INDEX OR") || s.starts_with("SCAN deliveries")),
            "no arm scans or ORs over the table: {steps:#?}"
        );
    }
}
