//! Crash safety of the outbox, proven against the real daemon and a real SMTP server.
//!
//! 1,000 subscribers are due a digest. `paperboy run` is started, killed at random moments
//! (SIGKILL: no handler, nothing flushed), and restarted, again and again, some kills while it
//! is still planning and the rest while it is sending; then it runs to the end. Postfix's
//! smtp-sink records every message. At the end every subscriber has their digest, and the
//! only duplicates are messages the server had accepted when the process died but that were
//! not yet marked sent (counted at each kill): each carries the same Message-ID as its twin.
//! With SIGTERM instead, the daemon finishes what it has in flight and hands the rest back, so
//! there is no duplicate at all.

use crate::common::*;
use crate::delivery_support::*;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const N: usize = 1000;
const START: &str = "2024-10-25T09:00:00Z";
/// Of the kills, this many aim at planning, the rest at sending.
const PLANNING_KILLS: usize = 3;
const KILLS: usize = 13;

struct Setup {
    sink: SmtpSink,
    _server: FixtureServer,
    app: TestApp,
    db: Db,
}

fn setup(test: &str) -> Option<Setup> {
    let sink = SmtpSink::start_or_skip(test)?;
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder()
        .hf(&server)
        .smtp(&sink)
        // No scheduled fetch while the test runs: only planning and sending.
        .extra_toml("[schedule]\nfetch = \"0 0 0 1 1 *\"\n")
        .build();
    migrate(&app);
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, N, "07:00", "UTC", "daily");
    Some(Setup {
        sink,
        _server: server,
        app,
        db,
    })
}

/// "Now" for the next daemon start: the test's start time plus the real time elapsed, so the
/// clock never runs backwards across restarts (as it would not on a real machine).
struct TestClock(Instant);

impl TestClock {
    fn now(&self) -> String {
        plus_secs(START, self.0.elapsed().as_secs() as i64)
    }
}

/// Copies received so far, per delivery key (the Message-ID's unique part).
fn copies(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in complete_messages(sink) {
        let id = m
            .header("Message-ID")
            .expect("every digest has a Message-ID");
        *out.entry(message_key(&id)).or_insert(0) += 1;
    }
    out
}

// Short: the kill schedule depends on noticing progress within milliseconds.
const POLL: Duration = Duration::from_millis(5);

/// Runs the daemon until every delivery is sent, then stops it with SIGTERM.
fn run_to_the_end(s: &Setup, clock: &TestClock) {
    let daemon = Daemon::start(&s.app, &clock.now(), &[]);
    let all_sent = wait_until(Duration::from_secs(240), POLL, || {
        s.db.status_counts().get("sent").copied().unwrap_or(0) == N as i64
    });
    let status = daemon.terminate(Duration::from_secs(60));
    assert!(
        all_sent,
        "not every digest was sent: {:?}\n{}",
        s.db.status_counts(),
        tail(&daemon_log(&s.app), 40)
    );
    assert!(status.success(), "SIGTERM exits 0, got {status}");
}

/// Checks the end state and returns the number of duplicate messages.
fn check_everyone_got_their_digest(s: &Setup) -> usize {
    let deliveries = s.db.deliveries();
    assert_eq!(deliveries.len(), N, "one delivery per subscriber and date");
    assert!(
        deliveries.values().all(|(status, _)| status == "sent"),
        "{:?}",
        s.db.status_counts()
    );
    let messages = complete_messages(&s.sink);
    let mut per_recipient: HashMap<String, HashSet<String>> = HashMap::new();
    for m in &messages {
        let key = message_key(&m.header("Message-ID").expect("Message-ID"));
        let (_, email) = deliveries
            .get(&key)
            .unwrap_or_else(|| panic!("a message whose Message-ID is no delivery's: {key}"));
        assert_eq!(m.envelope_to, vec![email.clone()], "sent to its subscriber");
        per_recipient.entry(email.clone()).or_default().insert(key);
    }
    let expected: HashSet<String> = (0..N).map(address).collect();
    let got: HashSet<String> = per_recipient.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "subscribers who got nothing: {missing:?}…"
    );
    assert_eq!(got.len(), N);
    assert!(
        per_recipient.values().all(|keys| keys.len() == 1),
        "a resend carries the same Message-ID as the first copy"
    );
    messages.len() - N
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_duplicates_only_what_was_in_flight() {
    let Some(s) = setup("sigkill_at_random_moments") else {
        return;
    };
    let clock = TestClock(Instant::now());
    let mut rng = rand::thread_rng();
    let mut planning_kills = 0;
    let mut sending_kills = 0;
    // Messages the server had accepted, in the life just killed, whose delivery was not yet
    // marked sent: the only ones that may be sent twice.
    let mut in_flight_total = 0;
    let mut seen = copies(&s.sink);
    for k in 0..KILLS {
        // Paced sending (the `mail.max_per_second` token bucket) keeps the 1,000 digests in
        // flight long enough for ten kills to land mid-send: unpaced, a fast run finishes
        // before the last kills.
        let daemon = Daemon::start(
            &s.app,
            &clock.now(),
            &[("PAPERBOY__MAIL__MAX_PER_SECOND", "100")],
        );
        if k < PLANNING_KILLS {
            // Kill while the planner is writing deliveries: a few more written in this life,
            // not all of them.
            let before = s.db.scalar("SELECT COUNT(*) FROM deliveries");
            let target = (before + rng.gen_range(1..=200)).min(N as i64 - 1);
            wait_until(Duration::from_secs(60), POLL, || {
                s.db.scalar("SELECT COUNT(*) FROM deliveries") >= target
            });
        } else {
            // Kill while sending, after a random number of further messages.
            // Counting dump files is cheap; parsing them all at each poll is not, and with a
            // thousand of them a loaded machine overshot the target until nothing was left to
            // send before the last kills.
            let before = s.sink.transaction_count();
            let more = rng.gen_range(1..=30);
            wait_until(Duration::from_secs(60), POLL, || {
                s.sink.transaction_count() >= before + more
            });
        }
        let planned = s.db.scalar("SELECT COUNT(*) FROM deliveries");
        let sent =
            s.db.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'");
        daemon.kill();
        if planned > 0 && planned < N as i64 {
            planning_kills += 1;
        } else if sent < N as i64 {
            sending_kills += 1;
        }
        // Let smtp-sink finish writing what it accepted before the kill.
        std::thread::sleep(Duration::from_millis(200));
        let now_copies = copies(&s.sink);
        let deliveries = s.db.deliveries();
        let in_flight = now_copies
            .iter()
            .filter(|(key, n)| {
                **n > seen.get(*key).copied().unwrap_or(0)
                    && deliveries
                        .get(*key)
                        .is_some_and(|(status, _)| status != "sent")
            })
            .count();
        in_flight_total += in_flight;
        seen = now_copies;
        eprintln!(
            "kill {}: {planned} planned, {sent} marked sent, {} received, {in_flight} accepted \
             but unmarked",
            k + 1,
            seen.values().sum::<usize>()
        );
    }
    run_to_the_end(&s, &clock);
    let duplicates = check_everyone_got_their_digest(&s);
    eprintln!(
        "SIGKILL: {} kills ({planning_kills} while planning, {sending_kills} while sending), \
         {N} digests, {duplicates} duplicates, {in_flight_total} messages in flight at the kills",
        KILLS
    );
    assert!(planning_kills >= 1, "at least one kill hit planning");
    assert!(sending_kills >= 10, "at least ten kills hit sending");
    assert!(
        duplicates <= in_flight_total,
        "{duplicates} duplicates, but only {in_flight_total} messages were in flight at kills"
    );
}

#[test]
fn sigterm_at_random_moments_sends_everything_exactly_once() {
    let Some(s) = setup("sigterm_at_random_moments") else {
        return;
    };
    let clock = TestClock(Instant::now());
    let mut rng = rand::thread_rng();
    let mut stops = 0;
    for k in 0..KILLS {
        if s.db
            .scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            == N as i64
        {
            break;
        }
        // Paced, as in the SIGKILL test, so that every stop lands mid-send.
        let daemon = Daemon::start(
            &s.app,
            &clock.now(),
            &[("PAPERBOY__MAIL__MAX_PER_SECOND", "100")],
        );
        if k == 0 {
            wait_until(Duration::from_secs(60), POLL, || {
                s.db.scalar("SELECT COUNT(*) FROM deliveries") >= 100
            });
        } else {
            // Counting dump files is cheap; parsing them all at each poll is not, and with a
            // thousand of them a loaded machine overshot the target until nothing was left to
            // send before the last kills.
            let before = s.sink.transaction_count();
            let more = rng.gen_range(1..=30);
            wait_until(Duration::from_secs(60), POLL, || {
                s.sink.transaction_count() >= before + more
            });
        }
        let status = daemon.terminate(Duration::from_secs(60));
        assert!(
            status.success(),
            "SIGTERM exits 0, got {status}\n{}",
            tail(&daemon_log(&s.app), 30)
        );
        stops += 1;
        // A clean stop leaves nothing leased: what was in flight was recorded, the rest
        // handed back.
        let leased =
            s.db.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sending'");
        assert_eq!(leased, 0, "deliveries left leased after SIGTERM");
    }
    run_to_the_end(&s, &clock);
    let duplicates = check_everyone_got_their_digest(&s);
    eprintln!("SIGTERM: {stops} stops, {N} digests, {duplicates} duplicates");
    assert!(
        stops >= 10,
        "at least ten stops before everything was sent, got {stops}"
    );
    assert_eq!(duplicates, 0, "a clean stop never sends a digest twice");
}
