//! The daemon keeps running through a PostgreSQL restart: a private cluster (initdb + pg_ctl
//! in a temporary directory, on a free port; the shared server on 5432 is never touched) is
//! stopped the hard way (`-m immediate`, as a crash would) while `paperboy run` is sending, and
//! started again. The daemon logs the failed turns, tries again, and every subscriber gets their
//! digest with the Message-ID planned for them: nothing is lost.
//!
//! Needs root (initdb refuses to run as root, so the cluster runs as the `postgres` user via
//! `runuser`), PostgreSQL's server binaries and smtp-sink; skips with the reason otherwise,
//! fails under `PAPERBOY_REQUIRE_ALL=1`. PostgreSQL-only, so it runs in the PostgreSQL pass.

use crate::common::*;
use crate::delivery_support::*;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const N: usize = 400;
const START: &str = "2024-10-25T09:00:00Z";

/// A PostgreSQL cluster of our own, owned by the `postgres` user, stopped on drop.
struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateCluster {
    fn start_or_skip(test: &str) -> Option<PrivateCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                let mut found: Vec<PathBuf> = versions
                    .flatten()
                    .map(|v| v.path().join("bin"))
                    .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
                    .collect();
                found.sort();
                found.pop()
            });
        let Some(bin) = bin.filter(|_| running_as_root()) else {
            missing_tool(
                test,
                "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb) and root (to run \
                 them as the postgres user)",
                "`apt-get install postgresql` and run the tests as root (.ci/run does)",
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("paperboy-pg-")
            .tempdir()
            .expect("tempdir");
        // The cluster belongs to `postgres`; the directory above it must let it in.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let cluster = PrivateCluster {
            bin,
            dir,
            port: free_port(),
        };
        cluster.as_postgres(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    #[track_caller]
    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .expect("run runuser");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would: sessions are cut, nothing is flushed politely.
    fn stop_immediately(&self) {
        self.as_postgres(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

// Each poll reads the sink's files: no need to do it more often.
const POLL: Duration = Duration::from_millis(50);

#[test]
fn the_daemon_survives_a_postgresql_restart_without_losing_a_digest() {
    let test = "the_daemon_survives_a_postgresql_restart_without_losing_a_digest";
    if std::env::var(TEST_DATABASE_ENV).is_ok() && !test_on_postgres() {
        eprintln!("{test}: PostgreSQL only; it runs in the PostgreSQL pass");
        return;
    }
    let Some(sink) = SmtpSink::start_or_skip(test) else {
        return;
    };
    let Some(cluster) = PrivateCluster::start_or_skip(test) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder()
        .hf(&server)
        .smtp(&sink)
        .database_url(&cluster.url())
        .extra_toml("[schedule]\nfetch = \"0 0 0 1 1 *\"\n")
        .build();
    migrate(&app);
    fetch_day1(&app);
    Db::open(&app).seed_subscribers(0, N, "07:00", "UTC", "daily");

    // Paced, so that the restart lands mid-send.
    // A short wait for a connection, so that turns fail fast while the server is down.
    let mut daemon = Daemon::start(
        &app,
        START,
        &[
            ("PAPERBOY__MAIL__MAX_PER_SECOND", "40"),
            ("PAPERBOY__DATABASE__ACQUIRE_TIMEOUT_SECS", "2"),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(120), POLL, || complete_messages(&sink)
            .len()
            >= 60),
        "sending did not start:\n{}",
        tail(&daemon_log(&app), 30)
    );
    cluster.stop_immediately();
    let received_while_down = complete_messages(&sink).len();
    // Down for a few seconds: the daemon's turns fail meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    cluster.start();
    eprintln!("PostgreSQL restarted after {received_while_down} messages");

    let db = Db::open(&app);
    let all_sent = wait_until(Duration::from_secs(300), POLL, || {
        db.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'") == N as i64
    });
    let log = daemon_log(&app);
    assert!(
        all_sent,
        "not every digest was sent after the restart: {:?}\n{}",
        db.status_counts(),
        tail(&log, 40)
    );
    // The same process did it all: the outage cost it failed statements, not its life.
    assert!(
        daemon.is_running(),
        "the daemon died in the outage:\n{}",
        tail(&log, 40)
    );
    let status = daemon.terminate(Duration::from_secs(60));
    assert!(
        status.success(),
        "it stops cleanly after the outage: {status}"
    );
    let retried = log
        .lines()
        .filter(|l| l.contains("trying again") || l.contains("handed unsent deliveries back"))
        .count();

    let deliveries = db.deliveries();
    let messages = complete_messages(&sink);
    let mut per_recipient: HashMap<String, HashSet<String>> = HashMap::new();
    for m in &messages {
        let key = message_key(&m.header("Message-ID").expect("Message-ID"));
        let (_, email) = deliveries.get(&key).expect("a planned Message-ID");
        per_recipient.entry(email.clone()).or_default().insert(key);
    }
    assert_eq!(per_recipient.len(), N, "every subscriber got their digest");
    assert!(per_recipient.values().all(|k| k.len() == 1));
    eprintln!(
        "PostgreSQL restart: {N} digests, {} messages ({} sent twice), {retried} log lines of \
         retried or handed-back work",
        messages.len(),
        messages.len() - N
    );
}
