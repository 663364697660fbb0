//! PostgreSQL: one fresh database per test, on the shared server of the PostgreSQL pass.

use std::path::Path;
use std::process::Command;

use super::missing_tool;

/// The shared PostgreSQL server the tests create their databases on (trust auth, as CI runs it).
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// `PAPERBOY_TEST_DATABASE=postgres` runs every harness against PostgreSQL instead of SQLite.
pub const TEST_DATABASE_ENV: &str = "PAPERBOY_TEST_DATABASE";
pub const POSTGRES_INSTALL: &str =
    "`apt-get install postgresql` and start it on 127.0.0.1:5432 with trust auth (.ci/run does)";

/// True when this run of the suite is the PostgreSQL pass.
pub fn test_on_postgres() -> bool {
    std::env::var(TEST_DATABASE_ENV).is_ok_and(|v| v.trim().eq_ignore_ascii_case("postgres"))
}

/// A database created for one test on [`PG_SERVER`], dropped (with any session still on it)
/// when this value is dropped, however the test ends.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

fn psql(database: &str, sql: &str) -> std::io::Result<std::process::Output> {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database])
        .args(["-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
}

impl PgDatabase {
    /// Creates a fresh, empty database, or `None` when no server answers (or psql is missing).
    pub fn create() -> Option<PgDatabase> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        // Unique across the processes nextest runs side by side and across repeated runs.
        let name = format!(
            "paperboy_t_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        );
        let ok =
            psql("postgres", &format!("CREATE DATABASE {name}")).is_ok_and(|o| o.status.success());
        ok.then(|| PgDatabase {
            url: format!("{PG_SERVER}/{name}"),
            name,
        })
    }

    /// Creates a fresh database, or reports PostgreSQL missing (see [`missing_tool`]).
    pub fn create_or_skip(test: &str) -> Option<PgDatabase> {
        let db = Self::create();
        if db.is_none() {
            missing_tool(
                test,
                "a PostgreSQL server on 127.0.0.1:5432 (user postgres)",
                POSTGRES_INSTALL,
            );
        }
        db
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The database this test should use: `None` for a SQLite file, or a fresh PostgreSQL database
/// in the PostgreSQL pass. That pass was asked for explicitly, so a missing server fails.
pub fn test_database() -> Option<PgDatabase> {
    if !test_on_postgres() {
        return None;
    }
    Some(PgDatabase::create().unwrap_or_else(|| {
        panic!(
            "{TEST_DATABASE_ENV}=postgres but no PostgreSQL server answers on 127.0.0.1:5432 \
             (user postgres); {POSTGRES_INSTALL}"
        )
    }))
}

/// A database URL for a test that opens the store itself: a fresh PostgreSQL database in the
/// PostgreSQL pass (kept while the returned guard lives), else the SQLite file `sqlite_file`.
pub fn test_database_url(sqlite_file: &Path) -> (String, Option<PgDatabase>) {
    match test_database() {
        Some(db) => (db.url.clone(), Some(db)),
        None => (format!("sqlite://{}", sqlite_file.display()), None),
    }
}
