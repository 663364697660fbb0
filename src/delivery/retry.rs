//! What a failed attempt means for its delivery, and when to try again.
//!
//! A temporary failure (4xx, timeout, dropped connection, and a 5xx while connecting, which is
//! the operator's to fix: AUTH refused) goes to `retry` with exponential backoff and jitter;
//! past `mail.retry_max_hours` after planning it is `failed`. A 5xx at RCPT is a hard bounce;
//! any other 5xx fails this delivery only. The class of a transport failure
//! (`mail::FailureClass`) travels with the error text to the metrics.

use crate::mail::{Failure, FailureClass, FailureKind, FailureStage};
use chrono::{DateTime, Duration, Utc};

/// The first retry waits this long; each further one doubles it.
const RETRY_BASE: Duration = Duration::minutes(2);
const RETRY_MAX: Duration = Duration::hours(6);

/// Why an attempt did not end in `sent`.
#[derive(Debug, Clone)]
pub(super) struct AttemptError {
    /// Kept on the delivery for the operator (`paperboy deliveries`).
    pub text: String,
    /// The mail transport's failure class, when the transport failed; `None` when something
    /// else did (the subscriber left, the digest could not be rendered).
    pub smtp: Option<FailureClass>,
}

impl AttemptError {
    pub fn other(text: impl Into<String>) -> Self {
        AttemptError {
            text: text.into(),
            smtp: None,
        }
    }

    fn transport(f: &Failure) -> Self {
        AttemptError {
            text: f.to_string(),
            smtp: Some(f.class),
        }
    }
}

/// The outcome of one delivery attempt.
pub(super) enum Outcome {
    Sent,
    Retry(AttemptError),
    /// A 5xx at RCPT: the address does not take mail.
    Bounced(AttemptError),
    Failed(AttemptError),
    /// Not tried after all (the circuit opened while it waited): hand it back.
    NotTried,
}

/// What the transport's answer means for the delivery.
pub(super) fn classify(result: Result<(), Failure>) -> Outcome {
    match result {
        Ok(()) => Outcome::Sent,
        Err(f) if f.is_bad_recipient() => Outcome::Bounced(AttemptError::transport(&f)),
        Err(f) if f.kind == FailureKind::Permanent && f.stage != FailureStage::Connect => {
            Outcome::Failed(AttemptError::transport(&f))
        }
        // A 5xx while connecting (e.g. AUTH refused) is the operator's to fix, not the
        // subscriber's: keep the digest and try again later.
        Err(f) => Outcome::Retry(AttemptError::transport(&f)),
    }
}

/// After a temporary failure at `now`: when to try again, or, when that would be past
/// `max_age` (`mail.retry_max_hours`) after planning, the error that gives the delivery up.
pub(super) fn next_attempt(
    attempts: i64,
    planned_at: DateTime<Utc>,
    now: DateTime<Utc>,
    max_age: Duration,
    error: &AttemptError,
) -> Result<DateTime<Utc>, AttemptError> {
    let next = now + retry_delay(attempts);
    if next <= planned_at + max_age {
        return Ok(next);
    }
    Err(AttemptError {
        text: format!(
            "gave up after {attempts} attempts over {} hours (mail.retry_max_hours): {}",
            max_age.num_hours(),
            error.text
        ),
        smtp: error.smtp,
    })
}

/// Exponential backoff with up to 25% random jitter, so retries of many deliveries spread out.
fn retry_delay(attempts: i64) -> Duration {
    use rand::Rng;
    let exp = attempts.clamp(1, 20) as i32 - 1;
    let base = (RETRY_BASE * 2i32.saturating_pow(exp as u32)).min(RETRY_MAX);
    let jitter_ms = rand::thread_rng().gen_range(0..=base.num_milliseconds() / 4);
    base + Duration::milliseconds(jitter_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let first = retry_delay(1);
        assert!(
            first >= RETRY_BASE && first <= RETRY_BASE + RETRY_BASE / 4,
            "{first}"
        );
        let third = retry_delay(3);
        assert!(third >= RETRY_BASE * 4, "{third}");
        let late = retry_delay(30);
        assert!(late <= RETRY_MAX + RETRY_MAX / 4, "{late}");
    }

    #[test]
    fn failures_are_classified_by_stage() {
        use crate::mail::{FailureClass as C, FailureKind as K, FailureStage as S};
        let f = |stage, kind, class| Err(Failure::new(stage, kind, class, "x"));
        assert!(matches!(
            classify(f(S::Rcpt, K::Permanent, C::Permanent)),
            Outcome::Bounced(_)
        ));
        assert!(matches!(
            classify(f(S::EndOfData, K::Permanent, C::Permanent)),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            classify(f(S::Rcpt, K::Temporary, C::Transient)),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(f(S::Connect, K::Permanent, C::Permanent)),
            Outcome::Retry(_)
        ));
        assert!(matches!(classify(Ok(())), Outcome::Sent));
    }

    #[test]
    fn the_failure_class_travels_with_the_error_and_past_giving_up() {
        let Outcome::Retry(e) = classify(Err(Failure::new(
            FailureStage::Connect,
            FailureKind::Temporary,
            FailureClass::Timeout,
            "no answer",
        ))) else {
            panic!("a timeout is retried");
        };
        assert_eq!(e.smtp, Some(FailureClass::Timeout));
        assert_eq!(
            e.text, "connecting: no answer",
            "the stored text is the failure's"
        );
        let planned = Utc::now();
        let day = Duration::hours(24);
        assert!(next_attempt(1, planned, planned, day, &e).is_ok());
        let late = planned + day;
        let given_up = next_attempt(5, planned, late, day, &e).expect_err("past the maximum age");
        assert_eq!(given_up.smtp, Some(FailureClass::Timeout));
        assert!(
            given_up
                .text
                .starts_with("gave up after 5 attempts over 24 hours")
                && given_up.text.ends_with(": connecting: no answer"),
            "{}",
            given_up.text
        );
    }
}
