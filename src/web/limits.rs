//! Rate limits on the forms that send email (`/subscribe`, `/manage`), and the cap on
//! confirmation emails.
//!
//! Two limits, both governor's GCRA limiters kept in memory (per process: several instances each
//! allow them). A limit of N per hour allows N at once, then one more every hour / N, so two
//! bursts cannot meet at the edge of a fixed window.
//!
//! - Per client and form, `web.form_posts_per_hour`: enough to stop one machine from mailing
//!   confirmation links to a list of strangers. A client is an IPv4 address or an IPv6 /64
//!   (`ClientKey`): one home or server is routinely given a whole /64, so counting single IPv6
//!   addresses would give one machine 2^64 allowances.
//! - For the whole process, `web.confirmation_emails_per_hour` (0 = no cap): many clients
//!   together cannot turn the sign-up form into a way to mail strangers in bulk. Only
//!   confirmation emails count: manage-link emails go only to addresses that confirmed, at most
//!   one per cooldown each, and a sign-up flood must not lock subscribers out of their link.
//!
//! The per-address limit (one confirmation or manage link per cooldown) is kept in the database
//! instead, because it must hold across instances and restarts; see `store::subscriptions`.

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

/// Past this many tracked clients, the ones back at a full allowance are dropped before a check.
const SWEEP_AT: usize = 10_000;

/// How often, at most, the confirmation cap is reported in the log.
const CAP_REPORT_EVERY: Duration = Duration::from_secs(3600);

/// Which form a post counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    Subscribe,
    ManageLink,
}

/// One client for the per-client limit: an IPv4 address (an IPv4-mapped IPv6 address counts as
/// its IPv4 address) or the /64 network of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(addr: IpAddr) -> ClientKey {
        match addr.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                ClientKey(IpAddr::V6(Ipv6Addr::from(network)))
            }
            v4 => ClientKey(v4),
        }
    }
}

/// A confirmation email the cap held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Withheld {
    /// True for the first one held back in `CAP_REPORT_EVERY`: the caller logs it, so that a
    /// flood gives one warning an hour rather than one per request.
    pub report: bool,
}

type PerClient<C> = RateLimiter<
    (Form, ClientKey),
    HashMapStateStore<(Form, ClientKey)>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;
type Global<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

pub struct Limits<C: Clock + Clone = DefaultClock> {
    per_client: PerClient<C>,
    confirmations: Option<Global<C>>,
    /// When the cap was last reported in the log.
    cap_reported: Mutex<Option<C::Instant>>,
    clock: C,
}

impl Limits {
    /// `form_posts_per_hour` per client and form; `confirmations_per_hour` for the process,
    /// `None` for no cap.
    pub fn new(form_posts_per_hour: u32, confirmations_per_hour: Option<NonZeroU32>) -> Self {
        Self::with_clock(
            form_posts_per_hour,
            confirmations_per_hour,
            DefaultClock::default(),
        )
    }
}

impl<C: Clock + Clone> Limits<C> {
    fn with_clock(
        form_posts_per_hour: u32,
        confirmations_per_hour: Option<NonZeroU32>,
        clock: C,
    ) -> Self {
        let per_client = NonZeroU32::new(form_posts_per_hour).unwrap_or(NonZeroU32::MIN);
        Limits {
            per_client: RateLimiter::new(
                Quota::per_hour(per_client),
                HashMapStateStore::default(),
                clock.clone(),
            ),
            confirmations: confirmations_per_hour
                .map(|n| RateLimiter::direct_with_clock(Quota::per_hour(n), clock.clone())),
            cap_reported: Mutex::new(None),
            clock,
        }
    }

    /// Counts one post; `Err(wait)` when this client is over the limit for `wait` more.
    pub fn hit(&self, form: Form, client: IpAddr) -> Result<(), Duration> {
        if self.per_client.len() >= SWEEP_AT {
            self.per_client.retain_recent();
        }
        self.per_client
            .check_key(&(form, ClientKey::of(client)))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Takes one confirmation email from the cap; `Err` when it must not be sent.
    pub fn confirmation(&self) -> Result<(), Withheld> {
        let Some(cap) = &self.confirmations else {
            return Ok(());
        };
        if cap.check().is_ok() {
            return Ok(());
        }
        let now = self.clock.now();
        // A poisoned lock only means another request panicked mid-update; the time is usable.
        let mut last = self.cap_reported.lock().unwrap_or_else(|p| p.into_inner());
        let report =
            last.is_none_or(|at| Duration::from(now.duration_since(at)) >= CAP_REPORT_EVERY);
        if report {
            *last = Some(now);
        }
        Err(Withheld { report })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    const HOUR: Duration = Duration::from_secs(3600);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_form_and_client_and_refills_over_the_hour() {
        let clock = FakeRelativeClock::default();
        let l = Limits::with_clock(2, None, clock.clone());
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(l.hit(Form::Subscribe, a).is_ok());
        assert!(l.hit(Form::Subscribe, a).is_ok());
        let wait = l.hit(Form::Subscribe, a).unwrap_err();
        assert_eq!(wait, HOUR / 2, "one post comes back every hour / limit");
        assert!(l.hit(Form::Subscribe, b).is_ok(), "other client");
        assert!(l.hit(Form::ManageLink, a).is_ok(), "other form");
        clock.advance(HOUR / 2);
        assert!(l.hit(Form::Subscribe, a).is_ok(), "refilled by one");
        assert!(l.hit(Form::Subscribe, a).is_err());
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_a_mapped_ipv4_is_the_ipv4() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.7")),
            ClientKey::of(ip("192.0.2.7"))
        );
        assert_ne!(
            ClientKey::of(ip("192.0.2.7")),
            ClientKey::of(ip("192.0.2.8")),
            "IPv4 addresses are not grouped"
        );

        let l = Limits::with_clock(1, None, FakeRelativeClock::default());
        assert!(l.hit(Form::Subscribe, ip("2001:db8:1:2::1")).is_ok());
        assert!(l.hit(Form::Subscribe, ip("2001:db8:1:2::2")).is_err());
        assert!(l.hit(Form::Subscribe, ip("2001:db8:1:3::1")).is_ok());
        assert!(l.hit(Form::Subscribe, ip("::ffff:192.0.2.7")).is_ok());
        assert!(l.hit(Form::Subscribe, ip("192.0.2.7")).is_err());
    }

    #[test]
    fn the_confirmation_cap_holds_back_and_reports_once_an_hour() {
        let clock = FakeRelativeClock::default();
        let l = Limits::with_clock(100, NonZeroU32::new(3), clock.clone());
        for _ in 0..3 {
            assert_eq!(l.confirmation(), Ok(()));
        }
        assert_eq!(l.confirmation(), Err(Withheld { report: true }));
        assert_eq!(l.confirmation(), Err(Withheld { report: false }));
        clock.advance(HOUR / 3);
        assert_eq!(l.confirmation(), Ok(()), "one comes back every 20 minutes");
        assert_eq!(l.confirmation(), Err(Withheld { report: false }));
        clock.advance(HOUR);
        for _ in 0..3 {
            assert_eq!(l.confirmation(), Ok(()));
        }
        assert_eq!(
            l.confirmation(),
            Err(Withheld { report: true }),
            "an hour after the last report"
        );
    }

    #[test]
    fn no_cap_never_holds_back() {
        let l = Limits::with_clock(1, None, FakeRelativeClock::default());
        for _ in 0..10_000 {
            assert_eq!(l.confirmation(), Ok(()));
        }
    }
}
