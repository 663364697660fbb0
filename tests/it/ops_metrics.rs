//! `/metrics`, `/readyz` and `/healthz` of the running daemon, read the way Prometheus and a
//! load balancer read them. The exposition is parsed by a Prometheus text-format parser (the
//! `prometheus-parse` crate), and the counters must move as smtp-sink accepts the digests.

use crate::common::*;
use crate::delivery_support::*;
use crate::ops_support::*;
use std::time::{Duration, Instant};

const NOW: &str = "2024-10-25T09:00:00Z";
const N: usize = 3;

fn unix(at: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(at)
        .expect("rfc3339")
        .timestamp() as f64
}

#[test]
fn metrics_parse_and_the_counters_move_as_mail_is_sent() {
    const T: &str = "metrics_parse_and_the_counters_move_as_mail_is_sent";
    // One second per DATA and one connection: the sends are spread over seconds, so the first
    // scrape sees the queue before it drains.
    let Some(sink) = SmtpSink::start_with_or_skip(
        T,
        SmtpSinkOptions {
            extra_args: vec!["-w".into(), "1".into()],
            ..SmtpSinkOptions::default()
        },
    ) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp(&sink).build();
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, N, "07:00", "UTC", "daily");

    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(
        &app,
        NOW,
        &[
            ("PAPERBOY__WEB__BIND", bind.as_str()),
            ("PAPERBOY__MAIL__MAX_CONNECTIONS", "1"),
            // No tick since FETCH1, so no fetch at start moves the gauge checked below.
            ("PAPERBOY__SCHEDULE__FETCH", "0 0 0 1 1 *"),
        ],
    );
    wait_until_serving(port, Duration::from_secs(30), || daemon_log(&app));

    let first = scrape(port);
    let sent_at_start = first.get("paperboy_digests_sent_total", &[]);
    assert!(
        sent_at_start < N as f64,
        "the first scrape comes before the last of {N} slow sends: {sent_at_start}"
    );
    assert_eq!(first.get("paperboy_database_up", &[]), 1.0);
    assert_eq!(
        first.get(
            "paperboy_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // Fetched by `paperboy fetch` at FETCH1, read back from the database.
    assert_eq!(
        first.get(
            "paperboy_last_fetch_success_timestamp_seconds",
            &[("source", "hf")]
        ),
        unix(FETCH1)
    );

    // Scrape until every digest is counted; keep what the counter went through.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = vec![sent_at_start];
    let last = loop {
        let s = scrape(port);
        let sent = s.get("paperboy_digests_sent_total", &[]);
        if seen.last() != Some(&sent) {
            seen.push(sent);
        }
        // The database gauges are read at the start of a scrape and the counters at its end,
        // so a scrape taken while the last digest is settled can count it sent and not yet
        // show it in the queue: wait for both (a flake at 2 of 3 before).
        if sent >= N as f64 && s.get("paperboy_deliveries", &[("status", "sent")]) >= N as f64 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "digests_sent stayed at {sent}; log:\n{}",
            tail(&daemon_log(&app), 40)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "a counter only goes up: {seen:?}"
    );
    assert_eq!(sink.messages().len(), N, "the server got each digest");
    assert_eq!(last.get("paperboy_digests_sent_total", &[]), N as f64);
    assert_eq!(last.get("paperboy_digests_planned_total", &[]), N as f64);
    assert_eq!(last.get("paperboy_digests_retried_total", &[]), 0.0);
    assert_eq!(last.get("paperboy_digests_failed_total", &[]), 0.0);
    assert_eq!(
        last.histogram_count("paperboy_send_duration_seconds"),
        N as u64
    );
    assert!(
        last.text
            .contains("paperboy_send_duration_seconds_bucket{le=\"+Inf\"} 3"),
        "{}",
        last.text
    );
    // Queue depth by status, from the database.
    assert_eq!(
        last.get("paperboy_deliveries", &[("status", "sent")]),
        N as f64
    );
    assert_eq!(
        last.get("paperboy_deliveries", &[("status", "planned")]),
        0.0
    );
    assert_eq!(last.get("paperboy_deliveries", &[("status", "retry")]), 0.0);
    assert_eq!(last.get("paperboy_deliveries_due", &[]), 0.0);
    let last_send = last.get("paperboy_last_send_success_timestamp_seconds", &[]);
    assert!(
        (unix(NOW)..unix(NOW) + 120.0).contains(&last_send),
        "last send at the daemon's clock (PAPERBOY_NOW): {last_send}"
    );
    let age = last.get("paperboy_scheduler_heartbeat_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "heartbeat age {age}");
    assert!(
        !last.text.contains("paperboy_smtp_errors_total{"),
        "no SMTP error happened:\n{}",
        last.text
    );

    let ready = http_get(port, "/readyz").expect("GET /readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let health = http_get(port, "/healthz").expect("GET /healthz");
    assert_eq!(health.status, 200);

    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
}

#[test]
fn smtp_errors_are_counted_by_class_and_do_not_make_the_daemon_unready() {
    // Nothing listens on this port: every attempt fails to connect, temporarily.
    let closed = free_port();
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp_port(closed).build();
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, 2, "07:00", "UTC", "daily");

    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&app, NOW, &[("PAPERBOY__WEB__BIND", bind.as_str())]);
    wait_until_serving(port, Duration::from_secs(30), || daemon_log(&app));

    // Wait for a scrape that shows a counted retry and a delivery waiting in `retry`: a
    // delivery whose next attempt has started is `sending` again for a moment, so one scrape
    // can show the counter but not the queue.
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = scrape(port);
        if s.value("paperboy_digests_retried_total", &[])
            .unwrap_or(0.0)
            >= 1.0
            && s.value("paperboy_deliveries", &[("status", "retry")])
                .unwrap_or(0.0)
                >= 1.0
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no retry counted and queued; log:\n{}\nmetrics:\n{}",
            tail(&daemon_log(&app), 40),
            s.text
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s.get("paperboy_digests_sent_total", &[]), 0.0);
    assert!(
        s.get("paperboy_smtp_errors_total", &[("class", "connection")]) >= 1.0,
        "{}",
        s.text
    );
    assert!(s.get("paperboy_deliveries", &[("status", "retry")]) >= 1.0);
    // An SMTP outage is for the operator (metrics, alerts), not a reason to pull the web
    // pages out of a load balancer.
    let ready = http_get(port, "/readyz").expect("GET /readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);

    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
}

#[test]
fn readyz_turns_503_when_a_source_stays_down_for_three_scheduled_fetches() {
    // Fetch every second from an address where nothing listens.
    let app = TestApp::builder()
        .file_transport()
        .extra_toml("[schedule]\nfetch = \"* * * * * *\"\n")
        .build();
    migrate(&app);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(
        &app,
        NOW,
        &[
            ("PAPERBOY__WEB__BIND", bind.as_str()),
            ("PAPERBOY__SOURCES__HF__ENABLED", "true"),
            ("PAPERBOY__SOURCES__HF__BASE_URL", dead.as_str()),
        ],
    );
    wait_until_serving(port, Duration::from_secs(30), || daemon_log(&app));
    // The port answers before the scheduler's first turn, when /readyz is still 503 ("has
    // not completed a first turn yet"): wait for that turn, not for a lucky race.
    let mut first = http_get(port, "/readyz").expect("GET /readyz");
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.body.contains("has not completed a first turn") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        first = http_get(port, "/readyz").expect("GET /readyz");
    }
    assert_eq!(
        first.status, 200,
        "ready until three scheduled fetches have failed: {}",
        first.body
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let unready = loop {
        let r = http_get(port, "/readyz").expect("GET /readyz");
        if r.status == 503 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "still ready:\n{}",
            tail(&daemon_log(&app), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        unready
            .body
            .contains("source hf: no successful fetch in 3 scheduled runs")
            && unready.body.contains("`sources.hf.base_url`"),
        "{}",
        unready.body
    );
    let s = scrape(port);
    assert!(s.get("paperboy_source_errors_total", &[("source", "hf")]) >= 2.0);
    assert_eq!(
        s.get("paperboy_papers_fetched_total", &[("source", "hf")]),
        0.0
    );
    assert!(
        s.get(
            "paperboy_last_fetch_error_timestamp_seconds",
            &[("source", "hf")]
        ) >= unix(NOW)
    );
    // Liveness is unaffected.
    assert_eq!(
        http_get(port, "/healthz").expect("GET /healthz").status,
        200
    );
    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
}

/// Runs the daemon against an SMTP server at `smtp_url` that fails every digest the same way,
/// until `paperboy_smtp_errors_total{class}` counts one; then no other class may have been
/// counted. The class comes from what the mail pool saw, not from the error's wording.
fn smtp_failures_are_counted_as(smtp_url: String, env: &[(&str, &str)], class: &str) {
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp_url(smtp_url).build();
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, 2, "07:00", "UTC", "daily");

    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut vars = vec![("PAPERBOY__WEB__BIND", bind.as_str())];
    vars.extend_from_slice(env);
    let daemon = Daemon::start(&app, NOW, &vars);
    wait_until_serving(port, Duration::from_secs(30), || daemon_log(&app));

    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = scrape(port);
        if s.value("paperboy_smtp_errors_total", &[("class", class)])
            .unwrap_or(0.0)
            >= 1.0
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no SMTP error counted as {class}; log:\n{}\nmetrics:\n{}",
            tail(&daemon_log(&app), 40),
            s.text
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for other in [
        "transient",
        "permanent",
        "connection",
        "timeout",
        "tls",
        "other",
    ] {
        if other != class {
            assert_eq!(
                s.value("paperboy_smtp_errors_total", &[("class", other)]),
                None,
                "only {class} failures happened:\n{}",
                s.text
            );
        }
    }
    assert_eq!(s.get("paperboy_digests_sent_total", &[]), 0.0);

    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
}

fn faulty_sink(test: &str, args: &[&str]) -> Option<SmtpSink> {
    SmtpSink::start_with_or_skip(
        test,
        SmtpSinkOptions {
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            ..SmtpSinkOptions::default()
        },
    )
}

#[test]
fn a_4xx_is_counted_as_transient() {
    let Some(sink) = faulty_sink("metrics_class_transient", &["-r", "RCPT"]) else {
        return;
    };
    let url = sink.url();
    smtp_failures_are_counted_as(url, &[], "transient");
}

#[test]
fn a_5xx_is_counted_as_permanent() {
    let Some(sink) = faulty_sink("metrics_class_permanent", &["-f", "."]) else {
        return;
    };
    let url = sink.url();
    smtp_failures_are_counted_as(url, &[], "permanent");
}

#[test]
fn no_answer_in_time_is_counted_as_timeout() {
    let Some(sink) = faulty_sink("metrics_class_timeout", &["-w", "3"]) else {
        return;
    };
    let url = sink.url();
    smtp_failures_are_counted_as(url, &[("PAPERBOY__MAIL__TIMEOUT_SECS", "1")], "timeout");
}

#[test]
fn a_failed_tls_handshake_is_counted_as_tls() {
    // Implicit TLS (smtps://) to a server that speaks plain SMTP: the handshake fails.
    let Some(sink) = faulty_sink("metrics_class_tls", &[]) else {
        return;
    };
    let url = format!("smtps://127.0.0.1:{}", sink.port());
    smtp_failures_are_counted_as(url, &[], "tls");
}
