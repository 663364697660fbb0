//! The systemd notify protocol, end to end: the built `paperboy run` talks to a real Unix
//! datagram socket given as `NOTIFY_SOCKET`, as systemd's would be, and says READY=1 once it
//! serves, WATCHDOG=1 while its scheduler is alive, and STOPPING=1 on SIGTERM, in that order;
//! then it exits 0.

use crate::common::*;
use crate::delivery_support::*;
use crate::ops_support::*;
use std::time::Duration;

const NOW: &str = "2024-10-25T09:00:00Z";

fn notify_round_trip(socket: NotifySocket) {
    let app = TestApp::builder().file_transport().build();
    migrate(&app);
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(
        &app,
        NOW,
        &[
            ("PAPERBOY__WEB__BIND", bind.as_str()),
            ("NOTIFY_SOCKET", socket.env_value.as_str()),
            // 1 s: a ping every half second while the scheduler loop beats.
            ("WATCHDOG_USEC", "1000000"),
        ],
    );

    let first = socket.wait_for("READY=1", Duration::from_secs(30));
    assert_eq!(
        first.len(),
        1,
        "READY=1 must be the first message: {first:?}"
    );
    let ready = &first[0];
    assert!(
        ready.contains(&format!("STATUS=serving on {bind}")),
        "READY carries a status naming the address: {ready:?}"
    );
    // READY only once the web server is bound: it must answer now, without waiting.
    let health = http_get(port, "/healthz").expect("the web server answers once READY is sent");
    assert_eq!(health.status, 200);

    let pings = socket.wait_for("WATCHDOG=1", Duration::from_secs(5));
    assert!(
        pings.iter().all(|m| m == "WATCHDOG=1"),
        "nothing but pings between READY and the first ping: {pings:?}"
    );
    // And it keeps pinging while the scheduler is alive.
    socket.wait_for("WATCHDOG=1", Duration::from_secs(3));

    let pid = daemon.pid();
    let log_app = &app;
    let status = {
        signal(pid, "TERM");
        let after = socket.wait_for("STOPPING=1", Duration::from_secs(10));
        assert!(
            after[..after.len() - 1].iter().all(|m| m == "WATCHDOG=1"),
            "only pings may come between the last ping and STOPPING=1: {after:?}"
        );
        daemon.terminate(Duration::from_secs(30))
    };
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must end in exit 0:\n{}",
        tail(&daemon_log(log_app), 30)
    );
    // Nothing after STOPPING but, at most, a last ping already in flight.
    while let Some(m) = socket.recv(Duration::from_millis(200)) {
        assert_eq!(m, "WATCHDOG=1", "unexpected message after STOPPING=1");
    }
}

#[test]
fn ready_watchdog_and_stopping_reach_a_path_socket_in_order() {
    notify_round_trip(NotifySocket::at_path());
}

#[test]
fn ready_watchdog_and_stopping_reach_an_abstract_socket_in_order() {
    notify_round_trip(NotifySocket::abstract_name());
}

#[test]
fn without_notify_socket_the_daemon_runs_as_in_a_terminal() {
    let app = TestApp::builder().file_transport().build();
    migrate(&app);
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&app, NOW, &[("PAPERBOY__WEB__BIND", bind.as_str())]);
    wait_until_serving(port, Duration::from_secs(30), || daemon_log(&app));
    let status = daemon.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", tail(&daemon_log(&app), 30));
    assert!(
        !daemon_log(&app).contains("NOTIFY_SOCKET"),
        "no notify warnings without a socket:\n{}",
        daemon_log(&app)
    );
}
