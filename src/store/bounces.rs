//! Hard bounces recorded on the subscriber, and the suspension they lead to.
//!
//! What for: the send job reports a 5xx at RCPT here, and the bounce mailbox reader
//! (`bounces`) each delivery status notification that arrived later, once per delivery
//! (`bounce_reports`); after `mail.max_hard_bounces` hard bounces the address is `suspended` and
//! gets nothing until the subscriber confirms again (re-confirming lives in `subscriptions`, and
//! resets the count). Not for: temporary failures at send time, which stay on the delivery row.

use super::{Store, StoreError, on_pool, to_ms};
use crate::model::{EmailAddress, SubscriberId};
use chrono::{DateTime, Utc};

/// What recording a bounce did to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BounceOutcome {
    /// Hard bounces counted since the last confirmation, this one included.
    pub hard_bounces: i64,
    /// True when this bounce suspended the address.
    pub suspended: bool,
}

/// What a delivery status notification said of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceKind {
    /// A permanent failure (5.x.x): the address does not take mail.
    Hard,
    /// A temporary one (4.x.x, or "delayed"): a full mailbox, a server down for days.
    Soft,
}

impl BounceKind {
    fn as_str(self) -> &'static str {
        match self {
            BounceKind::Hard => "hard",
            BounceKind::Soft => "soft",
        }
    }
}

/// A bounce report newly recorded against a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedBounce {
    pub subscriber: SubscriberId,
    /// Soft reports on the subscriber's digests since they last confirmed, this one included.
    pub soft_since_confirmed: i64,
}

impl Store {
    /// The delivery a mail service's bounce report is about: the one with this Message-ID key
    /// to this address, or else the last digest sent to the address.
    pub async fn delivery_for_report(
        &self,
        email: &EmailAddress,
        message_key: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT d.id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
              WHERE s.email = $1 AND d.status = 'sent'
              ORDER BY (d.message_id = $2) DESC, d.sent_at DESC, d.id DESC
              LIMIT 1"
        )
        .bind(email.as_str())
        .bind(message_key.unwrap_or(""))
        .fetch_optional(p)
        .await)?)
    }

    /// Records what a bounce report says of `delivery`, once: `None` when there is no such
    /// delivery (any more) or a report on it was recorded already.
    pub async fn record_bounce_report(
        &self,
        delivery: i64,
        kind: BounceKind,
        status: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ReportedBounce>, StoreError> {
        // `WHERE` makes SQLite read `ON CONFLICT` as the upsert clause, not a join's.
        let subscriber: Option<i64> = on_pool!(self, p => sqlx::query_scalar(
            "INSERT INTO bounce_reports
                    (delivery_id, subscriber_id, kind, status, detail, received_at)
             SELECT id, subscriber_id, $2, $3, $4, $5 FROM deliveries WHERE id = $1
             ON CONFLICT (delivery_id) DO NOTHING
             RETURNING subscriber_id"
        )
        .bind(delivery)
        .bind(kind.as_str())
        .bind(status)
        .bind(detail)
        .bind(to_ms(now))
        .fetch_optional(p)
        .await)?;
        let Some(subscriber) = subscriber else {
            return Ok(None);
        };
        let soft: i64 = on_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM bounce_reports r JOIN subscribers s ON s.id = r.subscriber_id
              WHERE r.subscriber_id = $1 AND r.kind = 'soft'
                AND r.received_at >= COALESCE(s.confirmed_at, 0)"
        )
        .bind(subscriber)
        .fetch_one(p)
        .await)?;
        Ok(Some(ReportedBounce {
            subscriber: SubscriberId(subscriber),
            soft_since_confirmed: soft,
        }))
    }

    /// Counts a hard bounce and suspends the subscriber once `max` is reached, in one
    /// statement so that two workers bouncing at once still count both.
    pub async fn record_hard_bounce(
        &self,
        subscriber: SubscriberId,
        error: &str,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<BounceOutcome, StoreError> {
        let row: Option<(i64, String)> = on_pool!(self, p => sqlx::query_as(
            "UPDATE subscribers
                SET hard_bounces = hard_bounces + 1, last_bounce_at = $2, last_bounce = $3,
                    updated_at = $2,
                    status = CASE WHEN status = 'active' AND hard_bounces + 1 >= $4
                                  THEN 'suspended' ELSE status END
              WHERE id = $1
          RETURNING hard_bounces, status"
        )
        .bind(subscriber.0)
        .bind(to_ms(now))
        .bind(error)
        .bind(i64::from(max))
        .fetch_optional(p)
        .await)?;
        Ok(match row {
            Some((n, status)) => BounceOutcome {
                hard_bounces: n,
                suspended: status == "suspended" && n >= i64::from(max),
            },
            None => BounceOutcome {
                hard_bounces: 0,
                suspended: false,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_with_subscriber;

    #[tokio::test]
    async fn a_report_counts_once_per_delivery_and_soft_ones_add_up_per_subscriber() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (store, who) = store_with_subscriber(&dir, "bounces.db", now).await;
        let mut deliveries = Vec::new();
        for day in 1..=3 {
            let id: i64 = on_pool!(store, p => sqlx::query_scalar(
                "INSERT INTO deliveries (subscriber_id, digest_date, status, next_attempt_at,
                   message_id, planned_at)
                 VALUES ($1, $2, 'sent', 0, $3, 0) RETURNING id",
            )
            .bind(who.0)
            .bind(format!("2026-12-0{day}"))
            .bind(format!("digest.test.{day}"))
            .fetch_one(p)
            .await)
            .unwrap();
            deliveries.push(id);
        }
        let report = |delivery: i64, kind: BounceKind| {
            let store = store.clone();
            async move {
                store
                    .record_bounce_report(delivery, kind, "4.2.2", "delayed 4.2.2", now)
                    .await
                    .unwrap()
            }
        };
        let first = report(deliveries[0], BounceKind::Soft)
            .await
            .expect("recorded");
        assert_eq!((first.subscriber, first.soft_since_confirmed), (who, 1));
        assert_eq!(
            report(deliveries[0], BounceKind::Soft).await,
            None,
            "once per delivery"
        );
        assert_eq!(report(deliveries[0], BounceKind::Hard).await, None);
        let second = report(deliveries[1], BounceKind::Soft)
            .await
            .expect("recorded");
        assert_eq!(second.soft_since_confirmed, 2);
        let hard = report(deliveries[2], BounceKind::Hard)
            .await
            .expect("recorded");
        assert_eq!(
            hard.soft_since_confirmed, 2,
            "a hard report is not a soft one"
        );
        assert_eq!(
            report(999_999, BounceKind::Hard).await,
            None,
            "no such delivery"
        );
    }
}
