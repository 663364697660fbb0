//! Per-client rate limits on the forms that send email (`/subscribe`, `/manage`).
//!
//! A fixed one-hour window per (form, client address), kept in memory: simple, and enough to
//! stop one machine from mailing confirmation links to a list of strangers. It is per process;
//! several instances each allow the limit. The per-address limit (one confirmation or manage
//! link per cooldown) is kept in the database instead, because it must hold across instances
//! and restarts; see `store::subscriptions`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(3600);
/// Past this many tracked clients, expired windows are swept before adding one.
const SWEEP_AT: usize = 10_000;

/// Which form a post counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    Subscribe,
    ManageLink,
}

pub struct Limits {
    per_window: u32,
    seen: Mutex<HashMap<(Form, IpAddr), (Instant, u32)>>,
}

impl Limits {
    pub fn new(per_hour: u32) -> Self {
        Limits {
            per_window: per_hour,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one post; `Err(wait)` when this client is over the limit for `wait` more.
    pub fn hit(&self, form: Form, client: IpAddr) -> Result<(), Duration> {
        self.hit_at(form, client, Instant::now())
    }

    fn hit_at(&self, form: Form, client: IpAddr, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means another request panicked mid-update; the counts are
        // still usable.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= SWEEP_AT {
            seen.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = seen.entry((form, client)).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_window {
            return Err(WINDOW.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_form_and_client_and_resets_after_the_window() {
        let l = Limits::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t = Instant::now();
        assert!(l.hit_at(Form::Subscribe, a, t).is_ok());
        assert!(l.hit_at(Form::Subscribe, a, t).is_ok());
        let wait = l.hit_at(Form::Subscribe, a, t).unwrap_err();
        assert_eq!(wait, WINDOW);
        assert!(l.hit_at(Form::Subscribe, b, t).is_ok(), "other client");
        assert!(l.hit_at(Form::ManageLink, a, t).is_ok(), "other form");
        assert!(
            l.hit_at(Form::Subscribe, a, t + WINDOW).is_ok(),
            "new window"
        );
    }
}
