//! Helpers for the delivery tests (crash, faults, schedule, DKIM), on top of `tests/common`.
//!
//! What for: seeding many subscribers straight into the database (the CLI adds one per
//! process, far too slow for 1,000), reading the outbox table the daemon writes, running the
//! real daemon as a child we can SIGKILL or SIGTERM, and telling complete messages in an
//! smtp-sink dump from transactions cut off mid-DATA.
//! Not for: anything `tests/common` already does (sink, fixture server, config, commands).

use crate::common::*;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Interests that match several papers of the 2024-10-25 fixture (see digest_flow.rs).
pub const INTERESTS: &str = r#""contrastive loss" memory "in-context" classifiers language models"#;
pub const DAY1: &str = "2024-10-25";
pub const FETCH1: &str = "2024-10-25T06:00:00Z";

/// The address of the `i`-th seeded subscriber.
pub fn address(i: usize) -> String {
    format!("reader{i:05}@example.net")
}

/// The test app's database, SQLite or PostgreSQL (whichever its `database.url` names).
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs one statement on whichever pool `Db` holds (each arm compiles the body for its
/// backend), as `store::on_pool!` does in the crate.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A read/write handle on the test app's database, with its own small runtime.
pub struct Db {
    rt: tokio::runtime::Runtime,
    pool: Pool,
}

impl Db {
    pub fn open(app: &TestApp) -> Db {
        Db::open_url(&app.database_url)
    }

    pub fn open_url(url: &str) -> Db {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let pool = rt.block_on(async {
            if url.starts_with("postgres") {
                let opts: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres url");
                Pool::Postgres(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect_with(opts)
                        .await
                        .expect("open the test database"),
                )
            } else {
                let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("sqlite url");
                Pool::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(opts.busy_timeout(Duration::from_secs(30)))
                        .await
                        .expect("open the test database"),
                )
            }
        });
        Db { rt, pool }
    }

    /// Inserts `n` active, confirmed subscribers (`address(first..first+n)`).
    pub fn seed_subscribers(
        &self,
        first: usize,
        n: usize,
        send_time: &str,
        timezone: &str,
        frequency: &str,
    ) {
        on_db!(self, pool => self.rt.block_on(async {
            let mut tx = pool.begin().await.expect("begin");
            for i in first..first + n {
                sqlx::query(
                    "INSERT INTO subscribers (email, status, interests, frequency, send_time,
                        timezone, max_papers, created_at, confirmed_at, updated_at)
                     VALUES ($1, 'active', $2, $3, $4, $5, 10, 0, 0, 0)",
                )
                .bind(address(i))
                .bind(INTERESTS)
                .bind(frequency)
                .bind(send_time)
                .bind(timezone)
                .execute(&mut *tx)
                .await
                .expect("insert subscriber");
            }
            tx.commit().await.expect("commit");
        }));
    }

    pub fn exec(&self, sql: &str) {
        on_db!(self, pool => self.rt.block_on(async {
            sqlx::query(sql)
                .execute(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }));
    }

    pub fn scalar(&self, sql: &str) -> i64 {
        on_db!(self, pool => self.rt.block_on(async {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }))
    }

    /// Deliveries per status.
    pub fn status_counts(&self) -> HashMap<String, i64> {
        on_db!(self, pool => self.rt.block_on(async {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status",
            )
            .fetch_all(pool)
            .await
            .expect("status counts")
            .into_iter()
            .collect()
        }))
    }

    /// message_id → (status, email) for every delivery.
    pub fn deliveries(&self) -> HashMap<String, (String, String)> {
        on_db!(self, pool => self.rt.block_on(async {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT d.message_id, d.status, s.email FROM deliveries d
                   JOIN subscribers s ON s.id = d.subscriber_id",
            )
            .fetch_all(pool)
            .await
            .expect("deliveries")
            .into_iter()
            .map(|(m, st, e)| (m, (st, e)))
            .collect()
        }))
    }

    /// (email, digest_date, status, attempts, last_error) for every delivery, by email.
    pub fn delivery_rows(&self) -> Vec<(String, String, String, i64, Option<String>)> {
        on_db!(self, pool => self.rt.block_on(async {
            sqlx::query_as(
                "SELECT s.email, d.digest_date, d.status, d.attempts, d.last_error
                   FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                  ORDER BY s.email, d.digest_date",
            )
            .fetch_all(pool)
            .await
            .expect("delivery rows")
        }))
    }

    /// Message-ID keys of the deliveries leased (`sending`) by the process with this pid (lease
    /// owners are `host:pid:random`).
    pub fn leased_by_pid(&self, pid: u32) -> HashSet<String> {
        on_db!(self, pool => self.rt.block_on(async {
            sqlx::query_scalar::<_, String>(
                "SELECT message_id FROM deliveries WHERE status = 'sending' AND lease_owner LIKE $1",
            )
            .bind(format!("%:{pid}:%"))
            .fetch_all(pool)
            .await
            .expect("leased deliveries")
            .into_iter()
            .collect()
        }))
    }

    /// (status, hard_bounces) of one subscriber.
    pub fn subscriber_state(&self, email: &str) -> (String, i64) {
        on_db!(self, pool => self.rt.block_on(async {
            sqlx::query_as("SELECT status, hard_bounces FROM subscribers WHERE email = $1")
                .bind(email)
                .fetch_one(pool)
                .await
                .expect("subscriber state")
        }))
    }
}

/// The key of a delivery inside its Message-ID header value `<KEY@domain>`.
pub fn message_key(message_id_header: &str) -> String {
    let v = message_id_header.trim().trim_start_matches('<');
    v.split('@').next().unwrap_or("").to_string()
}

/// True when smtp-sink got the whole message: the multipart body is closed. A transaction cut
/// off mid-DATA (the sender was killed) leaves a dump without the closing boundary, and the
/// server never answered its end of data, so it does not count as received.
pub fn is_complete(mail: &ReceivedMail) -> bool {
    let text = String::from_utf8_lossy(&mail.raw);
    let Some(boundary) = mail.header("Content-Type").and_then(|ct| {
        ct.split("boundary=")
            .nth(1)
            .map(|b| b.trim_matches('"').to_string())
    }) else {
        return false;
    };
    let boundary = boundary
        .split(';')
        .next()
        .unwrap_or("")
        .trim_matches('"')
        .to_string();
    text.contains(&format!("--{boundary}--"))
}

/// Complete messages received so far.
pub fn complete_messages(sink: &SmtpSink) -> Vec<ReceivedMail> {
    sink.messages().into_iter().filter(is_complete).collect()
}

/// Adds `secs` seconds to an RFC 3339 time.
pub fn plus_secs(at: &str, secs: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(at).expect("rfc3339");
    (t + chrono::Duration::seconds(secs))
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `paperboy run` as a child process, its log appended to `<app dir>/daemon.log`.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    /// Starts `paperboy run` and waits until it is up (its web server listens, so its signal
    /// handlers are installed): a SIGTERM before that would kill it like SIGKILL.
    pub fn start(app: &TestApp, now: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_logged(app, now, env, "daemon.log")
    }

    /// [`Daemon::start`] with its log in `<app dir>/<log_name>`: several daemons, one log each.
    pub fn start_logged(app: &TestApp, now: &str, env: &[(&str, &str)], log_name: &str) -> Daemon {
        const UP: &str = "web server listening";
        let log_path = app.dir().join(log_name);
        let read_log = || fs::read_to_string(&log_path).unwrap_or_default();
        let ups_before = read_log().matches(UP).count();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("daemon log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_paperboy"));
        command
            .arg("--config")
            .arg(&app.config_path)
            .arg("run")
            .current_dir(app.dir());
        crate::common::without_developer_env(&mut command);
        command.env("PAPERBOY_NOW", now).env("NO_COLOR", "1");
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn paperboy run");
        let mut daemon = Daemon { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while read_log().matches(UP).count() == ups_before {
            assert!(
                daemon.is_running(),
                "paperboy run exited at start:\n{}",
                tail(&read_log(), 30)
            );
            assert!(
                Instant::now() < deadline,
                "paperboy run did not come up in 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no handler runs, nothing is flushed or handed back.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then waits (at most `timeout`) for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("paperboy did not stop within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's log so far (for assertion messages).
pub fn daemon_log(app: &TestApp) -> String {
    fs::read_to_string(app.dir().join("daemon.log")).unwrap_or_default()
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Fetches the 2024-10-25 fixture day into the app's database.
pub fn fetch_day1(app: &TestApp) {
    app.paperboy(["fetch", "--date", DAY1])
        .at(FETCH1)
        .run()
        .assert_success();
}

/// An app mailing through `smtp_url`, migrated, with the day-1 papers and `n` seeded
/// subscribers due at 07:00 UTC.
pub fn app_mailing(smtp_url: String, n: usize) -> (TestApp, FixtureServer, Db) {
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp_url(smtp_url).build();
    migrate(&app);
    fetch_day1(&app);
    let db = Db::open(&app);
    db.seed_subscribers(0, n, "07:00", "UTC", "daily");
    (app, server, db)
}

/// `paperboy migrate`.
pub fn migrate(app: &TestApp) {
    app.paperboy(["migrate"]).at(FETCH1).run().assert_success();
}
