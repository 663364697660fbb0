//! The jobs — fetch, plan, revoke — as functions, and the `App` context every job and the web
//! side share.
//!
//! Each job is idempotent and safe to interrupt at any point: fetch upserts, plan relies on the
//! unique (subscriber, digest date) key. The command line and the daemon call the same
//! functions. Business rules live here; SQL lives in `store`, HTTP in `sources`, message
//! building in `mail`. `revoke` switches off a subscriber's links and mails the new one (the
//! manage page and `subscriber revoke-links`). Sending is `delivery`; scheduling the jobs is
//! `daemon`, which this module does not know.

pub mod embed;
pub mod fetch;
pub mod plan;
pub mod revoke;

use crate::config::Settings;
use crate::digest::DigestRenderer;
use crate::links::Signer;
use crate::mail::Mailer;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Instant;

/// The environment variable that sets "now" (RFC 3339), for trying out schedules and for
/// tests. When set, the clock starts there and runs forward at the normal rate.
pub const NOW_ENV: &str = "PAPERBOY_NOW";

/// Where jobs get the time from.
#[derive(Clone, Debug)]
pub struct Clock {
    origin: Option<(DateTime<Utc>, Instant)>,
}

impl Clock {
    pub fn system() -> Self {
        Clock { origin: None }
    }

    /// Starts at `at` and runs forward.
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Clock {
            origin: Some((at, Instant::now())),
        }
    }

    /// The system clock, or the one `PAPERBOY_NOW` sets.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(NOW_ENV) {
            Ok(v) if !v.trim().is_empty() => DateTime::parse_from_rfc3339(v.trim())
                .map(|t| Clock::starting_at(t.with_timezone(&Utc)))
                .map_err(|e| {
                    format!(
                        "{NOW_ENV}=`{v}` is not an RFC 3339 time such as 2024-10-25T09:00:00Z ({e})"
                    )
                }),
            _ => Ok(Clock::system()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self.origin {
            None => Utc::now(),
            Some((at, started)) => {
                at + chrono::Duration::from_std(started.elapsed()).unwrap_or_default()
            }
        }
    }
}

/// What every job needs, built once per process.
#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub mailer: Mailer,
    pub signer: Signer,
    pub renderer: Arc<DigestRenderer>,
    pub clock: Clock,
    /// This process's counters and the scheduler heartbeat (`/metrics`, `/readyz`, watchdog).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `[sources]` and `schedule.fetch` as of the last SIGHUP; the fetch job reads these, not
    /// `settings`, so that a reload reaches it.
    pub live: crate::reload::LiveSettings,
}

impl App {
    pub fn new(settings: Settings, store: Store, clock: Clock) -> Result<App, String> {
        let mailer = Mailer::from_settings(&settings.mail)?;
        let signer = Signer::new(
            settings.secret_key.expose(),
            settings.previous_secret_key.as_ref().map(|k| k.expose()),
        );
        let renderer = DigestRenderer::new().map_err(|e| e.to_string())?;
        let live = crate::reload::LiveSettings::new(&settings);
        Ok(App {
            settings: Arc::new(settings),
            store,
            mailer,
            signer,
            renderer: Arc::new(renderer),
            metrics: Arc::new(crate::metrics::Metrics::new(clock.now())),
            live,
            clock,
        })
    }
}
