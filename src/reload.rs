//! SIGHUP: re-read the configuration, apply what can change in a running daemon, and say
//! plainly what needs a restart.
//!
//! For: `paperboy run` under systemd (`ExecReload=kill -HUP $MAINPID`). What applies at once:
//! `log.level`, and from the next fetch run `[sources]` and `schedule.fetch` (the fetch job
//! reads them from [`LiveSettings`] at each run). Everything else is read once at start and
//! held by the jobs (the SMTP pool and its pacing, the web limits, the database pool), so a
//! change to it is reported by key with "restart to apply" rather than half-applied. Not for:
//! validating a file before deploying it — `paperboy --config FILE check` does that.
//!
//! The binary registers two things at start: the config file path and a function that swaps
//! the log filter (the tracing reload handle lives where logging is set up, in the binary).

use crate::config::{Settings, SourcesSettings};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

type LogReloader = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static CONFIG_PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
static LOG_RELOADER: OnceLock<LogReloader> = OnceLock::new();

/// Remembers the `--config` file (or none) that SIGHUP re-reads.
pub fn set_config_path(path: Option<PathBuf>) {
    let _ = CONFIG_PATH.set(path);
}

/// Registers how to swap the log filter; `level` is a `log.level` value.
pub fn set_log_reloader(f: LogReloader) {
    let _ = LOG_RELOADER.set(f);
}

/// The settings a running daemon takes from a reload: what the fetch job reads at each run.
#[derive(Debug, Clone)]
pub struct Live {
    pub sources: SourcesSettings,
    pub fetch_schedule: cron::Schedule,
}

/// Shared, swappable [`Live`] settings (held by `jobs::App`).
#[derive(Debug, Clone)]
pub struct LiveSettings(Arc<RwLock<Arc<Live>>>);

impl LiveSettings {
    pub fn new(settings: &Settings) -> LiveSettings {
        LiveSettings(Arc::new(RwLock::new(Arc::new(Live::from(settings)))))
    }

    /// The current values; a reload does not change what a caller already holds.
    pub fn get(&self) -> Arc<Live> {
        // A panic while holding this lock cannot leave a half-written value (it is swapped
        // whole), so a poisoned lock is still good to read.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, live: Live) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
    }
}

impl From<&Settings> for Live {
    fn from(s: &Settings) -> Live {
        Live {
            sources: s.sources.clone(),
            fetch_schedule: s.schedule.fetch.clone(),
        }
    }
}

/// What a reload did, for the log and for `STATUS=`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Keys applied now, e.g. `log.level = debug`.
    pub applied: Vec<String>,
    /// Sections that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Re-reads the configuration and applies what can be applied: the log level now, `live`
/// (sources, fetch schedule) from the next fetch run. `current` is what the daemon started
/// with. An invalid file changes nothing: the error names the key, and the running
/// configuration stays.
pub fn reload(current: &Settings, live: &LiveSettings) -> Result<ReloadOutcome, String> {
    let path = CONFIG_PATH.get().cloned().flatten();
    let new = Settings::load(path.as_deref()).map_err(|e| {
        format!("the configuration was not reloaded: {e}; the running configuration stays")
    })?;
    let mut outcome = ReloadOutcome {
        needs_restart: changed_sections(current, &new),
        ..ReloadOutcome::default()
    };
    let before = live.get();
    let after = Live::from(&new);
    if format!("{:?}", before.sources) != format!("{:?}", after.sources) {
        outcome
            .applied
            .push("sources (from the next fetch run)".into());
    }
    if before.fetch_schedule.to_string() != after.fetch_schedule.to_string() {
        outcome.applied.push(format!(
            "schedule.fetch = {} (after the fetch already scheduled)",
            after.fetch_schedule
        ));
    }
    live.set(after);
    // `current` is what the daemon started with; the level may have been reloaded since, so
    // it is applied every time rather than only when it differs from `current`.
    if std::env::var_os("RUST_LOG").is_some() {
        if new.log.level != current.log.level {
            outcome
                .needs_restart
                .push("log.level (RUST_LOG is set and wins over it)");
        }
    } else if let Some(apply) = LOG_RELOADER.get() {
        apply(&new.log.level)
            .map_err(|e| format!("config key `log.level` = `{}`: {e}", new.log.level))?;
        outcome
            .applied
            .push(format!("log.level = {}", new.log.level));
    }
    Ok(outcome)
}

/// `Debug` shows the SMTP password as `***`: compared apart.
fn smtp_password(s: &Settings) -> Option<&str> {
    s.mail.smtp_url.login.as_ref().map(|l| l.password.expose())
}

/// The sections whose values differ. `Debug` hides secrets, so those are compared directly.
fn changed_sections(a: &Settings, b: &Settings) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut differs = |name: &'static str, x: String, y: String| {
        if x != y {
            out.push(name);
        }
    };
    differs(
        "secret_key",
        a.secret_key.expose().to_string(),
        if b.secret_key_generated && a.secret_key_generated {
            // Both generated at random: not a change the operator made.
            a.secret_key.expose().to_string()
        } else {
            b.secret_key.expose().to_string()
        },
    );
    differs(
        "previous_secret_key",
        a.previous_secret_key
            .as_ref()
            .map(|k| k.expose().to_string())
            .unwrap_or_default(),
        b.previous_secret_key
            .as_ref()
            .map(|k| k.expose().to_string())
            .unwrap_or_default(),
    );
    differs(
        "database",
        // The URL may hold a password: compared, never printed.
        format!(
            "{}{}{:?}{:?}",
            a.database.url.expose(),
            a.database.max_connections,
            a.database.statement_timeout,
            a.database.acquire_timeout
        ),
        format!(
            "{}{}{:?}{:?}",
            b.database.url.expose(),
            b.database.max_connections,
            b.database.statement_timeout,
            b.database.acquire_timeout
        ),
    );
    differs("web", format!("{:?}", a.web), format!("{:?}", b.web));
    differs(
        "mail",
        format!("{:?}{:?}", a.mail, smtp_password(a)),
        format!("{:?}{:?}", b.mail, smtp_password(b)),
    );
    // schedule.fetch is live; the defaults for new subscribers are not.
    differs(
        "schedule.send_time / schedule.timezone",
        format!("{:?}{:?}", a.schedule.send_time, a.schedule.timezone),
        format!("{:?}{:?}", b.schedule.send_time, b.schedule.timezone),
    );
    differs(
        "digest",
        format!("{:?}", a.digest),
        format!("{:?}", b.digest),
    );
    differs(
        "matching",
        format!("{:?}", a.matching),
        format!("{:?}", b.matching),
    );
    differs(
        "log.format",
        format!("{:?}", a.log.format),
        format!("{:?}", b.log.format),
    );
    differs(
        "daemon",
        format!("{:?}", a.daemon),
        format!("{:?}", b.daemon),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Settings {
        Settings::load_with_env(
            None,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    #[test]
    fn unchanged_settings_need_no_restart() {
        let a = load(&[]);
        let b = load(&[]);
        assert_eq!(changed_sections(&a, &b), Vec::<&str>::new());
    }

    #[test]
    fn changed_sections_are_named() {
        let a = load(&[]);
        let b = load(&[
            ("PAPERBOY__MAIL__MAX_PER_SECOND", "5"),
            ("PAPERBOY__SOURCES__HF__ENABLED", "false"),
            ("PAPERBOY__SCHEDULE__FETCH", "0 30 * * * *"),
        ]);
        // Sources and the fetch schedule are live: only mail needs a restart.
        assert_eq!(changed_sections(&a, &b), vec!["mail"]);
        let c = load(&[("PAPERBOY__SCHEDULE__TIMEZONE", "Europe/Paris")]);
        assert_eq!(
            changed_sections(&a, &c),
            vec!["schedule.send_time / schedule.timezone"]
        );
    }
}
