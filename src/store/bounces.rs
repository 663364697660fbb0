//! Hard bounces recorded on the subscriber, and the suspension they lead to.
//!
//! What for: the send job reports a 5xx at RCPT here; after `mail.max_hard_bounces` of them the
//! address is `suspended` and gets nothing until the subscriber confirms again (re-confirming
//! lives in `subscriptions`, and resets the count). Not for: temporary failures, which stay on
//! the delivery row.

use super::{Store, StoreError, on_pool, to_ms};
use crate::model::SubscriberId;
use chrono::{DateTime, Utc};

/// What recording a bounce did to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BounceOutcome {
    /// Hard bounces counted since the last confirmation, this one included.
    pub hard_bounces: i64,
    /// True when this bounce suspended the address.
    pub suspended: bool,
}

impl Store {
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
