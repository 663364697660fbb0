//! The `subscribers` table.

use super::{Store, StoreError, from_ms, on_pool, to_ms};
use crate::model::{
    CategoryMode, EmailAddress, Frequency, Interests, MaxPapers, Profile, SendTime, Subscriber,
    SubscriberId, SubscriberStatus, TimeZoneName,
};
use chrono::{DateTime, Utc};

/// A subscriber to create.
#[derive(Debug, Clone)]
pub struct NewSubscriber {
    pub email: EmailAddress,
    pub status: SubscriberStatus,
    pub interests: Interests,
    pub frequency: Frequency,
    pub send_time: SendTime,
    pub timezone: TimeZoneName,
    pub max_papers: MaxPapers,
}

/// A row as stored. Converting it to a [`Subscriber`] can fail (someone edited the database by
/// hand, or an older version wrote a value this one no longer accepts); callers skip such a row
/// and report it rather than stopping (invariant 7).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriberRow {
    pub id: i64,
    pub email: String,
    pub status: String,
    pub interests: String,
    pub frequency: String,
    pub send_time: String,
    pub timezone: String,
    pub max_papers: i64,
    pub token_version: i64,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
}

pub(super) const SUBSCRIBER_COLUMNS: &str = "id, email, status, interests, frequency, send_time, timezone, \
    max_papers, token_version, created_at, confirmed_at";

impl SubscriberRow {
    pub fn parse(self) -> Result<Subscriber, String> {
        let id = self.id;
        let bad = |field: &str, detail: String| format!("subscriber {id}: bad {field}: {detail}");
        Ok(Subscriber {
            id: SubscriberId(self.id),
            email: EmailAddress::parse(&self.email).map_err(|e| bad("email", e.to_string()))?,
            status: SubscriberStatus::parse(&self.status)
                .ok_or_else(|| bad("status", self.status.clone()))?,
            interests: Interests::from_stored(&self.interests)
                .map_err(|e| bad("interests", e.to_string()))?,
            frequency: self
                .frequency
                .parse::<Frequency>()
                .map_err(|e| bad("frequency", e.to_string()))?,
            send_time: self
                .send_time
                .parse::<SendTime>()
                .map_err(|e| bad("send_time", e.to_string()))?,
            timezone: self
                .timezone
                .parse::<TimeZoneName>()
                .map_err(|e| bad("timezone", e.to_string()))?,
            max_papers: u32::try_from(self.max_papers)
                .ok()
                .and_then(|n| MaxPapers::new(n).ok())
                .ok_or_else(|| bad("max_papers", self.max_papers.to_string()))?,
            token_version: self.token_version,
            created_at: from_ms(self.created_at),
            confirmed_at: self.confirmed_at.map(from_ms),
        })
    }
}

impl Store {
    /// Creates a subscriber; an address that is already subscribed is a conflict.
    pub async fn add_subscriber(
        &self,
        new: &NewSubscriber,
        now: DateTime<Utc>,
    ) -> Result<SubscriberId, StoreError> {
        let confirmed_at = (new.status == SubscriberStatus::Active).then_some(to_ms(now));
        let id: Option<i64> = on_pool!(self, p => sqlx::query_scalar(
            "INSERT INTO subscribers (email, status, interests, frequency, send_time, timezone,
               max_papers, created_at, confirmed_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8)
             ON CONFLICT (email) DO NOTHING
             RETURNING id",
        )
        .bind(new.email.as_str())
        .bind(new.status.as_str())
        .bind(new.interests.as_str())
        .bind(new.frequency.to_string())
        .bind(new.send_time.to_string())
        .bind(new.timezone.to_string())
        .bind(i64::from(new.max_papers.get()))
        .bind(to_ms(now))
        .bind(confirmed_at)
        .fetch_optional(p)
        .await)?;
        id.map(SubscriberId).ok_or_else(|| {
            StoreError::Conflict(format!(
                "{} is already subscribed; remove it first or change it through its manage link",
                new.email
            ))
        })
    }

    pub async fn subscriber_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<SubscriberRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(p)
        .await)?)
    }

    pub async fn subscriber_by_id(
        &self,
        id: SubscriberId,
    ) -> Result<Option<SubscriberRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(p)
        .await)?)
    }

    /// Every subscriber, oldest first.
    pub async fn list_subscribers(&self) -> Result<Vec<SubscriberRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers ORDER BY id"
        ))
        .fetch_all(p)
        .await)?)
    }

    /// Deletes the subscriber and their history (deliveries, feedback). Returns whether one was
    /// there.
    pub async fn remove_subscriber(&self, email: &EmailAddress) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => sqlx::query("DELETE FROM subscribers WHERE email = $1")
            .bind(email.as_str())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }
}

/// One import batch's outcome.
#[derive(Debug, Default, Clone, Copy)]
pub struct ImportCounts {
    /// New subscribers written (with their profiles).
    pub added: usize,
    /// Addresses already subscribed: left exactly as they were.
    pub existing: usize,
}

/// Rows per multi-row `INSERT`: 9 binds a row stays far below both databases' bind limits.
const IMPORT_ROWS: usize = 500;

impl Store {
    /// Up to `limit` subscribers (any status) with an id above `after`, by id: one page of an
    /// export.
    pub async fn subscribers_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<SubscriberRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?)
    }

    /// The stored profiles of the subscribers with ids in `after < id <= last`.
    pub async fn profiles_between(
        &self,
        after: i64,
        last: i64,
    ) -> Result<std::collections::HashMap<i64, Profile>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT subscriber_id, authors, categories, category_mode, examples
             FROM subscriber_profiles WHERE subscriber_id > $1 AND subscriber_id <= $2",
        )
        .bind(after)
        .bind(last)
        .fetch_all(p)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(id, authors, categories, mode, examples)| {
                let profile = super::profile::from_columns(&authors, &categories, &mode, &examples);
                (id, profile)
            })
            .collect())
    }

    /// Adds a batch of subscribers and their profiles in one transaction. An address already
    /// subscribed is left as it is (so importing the same file twice adds nothing the second
    /// time); the caller has already refused repeats within the batch.
    pub async fn import_subscribers(
        &self,
        batch: &[(NewSubscriber, Profile)],
        now: DateTime<Utc>,
    ) -> Result<ImportCounts, StoreError> {
        let mut counts = ImportCounts::default();
        if batch.is_empty() {
            return Ok(counts);
        }
        let now_ms = to_ms(now);
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in batch.chunks(IMPORT_ROWS) {
                let mut sql = String::from(
                    "INSERT INTO subscribers (email, status, interests, frequency, send_time,
                       timezone, max_papers, created_at, confirmed_at, updated_at) VALUES ",
                );
                for i in 0..chunk.len() {
                    let b = i * 9;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 8
                    ));
                }
                sql.push_str(" ON CONFLICT (email) DO NOTHING RETURNING id, email");
                let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
                for (new, _) in chunk {
                    let confirmed_at = (new.status == SubscriberStatus::Active).then_some(now_ms);
                    q = q
                        .bind(new.email.as_str())
                        .bind(new.status.as_str())
                        .bind(new.interests.as_str())
                        .bind(new.frequency.to_string())
                        .bind(new.send_time.to_string())
                        .bind(new.timezone.to_string())
                        .bind(i64::from(new.max_papers.get()))
                        .bind(now_ms)
                        .bind(confirmed_at);
                }
                let added: std::collections::HashMap<String, i64> = q
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(id, email)| (email, id))
                    .collect();
                counts.added += added.len();
                counts.existing += chunk.len() - added.len();

                let profiles: Vec<(i64, &Profile)> = chunk
                    .iter()
                    .filter(|(_, profile)| !profile.is_empty() || profile.category_mode != CategoryMode::Boost)
                    .filter_map(|(new, profile)| {
                        added.get(new.email.as_str()).map(|&id| (id, profile))
                    })
                    .collect();
                if profiles.is_empty() {
                    continue;
                }
                let mut sql = String::from(
                    "INSERT INTO subscriber_profiles
                       (subscriber_id, authors, categories, category_mode, examples, updated_at)
                     VALUES ",
                );
                for i in 0..profiles.len() {
                    let b = i * 6;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1, b + 2, b + 3, b + 4, b + 5, b + 6
                    ));
                }
                let mut q = sqlx::query(&sql);
                for (id, profile) in profiles {
                    q = q
                        .bind(id)
                        .bind(json(&profile.authors))
                        .bind(json(&profile.categories))
                        .bind(profile.category_mode.as_str())
                        .bind(json(&profile.examples))
                        .bind(now_ms);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(counts)
    }
}
