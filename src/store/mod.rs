//! Every SQL statement paperboy runs, for SQLite and PostgreSQL.
//!
//! One [`Store`] API serves both backends. The SQL text is shared wherever the dialects agree
//! (`$N` placeholders, `ON CONFLICT`, `RETURNING` all work in both); the few places they differ
//! are in `dialect.rs`. Times cross this boundary as `DateTime<Utc>` and are stored as Unix
//! milliseconds, so ordering and arithmetic behave the same on both backends.
//! This module does no HTTP and no SMTP, and holds no business rules beyond what keeps the data
//! consistent (the unique keys that make planning twice harmless live in the schema).

mod addresses;
mod bounces;
mod copy;
mod deliveries;
mod dialect;
mod health;
mod leader;
mod papers;
mod planning;
mod profile;
mod sources;
mod subscribers;
mod subscriptions;
#[cfg(test)]
mod testing;
mod vectors;

pub use bounces::{BounceKind, BounceOutcome, ReportedBounce};
pub use copy::{CopyReport, NOT_COPIED, TABLES};
pub use deliveries::{
    ClaimedDelivery, DeliveryPaper, DeliveryRow, DeliveryStatus, PlannedDelivery, PlannedPaper,
};
pub use health::SourceState;
pub use leader::LeaderFence;
pub use papers::{PaperSource, SourceListing, StoredPaper, UpsertCounts};
pub use planning::{PageHistory, PlanOutcome, VotedPaper};
pub use sources::{SourceRun, SourceStatus};
pub use subscribers::{ImportCounts, NewSubscriber, SubscriberRow};
pub use subscriptions::{Preferences, SubscriberHistory, Vote};
pub use vectors::PaperToEmbed;

use crate::config::without_password;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;

/// Most ids in one `IN (…)` list. SQLite's cost of binding grows with the square of a
/// statement's parameters (sqlx looks each one up by name, and SQLite scans the list for it),
/// so long lists cost more to bind than to run; a hundred keeps both small.
pub(crate) const IN_LIST_MAX: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened. The text names it (the SQLite file, or the PostgreSQL
    /// URL without its password), says why and what to check, once.
    #[error("cannot open the database {target}: {problem}; {hint}")]
    Connect {
        target: String,
        problem: String,
        hint: &'static str,
        /// A setting or the filesystem is wrong (exit status 2), rather than a server that may
        /// come back (exit status 1).
        configuration: bool,
    },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// A write guarded by the leader lease found that another instance took the lease over.
    #[error(
        "lost the leader lease `{name}` (held generation {generation}, another instance took over); \
         stopping without writing"
    )]
    Fenced { name: String, generation: i64 },
}

impl StoreError {
    /// Whether fixing a setting or the filesystem is needed, rather than waiting for a server.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            StoreError::Connect {
                configuration: true,
                ..
            }
        )
    }
}

/// Why a SQLite file did not open, judged from the filesystem: a missing or unwritable
/// directory is a setting to fix; other SQLite errors are passed on as they are.
fn sqlite_open_error(file: &std::path::Path, error: &sqlx::Error) -> StoreError {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let (problem, hint, configuration) = if !dir.is_dir() {
        (
            format!("its directory {} does not exist", dir.display()),
            "create it, writable by the user paperboy runs as, or change `database.url`",
            true,
        )
    } else if !file.exists() {
        (
            format!("the file cannot be created in {} ({error})", dir.display()),
            "make that directory writable by the user paperboy runs as, or change `database.url`",
            true,
        )
    } else {
        // SQLITE_CANTOPEN (14), SQLITE_READONLY (8), SQLITE_PERM (3): permissions or a
        // read-only filesystem; anything else (a lock, a full disk) may pass.
        let code = match error {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        };
        (
            error.to_string(),
            "check that the file and its directory are readable and writable by the user \
             paperboy runs as (SQLite writes -wal and -shm files beside it)",
            matches!(code.as_deref(), Some("14" | "8" | "3")),
        )
    };
    StoreError::Connect {
        target: file.display().to_string(),
        problem,
        hint,
        configuration,
    }
}

/// Why a PostgreSQL server refused or did not answer: a refused login or an unknown database is
/// a setting to fix; a server that does not answer may come back.
fn postgres_open_error(url: &str, error: &sqlx::Error) -> StoreError {
    let code = match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    let (problem, hint, configuration) = match (error, code.as_deref()) {
        // Class 28: invalid authorization; 3D000: no such database.
        (_, Some(c)) if c.starts_with("28") || c == "3D000" => (
            format!("the server refused ({error})"),
            "check the user, password and database name in `database.url`",
            true,
        ),
        (sqlx::Error::Configuration(_), _) => (
            format!("the URL cannot be used ({error})"),
            "write it as postgres://USER@HOST:PORT/DATABASE",
            true,
        ),
        _ => (
            format!("the server does not answer ({error})"),
            "check that PostgreSQL is running and reachable, and that `database.url` names the \
             right host and port",
            false,
        ),
    };
    StoreError::Connect {
        target: without_password(url),
        problem,
        hint,
        configuration,
    }
}

/// How the connection pool behaves (`[database]` in the configuration).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a caller waits for a connection before the attempt fails.
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels statements running longer than this; `None` = no limit.
    pub statement_timeout: Option<Duration>,
}

impl PoolSettings {
    /// `max_connections` with the defaults of `config/default.toml` for the rest: for tools
    /// and tests that open a store without a configuration.
    pub fn with_max(max_connections: u32) -> Self {
        PoolSettings {
            max_connections,
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl From<&crate::config::DatabaseSettings> for PoolSettings {
    fn from(d: &crate::config::DatabaseSettings) -> Self {
        PoolSettings {
            max_connections: d.max_connections,
            acquire_timeout: d.acquire_timeout,
            statement_timeout: d.statement_timeout,
        }
    }
}

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same statement on whichever pool this store holds. The body is expanded once per
/// backend, so one SQL text and one set of binds serve both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Whether this store is PostgreSQL (for the few statements whose SQL differs, `dialect`).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Opens the database named by `url` (`sqlite://…` or `postgres://…`). Does not migrate.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Self::open_with(url, &PoolSettings::with_max(max_connections)).await
    }

    /// [`Store::open`] with every pool setting. The pool tests a connection before handing
    /// it out, so connections broken by a server restart are replaced instead of failing the
    /// next statement.
    pub async fn open_with(url: &str, pool: &PoolSettings) -> Result<Store, StoreError> {
        let max_connections = pool.max_connections;
        let backend = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Connect {
                    target: url.to_string(),
                    problem: format!("the URL cannot be read ({e})"),
                    hint: "write it as sqlite://PATH",
                    configuration: true,
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let file = opts.get_filename().to_path_buf();
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(pool.acquire_timeout)
                .connect_with(opts)
                .await
                .map_err(|e| sqlite_open_error(&file, &e))?;
            Backend::Sqlite(pool)
        } else {
            let mut opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Connect {
                target: without_password(url),
                problem: format!("the URL cannot be read ({e})"),
                hint: "write it as postgres://USER@HOST:PORT/DATABASE",
                configuration: true,
            })?;
            if let Some(limit) = pool.statement_timeout {
                // A session setting sent at connect: every statement of every connection.
                opts = opts.options([("statement_timeout", format!("{}ms", limit.as_millis()))]);
            }
            // One connection first, alone: the pool retries a refused connection until its
            // acquire timeout and then reports only "pool timed out", without the reason.
            let probe = tokio::time::timeout(pool.acquire_timeout, opts.connect())
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
                .map_err(|e| postgres_open_error(url, &e))?;
            let _ = probe.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(pool.acquire_timeout)
                .test_before_acquire(true)
                .connect_with(opts)
                .await
                .map_err(|e| postgres_open_error(url, &e))?;
            Backend::Postgres(pool)
        };
        Ok(Store { backend })
    }

    /// Opens and brings the schema up to date: what every command does on start.
    pub async fn open_and_migrate(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Self::open_with_and_migrate(url, &PoolSettings::with_max(max_connections)).await
    }

    /// [`Store::open_and_migrate`] with every pool setting.
    pub async fn open_with_and_migrate(
        url: &str,
        pool: &PoolSettings,
    ) -> Result<Store, StoreError> {
        let store = Self::open_with(url, pool).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The SQL migrations, then the rewrites of data that need Rust (once each per database).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Backend::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        self.normalise_addresses(Utc::now()).await?;
        Ok(())
    }

    /// Names of migrations this binary has that the database has not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let migrator = match &self.backend {
            Backend::Sqlite(_) => &SQLITE_MIGRATIONS,
            Backend::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        // A database that was never migrated has no _sqlx_migrations table: all are pending.
        let applied: Vec<i64> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success"
        )
        .fetch_all(p)
        .await)
        .unwrap_or_default();
        Ok(migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }
}

pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
