//! Scale-out, proven with real processes: three `paperboy run` instances share one fresh
//! PostgreSQL database and one Postfix `smtp-sink`, 10,000 subscribers are due a digest, and one
//! instance that is not the leader is SIGKILLed while it sends. At the end every subscriber has
//! exactly their digest, the only duplicates are messages the killed instance had in flight (the
//! server accepted them, their delivery was not yet marked sent), and each schedule tick
//! fetched once, on the leader.
//!
//! PostgreSQL only: in the SQLite pass of `scripts/test.sh` it says so and returns; it needs
//! PostgreSQL and smtp-sink (skips without them, fails under `PAPERBOY_REQUIRE_ALL=1`).

use crate::common::*;
use crate::delivery_support::*;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const N: usize = 10_000;
const START: &str = "2024-10-25T09:00:00Z";
const INSTANCES: usize = 3;

// Each poll reads ten thousand of the sink's files: no need to do it more often.
const POLL: Duration = Duration::from_millis(50);

/// Complete messages per delivery key (the Message-ID's unique part).
fn copies(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in complete_messages(sink) {
        let id = m.header("Message-ID").expect("Message-ID");
        *out.entry(message_key(&id)).or_insert(0) += 1;
    }
    out
}

fn log_of(app: &TestApp, i: usize) -> String {
    std::fs::read_to_string(app.dir().join(format!("node{i}.log"))).unwrap_or_default()
}

/// Schedule ticks (the `tick=` field) that `line` appears with, in one instance's log.
fn ticks_with(log: &str, line: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(line))
        .filter_map(|l| l.split("tick=").nth(1))
        .map(|t| t.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn three_instances_on_postgresql_share_the_work_and_a_sigkill_loses_nothing() {
    let test = "three_instances_on_postgresql_share_the_work_and_a_sigkill_loses_nothing";
    if std::env::var(TEST_DATABASE_ENV).is_ok() && !test_on_postgres() {
        eprintln!("{test}: PostgreSQL only; it runs in the PostgreSQL pass");
        return;
    }
    let started = Instant::now();
    let Some(pg) = PgDatabase::create_or_skip(test) else {
        return;
    };
    let Some(sink) = SmtpSink::start_or_skip(test) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder()
        .hf(&server)
        .smtp(&sink)
        .database_url(&pg.url)
        // A fetch tick every 15 s while the test runs; a short lease so that the test would
        // also see a takeover quickly if the leader died.
        .extra_toml(
            "[schedule]\nfetch = \"*/15 * * * * *\"\n\
             [daemon]\nleader_lease_secs = 6\n",
        )
        .build();
    migrate(&app);
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, N, "07:00", "UTC", "daily");

    let mut nodes: Vec<Option<Daemon>> = (0..INSTANCES)
        .map(|i| {
            let id = format!("node{i}");
            Some(Daemon::start_logged(
                &app,
                START,
                &[
                    ("PAPERBOY__DAEMON__INSTANCE_ID", &id),
                    ("PAPERBOY__DATABASE__MAX_CONNECTIONS", "4"),
                ],
                &format!("node{i}.log"),
            ))
        })
        .collect();
    const LEADING: &str = "took the leader lease";
    let leader = (0..INSTANCES)
        .find(|&i| log_of(&app, i).contains(LEADING))
        .expect("one instance took the leader lease at start");
    let victim = (leader + 1) % INSTANCES;

    // Kill a follower once a third of the digests went out, while deliveries are leased.
    let busy = wait_until(Duration::from_secs(300), POLL, || {
        db.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sending'") > 0
            && db.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'") >= (N / 3) as i64
    });
    assert!(busy, "sending did not get going: {:?}", db.status_counts());
    let victim_pid = nodes[victim].as_ref().unwrap().pid();
    nodes[victim].take().unwrap().kill();
    // What the dead process held: its leases stay in the table until a survivor reclaims them.
    let held = db.leased_by_pid(victim_pid);
    let held_by_victim = held.len();
    // Let smtp-sink finish writing what it accepted before the kill; of the victim's leased
    // deliveries, those the server already has are the ones that may arrive twice.
    std::thread::sleep(Duration::from_millis(300));
    let at_kill = copies(&sink);
    let in_flight = held.iter().filter(|key| at_kill.contains_key(*key)).count();
    eprintln!(
        "killed node{victim} (pid {victim_pid}, not the leader node{leader}) holding \
         {held_by_victim} leased deliveries; {in_flight} accepted by the server but not marked sent"
    );
    assert!(held_by_victim > 0, "the killed instance was sending");

    let all_sent = wait_until(Duration::from_secs(600), POLL, || {
        db.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'") == N as i64
    });
    let logs: Vec<String> = (0..INSTANCES).map(|i| log_of(&app, i)).collect();
    assert!(
        all_sent,
        "not every digest was sent: {:?}\n{}",
        db.status_counts(),
        tail(&logs[leader], 30)
    );
    for (i, node) in nodes.iter_mut().enumerate() {
        if let Some(d) = node.take() {
            let status = d.terminate(Duration::from_secs(60));
            assert!(status.success(), "node{i} exits 0 on SIGTERM, got {status}");
        }
    }

    // Everyone got their digest, once, with the Message-ID planned for them.
    let deliveries = db.deliveries();
    assert_eq!(deliveries.len(), N, "one delivery per subscriber");
    let messages = complete_messages(&sink);
    let mut per_recipient: HashMap<String, HashSet<String>> = HashMap::new();
    for m in &messages {
        let key = message_key(&m.header("Message-ID").expect("Message-ID"));
        let (_, email) = deliveries
            .get(&key)
            .unwrap_or_else(|| panic!("a message whose Message-ID is no delivery's: {key}"));
        assert_eq!(m.envelope_to, vec![email.clone()]);
        per_recipient.entry(email.clone()).or_default().insert(key);
    }
    let expected: HashSet<String> = (0..N).map(address).collect();
    let got: HashSet<String> = per_recipient.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "subscribers who got nothing: {missing:?}"
    );
    assert!(per_recipient.values().all(|keys| keys.len() == 1));
    let duplicates = messages.len() - N;

    // Who sent what, from each survivor's "sent" lines (the killed one's count is the rest).
    let sent_per_node: Vec<u64> = logs
        .iter()
        .map(|l| {
            l.lines()
                .filter_map(|x| x.split(": sent sent=").nth(1))
                .filter_map(|x| x.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .collect();

    // Fetch: each tick fetched exactly once, on one instance, and the others stood aside.
    let mut fetched: HashMap<String, usize> = HashMap::new();
    for log in &logs {
        for tick in ticks_with(log, "scheduled fetch: leading") {
            *fetched.entry(tick).or_default() += 1;
        }
    }
    let mut stood_aside: HashSet<String> = HashSet::new();
    for log in &logs {
        stood_aside.extend(ticks_with(log, "scheduled fetch: not the leader"));
    }
    assert!(
        !fetched.is_empty(),
        "no scheduled fetch ran during the test"
    );
    assert!(
        fetched.values().all(|&n| n == 1),
        "a tick fetched more than once: {fetched:?}"
    );
    assert!(
        stood_aside.iter().all(|t| fetched.contains_key(t)),
        "a tick where nobody fetched: aside {stood_aside:?}, fetched {fetched:?}"
    );
    let planners: Vec<usize> = (0..INSTANCES)
        .filter(|&i| logs[i].contains("planning done"))
        .collect();
    assert_eq!(planners, vec![leader], "only the leader planned");

    eprintln!(
        "three instances: {N} digests, {} messages, {duplicates} duplicates, {in_flight} in \
         flight at the kill; sent per instance (logged by survivors) {sent_per_node:?}; {} fetch \
         ticks, each fetched once; wall time {:.1} s",
        messages.len(),
        fetched.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, but only {in_flight} messages were in flight at the kill"
    );
}
