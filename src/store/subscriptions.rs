//! The statements behind the web pages: sign-up with double opt-in, the per-address resend
//! cooldowns, preference changes, status changes, revoking links, feedback votes and the data
//! export.
//!
//! Each state change is one conditional `UPDATE` whose `WHERE` clause carries the rule (which
//! statuses may move where, whether the cooldown has passed, whether the confirmation nonce still
//! matches), so two requests racing each other, or two instances sharing PostgreSQL, cannot both
//! win. Business decisions (what to mail, what to show) stay in `web`.

use super::{Store, StoreError, on_pool, to_ms};
use crate::model::{
    EmailAddress, Frequency, Interests, MaxPapers, SendTime, SubscriberId, SubscriberStatus,
    TimeZoneName,
};
use chrono::{DateTime, Utc};

/// What a visitor chose on the subscribe form or the manage page.
#[derive(Debug, Clone)]
pub struct Preferences {
    pub interests: Interests,
    pub frequency: Frequency,
    pub send_time: SendTime,
    pub timezone: TimeZoneName,
    pub max_papers: MaxPapers,
}

/// A vote on one paper from a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    More,
    Less,
}

impl Vote {
    fn as_db(self) -> i64 {
        match self {
            Vote::More => 1,
            Vote::Less => -1,
        }
    }
}

/// One delivery in a subscriber's data export.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ExportDelivery {
    pub id: i64,
    pub digest_date: String,
    pub status: String,
    pub planned_at: i64,
    pub sent_at: Option<i64>,
}

/// One paper sent in a delivery, for the export.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ExportPick {
    pub delivery_id: i64,
    pub paper_id: String,
    pub title: String,
    pub rank: i64,
}

/// One vote, for the export.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ExportVote {
    pub paper_id: String,
    pub vote: i64,
    pub created_at: i64,
}

/// Everything stored about one subscriber beyond the subscriber row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubscriberHistory {
    pub deliveries: Vec<ExportDelivery>,
    pub papers: Vec<ExportPick>,
    pub feedback: Vec<ExportVote>,
}

// Statuses from which a confirmation link may (re)activate a subscription: never confirmed,
// left, or suspended after bounces (who must prove the address works again).
const CONFIRMABLE: &str = "('pending', 'unsubscribed', 'suspended')";

impl Store {
    /// Creates a `pending` subscriber holding `nonce` as its one live confirmation, marked as
    /// mailed at `now`. Returns `None` when the address already exists (the caller then treats
    /// it as an existing subscriber; two sign-ups racing end up here).
    pub async fn create_pending_subscriber(
        &self,
        email: &EmailAddress,
        prefs: &Preferences,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SubscriberId>, StoreError> {
        let id: Option<i64> = on_pool!(self, p => sqlx::query_scalar(
            "INSERT INTO subscribers (email, status, interests, frequency, send_time, timezone,
               max_papers, created_at, updated_at, confirm_nonce, confirm_sent_at)
             VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $7, $8, $7)
             ON CONFLICT (email) DO NOTHING
             RETURNING id",
        )
        .bind(email.as_str())
        .bind(prefs.interests.as_str())
        .bind(prefs.frequency.to_string())
        .bind(prefs.send_time.to_string())
        .bind(prefs.timezone.to_string())
        .bind(i64::from(prefs.max_papers.get()))
        .bind(to_ms(now))
        .bind(nonce)
        .fetch_optional(p)
        .await)?;
        Ok(id.map(SubscriberId))
    }

    /// For an address that is not currently subscribed (pending, unsubscribed, suspended):
    /// stores the preferences and a new confirmation nonce, replacing the previous one, unless a
    /// confirmation was mailed after `cooldown_start`. Returns whether a new confirmation should
    /// be mailed. An active or paused subscriber is never changed here: a stranger typing their
    /// address must not be able to change what they receive.
    pub async fn renew_confirmation(
        &self,
        id: SubscriberId,
        prefs: &Preferences,
        nonce: &str,
        now: DateTime<Utc>,
        cooldown_start: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(&format!(
            "UPDATE subscribers
                SET interests = $1, frequency = $2, send_time = $3, timezone = $4,
                    max_papers = $5, confirm_nonce = $6, confirm_sent_at = $7, updated_at = $7
              WHERE id = $8 AND status IN {CONFIRMABLE}
                AND (confirm_sent_at IS NULL OR confirm_sent_at <= $9)"
        ))
        .bind(prefs.interests.as_str())
        .bind(prefs.frequency.to_string())
        .bind(prefs.send_time.to_string())
        .bind(prefs.timezone.to_string())
        .bind(i64::from(prefs.max_papers.get()))
        .bind(nonce)
        .bind(to_ms(now))
        .bind(id.0)
        .bind(to_ms(cooldown_start))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Notes that a manage link is being mailed now, unless one was mailed after
    /// `cooldown_start`. Returns whether to mail it.
    pub async fn claim_link_send(
        &self,
        id: SubscriberId,
        now: DateTime<Utc>,
        cooldown_start: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE subscribers SET link_sent_at = $1
              WHERE id = $2 AND (link_sent_at IS NULL OR link_sent_at <= $3)",
        )
        .bind(to_ms(now))
        .bind(id.0)
        .bind(to_ms(cooldown_start))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Forgets that a confirmation (`confirmation = true`) or a manage link was mailed, after
    /// the mail server refused it: the visitor may then ask again at once instead of waiting out
    /// a cooldown for an email that never left.
    pub async fn forget_send(
        &self,
        id: SubscriberId,
        confirmation: bool,
    ) -> Result<(), StoreError> {
        // A column name from our own two constants, never from input.
        let column = if confirmation {
            "confirm_sent_at"
        } else {
            "link_sent_at"
        };
        on_pool!(self, p => sqlx::query(&format!(
            "UPDATE subscribers SET {column} = NULL WHERE id = $1"
        ))
        .bind(id.0)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Whether `nonce` is the live confirmation of this subscriber (the link is unused, not
    /// replaced by a newer one, and the subscription not already active).
    pub async fn confirmation_is_live(
        &self,
        id: SubscriberId,
        nonce: &str,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = on_pool!(self, p => sqlx::query_scalar(&format!(
            "SELECT id FROM subscribers
              WHERE id = $1 AND confirm_nonce = $2 AND status IN {CONFIRMABLE}"
        ))
        .bind(id.0)
        .bind(nonce)
        .fetch_optional(p)
        .await)?;
        Ok(found.is_some())
    }

    /// Activates the subscription if `nonce` is its live confirmation, using the nonce up.
    /// Returns whether it did.
    pub async fn confirm_subscriber(
        &self,
        id: SubscriberId,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(&format!(
            "UPDATE subscribers
                SET status = 'active', confirmed_at = $1, updated_at = $1, confirm_nonce = NULL,
                    hard_bounces = 0
              WHERE id = $2 AND confirm_nonce = $3 AND status IN {CONFIRMABLE}"
        ))
        .bind(to_ms(now))
        .bind(id.0)
        .bind(nonce)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Saves new preferences for a subscriber.
    pub async fn update_preferences(
        &self,
        id: SubscriberId,
        prefs: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE subscribers
                SET interests = $1, frequency = $2, send_time = $3, timezone = $4,
                    max_papers = $5, updated_at = $6
              WHERE id = $7",
        )
        .bind(prefs.interests.as_str())
        .bind(prefs.frequency.to_string())
        .bind(prefs.send_time.to_string())
        .bind(prefs.timezone.to_string())
        .bind(i64::from(prefs.max_papers.get()))
        .bind(to_ms(now))
        .bind(id.0)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Moves a subscriber to `to` if their status is one of `from`. Returns whether it did.
    pub async fn change_status(
        &self,
        id: SubscriberId,
        from: &[SubscriberStatus],
        to: SubscriberStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if from.is_empty() {
            return Ok(false);
        }
        // The statuses are our own constants, never user input: listing them inline is safe.
        let list = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let n = on_pool!(self, p => sqlx::query(&format!(
            "UPDATE subscribers SET status = $1, updated_at = $2, confirm_nonce = NULL
              WHERE id = $3 AND status IN ({list})"
        ))
        .bind(to.as_str())
        .bind(to_ms(now))
        .bind(id.0)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Unsubscribes, from whatever status but unsubscribed: the one-click link and a
    /// complaint ("this is spam") both end a subscription this way. Returns whether it did.
    pub async fn unsubscribe(
        &self,
        id: SubscriberId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let from = [
            SubscriberStatus::Active,
            SubscriberStatus::Paused,
            SubscriberStatus::Pending,
            SubscriberStatus::Suspended,
        ];
        self.change_status(id, &from, SubscriberStatus::Unsubscribed, now)
            .await
    }

    /// Bumps the token version of a subscriber from `seen` (the version the caller checked),
    /// which switches off every revocable link signed so far (`links::Purpose::revocable`).
    /// Returns the new version, or `None` when the version had already moved on or the
    /// subscriber is gone: two revocations racing each other bump once.
    pub async fn bump_token_version(
        &self,
        id: SubscriberId,
        seen: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "UPDATE subscribers SET token_version = token_version + 1, updated_at = $1
              WHERE id = $2 AND token_version = $3
             RETURNING token_version",
        )
        .bind(to_ms(now))
        .bind(id.0)
        .bind(seen)
        .fetch_optional(p)
        .await)?)
    }

    /// Deletes one subscriber and, through the foreign keys, their deliveries and feedback.
    pub async fn delete_subscriber(&self, id: SubscriberId) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM subscribers WHERE id = $1")
            .bind(id.0)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Records (or changes) a subscriber's vote on a paper. Returns false when the paper is not
    /// stored (the vote would point nowhere).
    pub async fn record_feedback(
        &self,
        id: SubscriberId,
        paper_id: &str,
        vote: Vote,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO feedback (subscriber_id, paper_id, vote, created_at)
             SELECT $1, id, $2, $3 FROM papers WHERE id = $4
             ON CONFLICT (subscriber_id, paper_id)
             DO UPDATE SET vote = excluded.vote, created_at = excluded.created_at",
        )
        .bind(id.0)
        .bind(vote.as_db())
        .bind(to_ms(now))
        .bind(paper_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// The subscriber a delivery belongs to, and its digest date.
    pub async fn delivery_owner(
        &self,
        delivery_id: i64,
    ) -> Result<Option<(SubscriberId, String)>, StoreError> {
        let row: Option<(i64, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT subscriber_id, digest_date FROM deliveries WHERE id = $1",
        )
        .bind(delivery_id)
        .fetch_optional(p)
        .await)?;
        Ok(row.map(|(s, d)| (SubscriberId(s), d)))
    }

    /// Everything recorded about a subscriber beyond their row, oldest first.
    pub async fn subscriber_history(
        &self,
        id: SubscriberId,
    ) -> Result<SubscriberHistory, StoreError> {
        let deliveries: Vec<ExportDelivery> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, digest_date, status, planned_at, sent_at FROM deliveries
              WHERE subscriber_id = $1 ORDER BY digest_date, id",
        )
        .bind(id.0)
        .fetch_all(p)
        .await)?;
        let papers: Vec<ExportPick> = on_pool!(self, p => sqlx::query_as(
            "SELECT dp.delivery_id, dp.paper_id, pa.title, dp.rank
               FROM delivery_papers dp JOIN papers pa ON pa.id = dp.paper_id
              WHERE dp.subscriber_id = $1 ORDER BY dp.delivery_id, dp.rank",
        )
        .bind(id.0)
        .fetch_all(p)
        .await)?;
        let feedback: Vec<ExportVote> = on_pool!(self, p => sqlx::query_as(
            "SELECT paper_id, vote, created_at FROM feedback
              WHERE subscriber_id = $1 ORDER BY created_at, paper_id",
        )
        .bind(id.0)
        .fetch_all(p)
        .await)?;
        Ok(SubscriberHistory {
            deliveries,
            papers,
            feedback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_with_subscriber;

    #[tokio::test]
    async fn a_bump_moves_the_version_once_from_the_one_seen() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (store, id) = store_with_subscriber(&dir, "bump.db", now).await;
        let version = store
            .subscriber_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .token_version;
        assert_eq!(
            store.bump_token_version(id, version, now).await.unwrap(),
            Some(version + 1)
        );
        // A second request that saw the old version (a double click, a race) bumps nothing.
        assert_eq!(
            store.bump_token_version(id, version, now).await.unwrap(),
            None
        );
        let row = store.subscriber_by_id(id).await.unwrap().unwrap();
        assert_eq!(row.token_version, version + 1);
        assert_eq!(
            store
                .bump_token_version(SubscriberId(id.0 + 1), version, now)
                .await
                .unwrap(),
            None,
            "no such subscriber"
        );
    }
}
