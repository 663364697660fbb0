//! Stopping and reloading the daemon the way systemd does: SIGTERM in the middle of sending
//! (exit 0, nothing lost, nothing sent twice), SIGTERM when a transaction outlasts
//! `daemon.shutdown_timeout_secs`, and SIGHUP (log level applied, the rest named). The long
//! commands stop the same way (`paperboy send --now` with thousands due, a `fetch --from/--to`
//! backfill, a large `subscriber import`): SIGTERM exits 0 and running them again finishes the
//! work with nothing done twice. And the daemon's first start fetches at once.

use crate::common::*;
use crate::delivery_support::*;
use crate::ops_support::*;
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
    crate::common::without_developer_env(&mut command);
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

/// A `paperboy` command started in the background, its stdout and stderr in files of the app's
/// directory, for a test to signal while it works. Killed if still running when dropped.
struct Background {
    child: std::process::Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Background {
    fn start(app: &TestApp, now: &str, args: &[&str], env: &[(&str, &str)], name: &str) -> Self {
        let out = app.dir().join(format!("{name}.out"));
        let err = app.dir().join(format!("{name}.err"));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_paperboy"));
        crate::common::without_developer_env(&mut command);
        command
            .arg("--config")
            .arg(&app.config_path)
            .args(args)
            .current_dir(app.dir())
            .env("PAPERBOY_NOW", now)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"));
        Background {
            child: command.spawn().expect("spawn paperboy"),
            out,
            err,
        }
    }

    /// What it printed so far: stdout, then stderr.
    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            tail(&std::fs::read_to_string(&self.err).unwrap_or_default(), 30)
        )
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// SIGTERM, then the exit status (the test fails if it takes longer than `timeout`).
    fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        self.wait(timeout)
    }

    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "paperboy did not exit within {timeout:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn send_now_stopped_by_sigterm_exits_0_and_the_next_run_sends_the_rest_once() {
    const T: &str = "send_now_stopped_by_sigterm_exits_0_and_the_next_run_sends_the_rest_once";
    const N: usize = 2000;
    const STOPS: usize = 3;
    let Some(sink) = SmtpSink::start_or_skip(T) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp(&sink).build();
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, N, "07:00", "UTC", "daily");
    // Paced, so that each run is still sending when its SIGTERM comes.
    let env = [("PAPERBOY__MAIL__MAX_PER_SECOND", "300")];
    let mut rng = rand::thread_rng();
    for stop in 0..STOPS {
        let before = sink.transaction_count();
        let mut send = Background::start(
            &app,
            &plus_secs(NOW, stop as i64 * 60),
            &["send", "--now"],
            &env,
            &format!("send{stop}"),
        );
        let more = rand::Rng::gen_range(&mut rng, 20..=200);
        let started = wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
            sink.transaction_count() >= before + more || !send.is_running()
        });
        assert!(
            started && send.is_running(),
            "not sending yet:\n{}",
            send.output()
        );
        let status = send.terminate(Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "SIGTERM exits 0\n{}", send.output());
        assert!(
            send.stdout().contains("stopped on request"),
            "it says it stopped and how to go on:\n{}",
            send.output()
        );
        // Let smtp-sink finish writing its last dump files.
        std::thread::sleep(Duration::from_millis(200));
        let counts = db.status_counts();
        let sent = *counts.get("sent").unwrap_or(&0) as usize;
        assert!(sent < N, "the stop came mid-send: {counts:?}");
        assert_eq!(
            counts.get("sending"),
            None,
            "nothing is left leased: {counts:?}"
        );
        assert_eq!(
            complete_messages(&sink).len(),
            sent,
            "every message the server accepted is recorded as sent, and only those: {counts:?}"
        );
        eprintln!("stop {}: {sent} of {N} sent", stop + 1);
    }
    let out = app
        .paperboy(["send", "--now"])
        .at(&plus_secs(NOW, STOPS as i64 * 60))
        .timeout(Duration::from_secs(240))
        .run();
    out.assert_success();
    assert_eq!(db.status_counts().get("sent"), Some(&(N as i64)), "{out}");

    // Every subscriber got exactly one digest: one message, one Message-ID.
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    for m in complete_messages(&sink) {
        let id = m
            .header("Message-ID")
            .expect("every digest has a Message-ID");
        for to in &m.envelope_to {
            ids.entry(to.clone()).or_default().push(id.clone());
        }
    }
    assert_eq!(ids.len(), N, "every subscriber got a digest");
    let doubled: Vec<_> = ids.iter().filter(|(_, v)| v.len() != 1).take(5).collect();
    assert!(doubled.is_empty(), "sent twice: {doubled:?}");
}

#[test]
fn a_backfill_stopped_by_sigterm_exits_0_between_days_and_the_next_run_completes() {
    const DAYS: [&str; 8] = [
        "2024-10-18",
        "2024-10-19",
        "2024-10-20",
        "2024-10-21",
        "2024-10-22",
        "2024-10-23",
        "2024-10-24",
        "2024-10-25",
    ];
    let server = FixtureServer::start();
    for day in DAYS {
        server.set_day_fixture(day, HF_DAY_2024_10_25);
        // Each day takes a while to answer, so that the stop lands between two of them.
        server.fail(day, Fault::Delay(Duration::from_millis(400)));
    }
    let app = TestApp::builder().hf(&server).build();
    migrate(&app);
    let (from, to) = (DAYS[0], DAYS[DAYS.len() - 1]);
    let args = ["fetch", "--from", from, "--to", to];
    let mut fetch = Background::start(&app, NOW, &args, &[], "backfill");
    let asked = wait_until(Duration::from_secs(60), Duration::from_millis(5), || {
        server.request_count(DAYS[1]) > 0
    });
    assert!(asked, "the backfill did not start:\n{}", fetch.output());
    let status = fetch.terminate(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0\n{}",
        fetch.output()
    );
    let out = fetch.stdout();
    assert!(
        out.contains("stopped on request") && out.contains("Run the same command again"),
        "it says what was done and how to resume:\n{}",
        fetch.output()
    );
    // The day under way was finished and stored; the days after it were never asked for.
    assert!(
        out.contains(&format!("hf {}: 29 papers", DAYS[1])),
        "{}",
        fetch.output()
    );
    assert_eq!(server.request_count(to), 0, "the last day was not reached");
    assert_eq!(app.paper_ids(NOW).len(), 29, "what was fetched is stored");

    let again = app.paperboy(args).at(NOW).run();
    again.assert_success();
    for day in DAYS {
        assert!(
            again.stdout.contains(&format!("hf {day}: 29 papers")),
            "{day} fetched by the second run:\n{again}"
        );
        assert!(server.request_count(day) >= 1);
    }
    assert!(!again.stdout.contains("stopped on request"));
}

#[test]
fn an_import_stopped_by_sigterm_exits_0_and_the_next_run_adds_the_rest_once() {
    const ROWS: usize = 30_000;
    let app = TestApp::builder().build();
    migrate(&app);
    let path = app.dir().join("subscribers.csv");
    let mut csv = String::from("email,interests,send_time,timezone\n");
    for i in 0..ROWS {
        csv.push_str(&format!(
            "{},\"diffusion models\" OR agents,07:00,Europe/Paris\n",
            address(i)
        ));
    }
    std::fs::write(&path, csv).expect("write csv");
    let file = path.display().to_string();
    let args = ["subscriber", "import", file.as_str(), "--confirmed"];
    let db = Db::open(&app);
    let count = || db.scalar("SELECT COUNT(*) FROM subscribers");

    let mut import = Background::start(&app, NOW, &args, &[], "import");
    // Stop once the first batch is committed, mid-way through the writing pass.
    let writing = wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
        count() > 0 || !import.is_running()
    });
    assert!(writing && import.is_running(), "{}", import.output());
    let status = import.terminate(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0\n{}",
        import.output()
    );
    let first = count() as usize;
    assert!(
        first > 0 && first < ROWS,
        "the stop came mid-way: {first} of {ROWS} imported"
    );
    assert_eq!(first % 1000, 0, "whole batches only: {first}");
    assert!(
        import
            .stdout()
            .contains(&format!("stopped on request: {first} subscribers imported")),
        "{}",
        import.output()
    );

    let again = app
        .paperboy(args)
        .at(NOW)
        .timeout(Duration::from_secs(240))
        .run();
    again.assert_success();
    assert!(
        again.stdout.contains(&format!(
            "imported {} subscribers; {first} already subscribed",
            ROWS - first
        )),
        "{again}"
    );
    assert_eq!(count() as usize, ROWS);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT email) FROM subscribers") as usize,
        ROWS,
        "nobody was added twice"
    );
}

#[test]
fn the_first_start_fetches_at_once_and_a_restart_right_after_does_not() {
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    // Hourly (the default): without the fetch at start the first papers would come at 10:00.
    let app = TestApp::builder()
        .hf(&server)
        .extra_toml("[schedule]\nfetch = \"0 0 * * * *\"\n")
        .build();
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let env = [("PAPERBOY__WEB__BIND", bind.as_str())];
    // A fresh database: the daemon migrates it.
    let daemon = Daemon::start(&app, NOW, &env);
    let fetched = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        app.paper_ids(NOW).len() == 29
    });
    assert!(
        fetched,
        "no papers within 10 s of start:\n{}",
        tail(&daemon_log(&app), 30)
    );
    let log = daemon_log(&app);
    assert!(
        log.contains("fetch at start: leading, fetching"),
        "{}",
        tail(&log, 30)
    );
    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
    let requests = server.requests().len();
    assert!(requests >= 1);

    // Restarted a minute later: the last fetch is after the last tick, so nothing is fetched
    // until 10:00.
    let daemon = Daemon::start(&app, &plus_secs(NOW, 60), &env);
    wait_until_serving(port.parse().expect("port"), Duration::from_secs(30), || {
        daemon_log(&app)
    });
    std::thread::sleep(Duration::from_secs(3));
    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
    assert_eq!(
        server.requests().len(),
        requests,
        "the restart fetched again: {:?}\n{}",
        server.requests(),
        tail(&daemon_log(&app), 30)
    );
    assert_eq!(
        daemon_log(&app)
            .matches("fetch at start: leading, fetching")
            .count(),
        1,
        "only the first start fetched"
    );
}

/// With `matching.highlight_sentences` on (the default), the daemon embeds the new papers'
/// abstract sentences after its fetch run, once for every paper.
#[test]
fn the_daemon_embeds_the_abstract_sentences_after_its_fetch() {
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder()
        .hf(&server)
        .highlight_sentences(true)
        .extra_toml("[schedule]\nfetch = \"0 0 * * * *\"\n")
        .build();
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&app, NOW, &[("PAPERBOY__WEB__BIND", bind.as_str())]);
    let db = Db::open(&app);
    let embedded = wait_until(Duration::from_secs(90), Duration::from_millis(200), || {
        db.scalar("SELECT COUNT(*) FROM paper_vectors WHERE sentences IS NOT NULL") == 29
    });
    let log = daemon_log(&app);
    let status = daemon.terminate(Duration::from_secs(30));
    assert!(embedded, "no sentences within 90 s:\n{}", tail(&log, 30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM paper_vectors WHERE LENGTH(sentences) > 0"),
        29,
        "every abstract of the day has sentences"
    );
    assert_eq!(
        daemon_log(&app)
            .matches("embedded abstract sentences")
            .count(),
        1,
        "once: {}",
        tail(&daemon_log(&app), 30)
    );
}

#[test]
fn ctrl_c_stops_like_sigterm_and_a_second_ctrl_c_exits_130_at_once() {
    const DAYS: [&str; 3] = ["2024-10-23", "2024-10-24", "2024-10-25"];
    let server = FixtureServer::start();
    for day in DAYS {
        server.set_day_fixture(day, HF_DAY_2024_10_25);
        // Slow days (under the 2 s source timeout): a stop must wait for the day under way.
        server.fail(day, Fault::Delay(Duration::from_millis(1500)));
    }
    let app = TestApp::builder().hf(&server).build();
    migrate(&app);
    let args = ["fetch", "--from", DAYS[0], "--to", DAYS[2]];
    let asked = |server: &FixtureServer, n: usize| {
        wait_until(Duration::from_secs(60), Duration::from_millis(5), || {
            server.requests().len() >= n
        })
    };

    // One Ctrl-C: the day under way finishes, exit 0.
    let mut fetch = Background::start(&app, NOW, &args, &[], "interrupt-once");
    assert!(asked(&server, 1), "{}", fetch.output());
    signal(fetch.child.id(), "INT");
    let status = fetch.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", fetch.output());
    assert!(
        fetch.stdout().contains("stopped on request"),
        "{}",
        fetch.output()
    );
    assert_eq!(server.request_count(DAYS[2]), 0, "no day after the stop");

    // Two: the second exits 130 at once, without waiting for the day under way.
    let before = server.requests().len();
    let mut fetch = Background::start(&app, NOW, &args, &[], "interrupt-twice");
    assert!(asked(&server, before + 1), "{}", fetch.output());
    signal(fetch.child.id(), "INT");
    std::thread::sleep(Duration::from_millis(100));
    signal(fetch.child.id(), "INT");
    let status = fetch.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{}", fetch.output());
    assert!(
        !fetch.stdout().contains(&format!("hf {}", DAYS[0])),
        "it did not wait for the day under way to finish:\n{}",
        fetch.output()
    );
}
