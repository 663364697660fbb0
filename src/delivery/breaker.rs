//! The circuit breaker: when most recent attempts failed temporarily (the server is down or
//! throttling), nobody is tried for `mail.circuit_pause_secs`, doubling while it keeps failing,
//! so an outage costs a few deliveries one retry instead of all of them all.
//!
//! It judges the server, not the recipients: the caller records only whether an attempt failed
//! temporarily, and a 5xx (the server is up and answering) counts as a sign of health.

use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;
use std::sync::Mutex;

/// The circuit breaker looks at this many recent attempts...
const BREAKER_WINDOW: usize = 20;
/// ...needs at least this many before judging...
const BREAKER_MIN_SAMPLES: usize = 10;
/// ...and opens when at least this share of them failed temporarily.
const BREAKER_RATIO: f64 = 0.8;
/// The longest pause, however long the outage.
const BREAKER_MAX_PAUSE: Duration = Duration::hours(1);

/// A window of recent outcomes and, when open, until when. Shared by the daemon's send runs, so
/// an outage seen by one run pauses the next.
#[derive(Default)]
pub struct Breaker {
    state: Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    /// true = failed temporarily.
    recent: VecDeque<bool>,
    open_until: Option<DateTime<Utc>>,
    /// Consecutive trips without a success in between: each doubles the pause.
    trips: u32,
}

impl Breaker {
    /// Until when sending is paused, if it is at `now`.
    pub fn open_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let state = self.state.lock().expect("breaker lock");
        state.open_until.filter(|until| *until > now)
    }

    /// Records one attempt; returns the pause end when this one opened the circuit.
    pub(super) fn record(
        &self,
        failed_temporarily: bool,
        now: DateTime<Utc>,
        pause: Duration,
    ) -> Option<DateTime<Utc>> {
        let mut state = self.state.lock().expect("breaker lock");
        if !failed_temporarily {
            state.trips = 0;
        }
        state.recent.push_back(failed_temporarily);
        if state.recent.len() > BREAKER_WINDOW {
            state.recent.pop_front();
        }
        if state.open_until.is_some_and(|u| u > now) || state.recent.len() < BREAKER_MIN_SAMPLES {
            return None;
        }
        let failures = state.recent.iter().filter(|f| **f).count();
        if (failures as f64) < BREAKER_RATIO * state.recent.len() as f64 {
            return None;
        }
        Some(state.open(now, pause))
    }

    /// Opens the circuit at once, whatever the window says: for a fault of the configuration
    /// (a refused password, a certificate that cannot be trusted), which no other message
    /// will get past either. Returns the pause end when this call opened it (`None` when it
    /// was open already, so a fault met by several sessions at once is reported once).
    pub(super) fn trip(&self, now: DateTime<Utc>, pause: Duration) -> Option<DateTime<Utc>> {
        let mut state = self.state.lock().expect("breaker lock");
        match state.open_until.filter(|until| *until > now) {
            Some(_) => None,
            None => Some(state.open(now, pause)),
        }
    }
}

impl BreakerState {
    /// Opens for `pause`, doubled for each trip since the last success.
    fn open(&mut self, now: DateTime<Utc>, pause: Duration) -> DateTime<Utc> {
        let factor = 2i32.saturating_pow(self.trips.min(10));
        let until = now + (pause * factor).min(BREAKER_MAX_PAUSE);
        self.trips += 1;
        // Judge the next period afresh.
        self.recent.clear();
        self.open_until = Some(until);
        until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_on_mostly_temporary_failures_and_backs_off() {
        let b = Breaker::default();
        let t0 = Utc::now();
        let pause = Duration::seconds(60);
        // Healthy traffic with the odd failure never opens it.
        for i in 0..50 {
            assert_eq!(b.record(i % 5 == 0, t0, pause), None);
        }
        // A run of failures opens it once they are most of the window...
        let mut opened = None;
        for _ in 0..BREAKER_WINDOW {
            opened = opened.or(b.record(true, t0, pause));
        }
        let until = opened.expect("the breaker opened");
        assert_eq!(until, t0 + pause);
        assert_eq!(b.open_until(t0), Some(until));
        assert_eq!(b.open_until(until), None, "closed again after the pause");
        // Failing again right after: twice the pause.
        let t1 = until;
        let mut again = None;
        for _ in 0..BREAKER_MIN_SAMPLES {
            again = again.or(b.record(true, t1, pause));
        }
        assert_eq!(again, Some(t1 + pause * 2));
    }

    #[test]
    fn a_configuration_fault_opens_it_at_once_and_is_reported_once() {
        let b = Breaker::default();
        let t0 = Utc::now();
        let pause = Duration::seconds(60);
        assert_eq!(b.trip(t0, pause), Some(t0 + pause), "no window needed");
        assert_eq!(b.open_until(t0), Some(t0 + pause));
        // A second session meeting the same fault while it is open opens nothing new.
        assert_eq!(b.trip(t0 + Duration::seconds(1), pause), None);
        // Still wrong after the pause: twice as long, as for an outage.
        let t1 = t0 + pause;
        assert_eq!(b.trip(t1, pause), Some(t1 + pause * 2));
        // A success resets the doubling.
        let t2 = t1 + pause * 2;
        assert_eq!(b.record(false, t2, pause), None);
        assert_eq!(b.trip(t2, pause), Some(t2 + pause));
    }
}
