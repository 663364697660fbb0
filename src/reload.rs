//! SIGHUP: re-read the configuration, apply what can change in a running daemon, and say
//! plainly what needs a restart.
//!
//! For: `paperboy run` under systemd (`ExecReload=kill -HUP $MAINPID`). What applies at once:
//! `log.level`. Everything else is read once at start and held by the jobs, so a change to it
//! is reported by key section with "restart to apply" rather than half-applied. Not for:
//! validating a file before deploying it — `paperboy --config FILE check` does that.
//!
//! The binary registers two things at start: the config file path and a function that swaps
//! the log filter (the tracing reload handle lives where logging is set up, in the binary).

use crate::config::Settings;
use std::path::PathBuf;
use std::sync::OnceLock;

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

/// What a reload did, for the log and for `STATUS=`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Keys applied now, e.g. `log.level = debug`.
    pub applied: Vec<String>,
    /// Sections that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Re-reads the configuration and applies what can be applied. An invalid file changes
/// nothing: the error names the key, and the running configuration stays.
pub fn reload(current: &Settings) -> Result<ReloadOutcome, String> {
    let path = CONFIG_PATH.get().cloned().flatten();
    let new = Settings::load(path.as_deref()).map_err(|e| {
        format!("the configuration was not reloaded: {e}; the running configuration stays")
    })?;
    let mut outcome = ReloadOutcome {
        needs_restart: changed_sections(current, &new),
        ..ReloadOutcome::default()
    };
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
        "database",
        a.database.url.expose().to_string() + &a.database.max_connections.to_string(),
        b.database.url.expose().to_string() + &b.database.max_connections.to_string(),
    );
    differs("web", format!("{:?}", a.web), format!("{:?}", b.web));
    differs(
        "mail",
        format!("{:?}{}", a.mail, a.mail.smtp_url.expose()),
        format!("{:?}{}", b.mail, b.mail.smtp_url.expose()),
    );
    differs(
        "schedule",
        format!("{:?}", a.schedule),
        format!("{:?}", b.schedule),
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
        "sources",
        format!("{:?}", a.sources),
        format!("{:?}", b.sources),
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
        ]);
        assert_eq!(changed_sections(&a, &b), vec!["mail", "sources"]);
    }
}
