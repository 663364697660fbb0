//! The statements planning runs at scale: subscribers read in pages, everything planning needs
//! to know about a page read with a handful of range queries, and a page of deliveries written
//! in one transaction.
//!
//! What it is for: `jobs::plan` over 100,000 subscribers without 100,000 × 6 round trips; one
//! subscriber (`paperboy preview`) is read as a page of one, with the same statements. What it
//! is not for: deciding who is due or what to send, or what a vote means for ranking
//! (`matching::ProfileSignals`).
//!
//! Pages are ranges of subscriber ids (`after < id <= last`), so each per-page read is one
//! range scan on an index whose first column is `subscriber_id`, whatever the page holds.

use super::dialect;
use super::leader::check_fence;
use super::{
    LeaderFence, PlannedDelivery, Store, StoreError, SubscriberRow, from_ms, on_pool, to_ms,
};
use crate::model::{DigestDate, Profile};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// At most this many feedback votes per subscriber count (the newest).
const VOTES_PER_SUBSCRIBER: usize = 200;
/// Rows per multi-row `INSERT`. (Its parameters are anonymous on SQLite, see
/// [`dialect::value_rows`]: with numbered ones binding 500 rows × 6 took longer than inserting.)
const INSERT_ROWS: usize = 50;

/// What planning needs to know about the subscribers of one page (ids `after < id <= last`).
#[derive(Debug, Default)]
pub struct PageHistory {
    /// Dates (on or after the earliest asked) that already have a delivery, per subscriber.
    pub planned_dates: HashSet<(i64, String)>,
    /// When each subscriber's latest digest was planned.
    pub last_planned: HashMap<i64, DateTime<Utc>>,
    /// Papers first seen at or after `since` already sent to each subscriber, with the time
    /// each paper was first seen (each subscriber's own window starts later or at `since`).
    pub delivered: HashMap<i64, Vec<(String, DateTime<Utc>)>>,
    /// Stated profiles: authors, categories, category mode, examples.
    pub profiles: HashMap<i64, Profile>,
    /// The papers each subscriber voted on, newest first.
    pub votes: HashMap<i64, Vec<VotedPaper>>,
}

/// A paper a subscriber voted on in a digest.
#[derive(Debug)]
pub struct VotedPaper {
    pub paper_id: String,
    /// As stored: 1 for "more like this", -1 for "less like this".
    pub vote: i64,
    pub title: String,
    pub abstract_text: String,
}

/// One delivery of a page after writing: its id, or `None` when the subscriber already had one
/// for that date or one of its papers was already theirs (nothing of it is kept).
pub type PlanOutcome = Option<i64>;

impl Store {
    /// Up to `limit` active subscribers with an id above `after`, by id: one page of planning.
    pub async fn active_subscribers_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<SubscriberRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {} FROM subscribers WHERE status = 'active' AND id > $1 ORDER BY id LIMIT $2",
            super::subscribers::SUBSCRIBER_COLUMNS
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?)
    }

    /// Everything planning reads about the subscribers with ids in `after < id <= last`:
    /// deliveries on or after `first_date`, the latest planning time, papers first seen since
    /// `since` that they already have, their profiles and their votes.
    pub async fn page_history(
        &self,
        after: i64,
        last: i64,
        first_date: DigestDate,
        since: DateTime<Utc>,
    ) -> Result<PageHistory, StoreError> {
        let mut h = PageHistory::default();
        let dates: Vec<(i64, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT subscriber_id, digest_date FROM deliveries
             WHERE subscriber_id > $1 AND subscriber_id <= $2 AND digest_date >= $3",
        )
        .bind(after)
        .bind(last)
        .bind(first_date.to_string())
        .fetch_all(p)
        .await)?;
        h.planned_dates = dates.into_iter().collect();

        let latest: Vec<(i64, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT subscriber_id, MAX(planned_at) FROM deliveries
             WHERE subscriber_id > $1 AND subscriber_id <= $2 GROUP BY subscriber_id",
        )
        .bind(after)
        .bind(last)
        .fetch_all(p)
        .await)?;
        h.last_planned = latest.into_iter().map(|(s, ms)| (s, from_ms(ms))).collect();

        let delivered: Vec<(i64, String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT dp.subscriber_id, dp.paper_id, p.first_seen_at
             FROM delivery_papers dp JOIN papers p ON p.id = dp.paper_id
             WHERE dp.subscriber_id > $1 AND dp.subscriber_id <= $2 AND p.first_seen_at >= $3",
        )
        .bind(after)
        .bind(last)
        .bind(to_ms(since))
        .fetch_all(p)
        .await)?;
        for (s, paper, seen) in delivered {
            h.delivered
                .entry(s)
                .or_default()
                .push((paper, from_ms(seen)));
        }

        h.profiles = self.profiles_between(after, last).await?;

        let votes: Vec<(i64, String, i64, String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT f.subscriber_id, f.paper_id, f.vote, p.title, p.abstract FROM feedback f
             JOIN papers p ON p.id = f.paper_id
             WHERE f.subscriber_id > $1 AND f.subscriber_id <= $2
             ORDER BY f.subscriber_id, f.created_at DESC",
        )
        .bind(after)
        .bind(last)
        .fetch_all(p)
        .await)?;
        for (s, paper_id, vote, title, abstract_text) in votes {
            let list = h.votes.entry(s).or_default();
            if list.len() < VOTES_PER_SUBSCRIBER {
                list.push(VotedPaper {
                    paper_id,
                    vote,
                    title,
                    abstract_text,
                });
            }
        }
        Ok(h)
    }

    /// Writes a page of deliveries and their papers in one transaction, with multi-row
    /// inserts. Returns, per delivery in order, its id or `None`: a subscriber who already has
    /// a delivery for that date keeps it (planning twice is harmless), and a delivery one of
    /// whose papers they already have is not written at all ("no paper twice"; the next run
    /// plans it again without that paper).
    ///
    /// With a `fence` (the daemon's planner) the transaction first checks that the leader
    /// lease is still at the generation the caller took, and writes nothing, returning
    /// [`StoreError::Fenced`], when another instance has taken it over since.
    pub async fn plan_deliveries(
        &self,
        plans: &[PlannedDelivery],
        fence: Option<&LeaderFence>,
    ) -> Result<Vec<PlanOutcome>, StoreError> {
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        let postgres = self.is_postgres();
        let outcomes = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some(fence) = fence {
                check_fence!(tx, fence);
            }
            // Subscriber → delivery id, for the deliveries this call created.
            let mut created: HashMap<i64, i64> = HashMap::with_capacity(plans.len());
            for chunk in plans.chunks(INSERT_ROWS) {
                let mut sql = String::from(
                    "INSERT INTO deliveries (subscriber_id, digest_date, status, next_attempt_at,
                       message_id, planned_at) VALUES ",
                );
                sql.push_str(&dialect::value_rows(postgres, chunk.len(), 6));
                sql.push_str(
                    " ON CONFLICT (subscriber_id, digest_date) DO NOTHING
                      RETURNING subscriber_id, id",
                );
                let mut q = sqlx::query_as::<_, (i64, i64)>(&sql);
                for plan in chunk {
                    let status = if plan.papers.is_empty() {
                        super::DeliveryStatus::Empty
                    } else {
                        super::DeliveryStatus::Planned
                    };
                    q = q
                        .bind(plan.subscriber_id.0)
                        .bind(plan.digest_date.to_string())
                        .bind(status.as_str())
                        .bind(to_ms(plan.planned_at))
                        .bind(&plan.message_id)
                        .bind(to_ms(plan.planned_at));
                }
                created.extend(q.fetch_all(&mut *tx).await?);
            }

            // Papers of the deliveries just created, many rows a statement.
            let rows: Vec<(i64, i64, &super::PlannedPaper)> = plans
                .iter()
                .filter_map(|plan| {
                    created
                        .get(&plan.subscriber_id.0)
                        .map(|&id| (id, plan.subscriber_id.0, plan))
                })
                .flat_map(|(id, s, plan)| plan.papers.iter().map(move |paper| (id, s, paper)))
                .collect();
            let mut written: HashMap<i64, usize> = HashMap::new();
            for chunk in rows.chunks(INSERT_ROWS) {
                let mut sql = String::from(
                    "INSERT INTO delivery_papers (delivery_id, subscriber_id, paper_id, rank, score,
                       reason) VALUES ",
                );
                sql.push_str(&dialect::value_rows(postgres, chunk.len(), 6));
                sql.push_str(" ON CONFLICT DO NOTHING RETURNING delivery_id");
                let mut q = sqlx::query_scalar::<_, i64>(&sql);
                for (id, s, paper) in chunk {
                    q = q
                        .bind(*id)
                        .bind(*s)
                        .bind(&paper.paper_id)
                        .bind(i64::from(paper.rank))
                        .bind(f64::from(paper.score))
                        .bind(&paper.reason);
                }
                for id in q.fetch_all(&mut *tx).await? {
                    *written.entry(id).or_default() += 1;
                }
            }

            // A delivery that lost a paper to "no paper twice" goes entirely (its papers with
            // it, by the foreign key's cascade): the next run plans it again without that paper.
            let mut outcomes = Vec::with_capacity(plans.len());
            for plan in plans {
                let outcome = match created.get(&plan.subscriber_id.0) {
                    None => None,
                    Some(&id) if written.get(&id).copied().unwrap_or(0) < plan.papers.len() => {
                        sqlx::query("DELETE FROM deliveries WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        None
                    }
                    Some(&id) => Some(id),
                };
                outcomes.push(outcome);
            }
            tx.commit().await?;
            outcomes
        });
        Ok(outcomes)
    }
}
