//! Stopping and reloading the daemon the way systemd does: SIGTERM in the middle of sending
//! (exit 0, nothing lost, nothing sent twice), SIGTERM when a transaction outlasts
//! `daemon.shutdown_timeout_secs`, and SIGHUP (log level applied, the rest named).

mod common;
mod delivery_support;
mod ops_support;

use common::*;
use delivery_support::*;
use ops_support::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const NOW: &str = "2024-10-25T09:00:00Z";

fn slow_sink(test: &str, secs: u32) -> Option<SmtpSink> {
    SmtpSink::start_with_or_skip(
        test,
        SmtpSinkOptions {
            extra_args: vec!["-w".into(), secs.to_string()],
            ..SmtpSinkOptions::default()
        },
    )
}

/// `paperboy run` with its log in `<app dir>/daemon.log`, without waiting for anything: the
/// caller waits for `/healthz` (the signal handlers are installed before the port is bound).
fn start_quiet_daemon(app: &TestApp, env: &[(&str, &str)]) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(app.dir().join("daemon.log"))
        .expect("daemon log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_paperboy"));
    // Only the variables this test sets, as the shared harness does.
    for (key, _) in std::env::vars_os() {
        if key
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("PAPERBOY")
        {
            command.env_remove(&key);
        }
    }
    command
        .arg("--config")
        .arg(&app.config_path)
        .arg("run")
        .current_dir(app.dir())
        .env("PAPERBOY_NOW", NOW)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    Daemon {
        child: command.spawn().expect("spawn paperboy run"),
    }
}

/// Messages per envelope recipient.
fn per_recipient(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in sink.messages() {
        for to in &m.envelope_to {
            *out.entry(to.clone()).or_default() += 1;
        }
    }
    out
}

#[test]
fn sigterm_in_the_middle_of_sending_exits_0_and_loses_nothing_and_sends_nothing_twice() {
    const T: &str =
        "sigterm_in_the_middle_of_sending_exits_0_and_loses_nothing_and_sends_nothing_twice";
    const N: usize = 8;
    let Some(sink) = slow_sink(T, 1) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp(&sink).build();
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, N, "07:00", "UTC", "daily");

    let port = free_port().to_string();
    let env = [
        ("PAPERBOY__WEB__BIND", format!("127.0.0.1:{port}")),
        ("PAPERBOY__MAIL__MAX_CONNECTIONS", "2".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let daemon = Daemon::start(&app, NOW, &env);
    // SIGTERM as soon as the first digest is in: two connections are then mid-transaction.
    sink.wait_for_messages(1, Duration::from_secs(60));
    let stopping = Instant::now();
    let status = daemon.terminate(Duration::from_secs(30));
    let log = daemon_log(&app);
    assert_eq!(status.code(), Some(0), "{}", tail(&log, 40));
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "in-flight sends of ~1 s each should finish quickly, took {:?}",
        stopping.elapsed()
    );
    assert!(log.contains("SIGTERM received"), "{}", tail(&log, 20));

    let counts = db.status_counts();
    let sent = *counts.get("sent").unwrap_or(&0) as usize;
    assert!(
        sent < N,
        "the stop must come mid-way, or this test tests nothing: {counts:?}"
    );
    assert_eq!(
        counts.get("sending"),
        None,
        "no delivery is left leased by the stopped process: {counts:?}"
    );
    let received = per_recipient(&sink);
    assert_eq!(
        received.values().sum::<usize>(),
        sent,
        "every message the server accepted is marked sent, and nothing else: {counts:?} {received:?}"
    );
    assert!(
        sink.messages().iter().all(is_complete),
        "no transaction was cut off"
    );

    // A restart sends the rest, once.
    let daemon = Daemon::start(&app, &plus_secs(NOW, 60), &env);
    sink.wait_for_messages(N, Duration::from_secs(60));
    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 40));
    let received = per_recipient(&sink);
    assert_eq!(
        received.len(),
        N,
        "every subscriber got a digest: {received:?}"
    );
    assert!(
        received.values().all(|&n| n == 1),
        "nobody got two: {received:?}"
    );
    assert_eq!(db.status_counts().get("sent"), Some(&(N as i64)));
}

#[test]
fn a_transaction_longer_than_shutdown_timeout_is_cut_off_and_handed_back() {
    const T: &str = "a_transaction_longer_than_shutdown_timeout_is_cut_off_and_handed_back";
    // smtp-sink answers DATA after 20 s; the daemon may wait 1 s.
    let Some(sink) = slow_sink(T, 20) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp(&sink).build();
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, 1, "07:00", "UTC", "daily");

    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(
        &app,
        NOW,
        &[
            ("PAPERBOY__WEB__BIND", bind.as_str()),
            ("PAPERBOY__DAEMON__SHUTDOWN_TIMEOUT_SECS", "1"),
        ],
    );
    // Wait until the delivery is leased (the transaction is under way).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !db.status_counts().contains_key("sending") {
        assert!(Instant::now() < deadline, "{}", tail(&daemon_log(&app), 30));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    let status = daemon.terminate(Duration::from_secs(15));
    let log = daemon_log(&app);
    assert_eq!(status.code(), Some(0), "{}", tail(&log, 30));
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "shutdown_timeout_secs = 1 bounds the stop, took {:?}",
        stopping.elapsed()
    );
    assert!(
        log.contains("did not finish within daemon.shutdown_timeout_secs"),
        "{}",
        tail(&log, 20)
    );
    let counts = db.status_counts();
    assert_eq!(
        counts.get("sending"),
        None,
        "the cut-off delivery is handed back, not left leased: {counts:?}"
    );
    assert_eq!(counts.get("sent"), None, "{counts:?}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL"),
        0
    );
}

#[test]
fn sighup_applies_the_log_level_and_names_what_needs_a_restart() {
    let app = TestApp::builder()
        .file_transport()
        .extra_toml("[log]\nlevel = \"warn\"\n")
        .build();
    migrate(&app);
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    // Not Daemon::start: it waits for an INFO line, which level warn hides.
    let daemon = start_quiet_daemon(&app, &[("PAPERBOY__WEB__BIND", bind.as_str())]);
    wait_until_serving(port, Duration::from_secs(30), || daemon_log(&app));
    assert!(
        !daemon_log(&app).contains("web server listening"),
        "at level warn no INFO line is logged:\n{}",
        daemon_log(&app)
    );

    let config = app.config_text();
    let changed = config.replace("level = \"warn\"", "level = \"info\"")
        + "\n[daemon]\nshutdown_timeout_secs = 5\n";
    std::fs::write(&app.config_path, changed).expect("rewrite config");
    signal(daemon.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon_log(&app).contains("apply only after a restart") {
        assert!(Instant::now() < deadline, "{}", daemon_log(&app));
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = daemon_log(&app);
    // An INFO line after the reload proves the new level is in force.
    assert!(
        log.contains("SIGHUP: configuration re-read"),
        "log.level = info applies at once:\n{log}"
    );
    assert!(
        log.contains("\"daemon\""),
        "the changed section is named:\n{log}"
    );

    // A broken file changes nothing and says which key.
    std::fs::write(
        &app.config_path,
        app.config_text() + "\n[digest]\nmax_papers = \"lots\"\n",
    )
    .expect("rewrite config");
    signal(daemon.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon_log(&app).contains("reload failed") {
        assert!(Instant::now() < deadline, "{}", daemon_log(&app));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon_log(&app).contains("digest.max_papers"));
    assert_eq!(
        http_get(port, "/healthz").expect("still serving").status,
        200
    );

    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
}

#[test]
fn sighup_turns_a_source_on_without_a_restart() {
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    // HF off at start; the fetch schedule fires every second so the next run comes quickly.
    let app = TestApp::builder()
        .file_transport()
        .extra_toml("[schedule]\nfetch = \"* * * * * *\"\n")
        .build();
    migrate(&app);
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&app, NOW, &[("PAPERBOY__WEB__BIND", bind.as_str())]);
    wait_until_serving(port, Duration::from_secs(30), || daemon_log(&app));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        scrape(port).value("paperboy_papers_fetched_total", &[("source", "hf")]),
        None,
        "hf is off: no fetch yet"
    );

    let config = app.config_text();
    let enabled = config.replace(
        "[sources.hf]\nenabled = false\n",
        &format!(
            "[sources.hf]\nenabled = true\nbase_url = \"{}\"\n",
            server.base_url()
        ),
    );
    assert_ne!(
        config, enabled,
        "the test config has a [sources.hf] table to edit"
    );
    std::fs::write(&app.config_path, enabled).expect("rewrite config");
    signal(daemon.pid(), "HUP");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fetched = scrape(port)
            .value("paperboy_papers_fetched_total", &[("source", "hf")])
            .unwrap_or(0.0);
        if fetched >= 29.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hf not fetched after the reload:\n{}",
            tail(&daemon_log(&app), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = daemon_log(&app);
    assert!(
        log.contains("sources (from the next fetch run)"),
        "the reload says what it applied:\n{}",
        tail(&log, 20)
    );
    assert!(
        !log.contains("apply only after a restart"),
        "a sources change needs no restart:\n{}",
        tail(&log, 20)
    );
    assert_eq!(app.paper_ids(NOW).len(), 29, "the papers are stored");

    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
}
