//! The SMTP connection pool seen from the network: a counting TCP relay sits between paperboy
//! and smtp-sink and records every connection. With `mail.max_connections = 3`, 60 digests
//! travel over at most 3 connections (reused across messages, never more than 3 open at once),
//! and `mail.max_per_second` spaces them out.

use crate::common::*;
use crate::delivery_support::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

/// Connections seen: total, open now, most open at once.
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
}

/// Forwards each connection on a free port to `target`, counting them.
fn relay(target: u16) -> (u16, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().unwrap().port();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            c.total.fetch_add(1, Ordering::SeqCst);
            let now_open = c.open.fetch_add(1, Ordering::SeqCst) + 1;
            c.peak.fetch_max(now_open, Ordering::SeqCst);
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let up = thread::spawn(move || pipe(client, server));
            let counts = c.clone();
            thread::spawn(move || {
                pipe(s2, c2);
                let _ = up.join();
                counts.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, counts)
}

fn setup(test: &str, n: usize) -> Option<(SmtpSink, FixtureServer, TestApp, Arc<Counts>)> {
    let sink = SmtpSink::start_or_skip(test)?;
    let (port, counts) = relay(sink.port());
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp_port(port).build();
    migrate(&app);
    fetch_day1(&app);
    Db::open(&app).seed_subscribers(0, n, "07:00", "UTC", "daily");
    Some((sink, server, app, counts))
}

#[test]
fn sixty_digests_travel_over_at_most_max_connections_reused_connections() {
    let Some((sink, _server, app, counts)) = setup("pool_reuse", 60) else {
        return;
    };
    app.paperboy(["send"])
        .at("2024-10-25T09:00:00Z")
        .env("PAPERBOY__MAIL__MAX_CONNECTIONS", "3")
        .run()
        .assert_success();
    assert_eq!(complete_messages(&sink).len(), 60);
    let total = counts.total.load(Ordering::SeqCst);
    let peak = counts.peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "at most 3 connections open at once, saw {peak}");
    assert!(
        (1..=3).contains(&total),
        "connections are reused across messages: {total} connections for 60 messages"
    );
}

#[test]
fn max_per_second_spaces_the_messages() {
    let Some((sink, _server, app, _counts)) = setup("pool_pacing", 30) else {
        return;
    };
    let started = Instant::now();
    app.paperboy(["send"])
        .at("2024-10-25T09:00:00Z")
        .env("PAPERBOY__MAIL__MAX_PER_SECOND", "20")
        .env("PAPERBOY__MAIL__MAX_CONNECTIONS", "5")
        .run()
        .assert_success();
    let elapsed = started.elapsed();
    assert_eq!(complete_messages(&sink).len(), 30);
    // A burst of 5 (one per connection), then 25 more at 20 a second: at least 1.25 s.
    assert!(
        elapsed.as_secs_f64() >= 1.25,
        "30 messages at 20/s took only {elapsed:?}"
    );
}
