//! The systemd notify protocol (`sd_notify`), written out: a few datagrams to `$NOTIFY_SOCKET`.
//!
//! For: telling systemd that `paperboy run` is ready (`READY=1`, sent only once the database is
//! migrated and the web server is bound), what it is doing (`STATUS=`), that it is stopping
//! (`STOPPING=1`), and that its scheduler is alive (`WATCHDOG=1`, see [`run_watchdog`]).
//! Not for: anything when paperboy does not run under systemd with `Type=notify`: without
//! `NOTIFY_SOCKET` every call is a no-op, so the same binary runs in a terminal unchanged.
//!
//! The protocol is one `KEY=VALUE\n…` datagram per message on a Unix datagram socket, whose
//! address is a path or, when it starts with `@`, a Linux abstract-namespace name. The
//! `sd-notify` crate (0.5.0) takes that address as a file path, so abstract sockets fail with it
//! (ARCHITECTURE.md, "Operations"); the tests speak to a real socket of each kind.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::metrics::Heartbeat;

/// The environment variable systemd sets to the socket it listens on.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// Set by systemd when `WatchdogSec=` is configured: the watchdog period in microseconds.
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// Set by systemd with `WATCHDOG_USEC`: the pid the watchdog applies to.
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";

/// A handle on the notify socket, or nothing when systemd did not give one.
#[derive(Clone, Debug)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Clone, Debug)]
enum Target {
    Path(std::path::PathBuf),
    /// The name after the `@`, in the Linux abstract namespace.
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` from the process environment.
    pub fn from_env() -> Notifier {
        Notifier::from_value(std::env::var_os(NOTIFY_SOCKET_ENV).as_deref())
    }

    /// A notifier for the socket named by `value` (a `NOTIFY_SOCKET` value), or a no-op one.
    pub fn from_value(value: Option<&std::ffi::OsStr>) -> Notifier {
        use std::os::unix::ffi::OsStrExt;
        let target = match value.map(|v| v.as_bytes()) {
            None | Some([]) => None,
            Some([b'@', name @ ..]) => Some(Target::Abstract(name.to_vec())),
            Some(_) => value.map(|v| Target::Path(v.into())),
        };
        Notifier { target }
    }

    /// A notifier that sends nothing (commands other than `run`, and tests).
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// True when a notify socket was given.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one message, e.g. `"READY=1\nSTATUS=serving"`. A no-op without a socket.
    pub fn send(&self, message: &str) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let socket = UnixDatagram::unbound()?;
        match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path)?,
            Target::Abstract(name) => send_abstract(&socket, name, message.as_bytes())?,
        };
        debug!(message, "told systemd");
        Ok(())
    }

    /// Sends and logs a failure instead of returning it: systemd being unreachable must never
    /// stop the daemon itself (systemd notices a missing READY or WATCHDOG on its own).
    fn send_or_warn(&self, message: &str) {
        if let Err(e) = self.send(message) {
            warn!(error = %e, message, "could not notify systemd through NOTIFY_SOCKET");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send_or_warn(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=…`, shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send_or_warn(&format!("STATUS={}", one_line(status)));
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send_or_warn(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1` then, once done, `READY=1` (SIGHUP).
    pub fn reloading(&self) {
        self.send_or_warn("RELOADING=1");
    }

    /// `WATCHDOG=1`: "I am alive".
    pub fn watchdog(&self) {
        self.send_or_warn("WATCHDOG=1");
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "NOTIFY_SOCKET names an abstract socket (@…), which only Linux has",
    ))
}

/// A status is one line: a newline would start another KEY=VALUE assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The watchdog period systemd asked for, if it applies to this process: `WATCHDOG_USEC`, when
/// `WATCHDOG_PID` is unset or names us.
pub fn watchdog_period() -> Option<Duration> {
    watchdog_period_from(
        std::env::var(WATCHDOG_USEC_ENV).ok().as_deref(),
        std::env::var(WATCHDOG_PID_ENV).ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_period_from(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(our_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog at half its period, but only while `heartbeat` has beaten within
/// `stale_after`: a scheduler that hangs stops the pings, and systemd restarts the service
/// (`Restart=on-failure`). Returns when `stop` turns true.
pub async fn run_watchdog(
    notifier: Notifier,
    heartbeat: Heartbeat,
    stale_after: Duration,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // Half the period, as sd_watchdog_enabled(3) recommends, so one late tick is not fatal.
    let mut tick = tokio::time::interval(period / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    let started = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if heartbeat.is_fresh(stale_after) {
            notifier.watchdog();
            warned = false;
        } else if heartbeat.age().is_none() && started.elapsed() <= stale_after {
            // The loop has not come round for the first time yet: not a hang (no ping either,
            // so a loop that never starts is still caught).
        } else if !warned {
            warn!(
                stale_after_secs = stale_after.as_secs(),
                "the scheduler loop has not made progress; no longer pinging the systemd watchdog"
            );
            warned = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn bound_socket() -> (tempfile::TempDir, UnixDatagram, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (dir, socket, path)
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn no_socket_means_no_op() {
        let n = Notifier::from_value(None);
        assert!(!n.enabled());
        n.send("READY=1").unwrap();
        assert!(!Notifier::from_value(Some(OsStr::new(""))).enabled());
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let (_dir, socket, path) = bound_socket();
        let n = Notifier::from_value(Some(path.as_os_str()));
        n.ready("serving on 127.0.0.1:8080\nsecond line");
        n.watchdog();
        n.stopping("bye");
        assert_eq!(
            recv(&socket),
            "READY=1\nSTATUS=serving on 127.0.0.1:8080 second line"
        );
        assert_eq!(recv(&socket), "WATCHDOG=1");
        assert_eq!(recv(&socket), "STOPPING=1\nSTATUS=bye");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("paperboy-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::from_value(Some(OsStr::new(&format!("@{name}"))));
        n.ready("up");
        assert_eq!(recv(&socket), "READY=1\nSTATUS=up");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let n = Notifier::from_value(Some(OsStr::new("/nonexistent/notify.sock")));
        assert!(n.send("READY=1").is_err());
        n.ready("still fine"); // logged, not fatal
    }

    #[test]
    fn watchdog_period_honours_the_pid() {
        assert_eq!(
            watchdog_period_from(Some("2000000"), None, 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_period_from(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_period_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period_from(None, None, 7), None);
        assert_eq!(watchdog_period_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_period_from(Some("soon"), None, 7), None);
    }

    #[tokio::test]
    async fn the_watchdog_pings_only_while_the_heartbeat_is_fresh() {
        let (_dir, socket, path) = bound_socket();
        socket
            .set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let heartbeat = Heartbeat::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_watchdog(
            Notifier::from_value(Some(path.as_os_str())),
            heartbeat.clone(),
            Duration::from_millis(300),
            Duration::from_millis(100),
            stop_rx,
        ));
        // Never beaten: no ping.
        let silent = tokio::task::spawn_blocking({
            let s = socket.try_clone().unwrap();
            move || {
                let mut buf = [0u8; 64];
                s.recv(&mut buf).is_err()
            }
        })
        .await
        .unwrap();
        assert!(silent, "pinged although the scheduler never beat");

        heartbeat.beat();
        let got = tokio::task::spawn_blocking({
            let s = socket.try_clone().unwrap();
            move || recv(&s)
        })
        .await
        .unwrap();
        assert_eq!(got, "WATCHDOG=1");

        // Let the beat go stale, drain what was sent meanwhile, then expect silence.
        tokio::time::sleep(Duration::from_millis(450)).await;
        socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        while socket.recv(&mut buf).is_ok() {}
        socket.set_nonblocking(false).unwrap();
        let silent = tokio::task::spawn_blocking({
            let s = socket.try_clone().unwrap();
            move || {
                let mut buf = [0u8; 64];
                s.recv(&mut buf).is_err()
            }
        })
        .await
        .unwrap();
        assert!(silent, "pinged although the heartbeat was stale");

        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the watchdog task stops when asked")
            .unwrap();
    }
}
