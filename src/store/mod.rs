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

pub use bounces::BounceOutcome;
pub use copy::{CopyReport, NOT_COPIED, TABLES};
pub use deliveries::{
    ClaimedDelivery, DeliveryPaper, DeliveryRow, DeliveryStatus, PlannedDelivery, PlannedPaper,
};
pub use health::SourceState;
pub use leader::LeaderFence;
pub use papers::{PaperSource, SourceListing, StoredPaper, UpsertCounts};
pub use planning::{PageHistory, PlanOutcome};
pub use profile::{ProfileRow, ProfileTexts};
pub use sources::{SourceRun, SourceStatus};
pub use subscribers::{ImportCounts, NewSubscriber, SubscriberRow};
pub use subscriptions::{Preferences, SubscriberHistory, Vote};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// Most ids in one `IN (…)` list. SQLite's cost of binding grows with the square of a
/// statement's parameters (sqlx looks each one up by name, and SQLite scans the list for it),
/// so long lists cost more to bind than to run; a hundred keeps both small.
pub(crate) const IN_LIST_MAX: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database ({backend}): {source}; check `database.url`")]
    Connect {
        backend: &'static str,
        #[source]
        source: sqlx::Error,
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
                .map_err(|source| StoreError::Connect {
                    backend: "sqlite",
                    source,
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(pool.acquire_timeout)
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    backend: "sqlite",
                    source,
                })?;
            Backend::Sqlite(pool)
        } else {
            let mut opts =
                PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
                    backend: "postgres",
                    source,
                })?;
            if let Some(limit) = pool.statement_timeout {
                // A session setting sent at connect: every statement of every connection.
                opts = opts.options([("statement_timeout", format!("{}ms", limit.as_millis()))]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(pool.acquire_timeout)
                .test_before_acquire(true)
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    backend: "postgres",
                    source,
                })?;
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
