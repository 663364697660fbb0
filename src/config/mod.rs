//! Typed settings: loading, validation, and errors that name the key at fault.
//!
//! The built-in defaults are `config/default.toml`, embedded in the binary, so a missing config
//! file still gives a working paperboy (SQLite, mail written to files). Every value is read as
//! text (`raw`) and parsed by its section into a domain type (`sections`, `mail`, `sources`;
//! credentials in `secrets`), so a wrong value fails at start with the key, the value and what
//! is allowed, instead of failing later in the middle of a job. A key is added in one place:
//! its section's raw and typed structs and its line in `parse` (and `config/default.toml`).
//! This module does not open databases or sockets; it reads only the config file and the
//! credential files it names.

mod mail;
mod raw;
mod secrets;
mod sections;
mod sources;
mod values;

pub use mail::{BounceAddress, ImapUrl, SmtpLogin, SmtpTls, SmtpUrl};
pub use mail::{CaFile, DkimSettings, MailSettings, MailTransportKind};
pub use secrets::{Secret, credential_path, without_password};
pub use sections::{
    DaemonSettings, DatabaseSettings, DigestSettings, LogFormat, LogSettings, MatchingSettings,
    ScheduleSettings, WebSettings,
};
pub use sources::{ArxivPastDays, ArxivSettings, FeedSettings, HfSettings, SourcesSettings};

use raw::Raw;
use secrets::SigningKeys;
use std::path::{Path, PathBuf};

/// The documented defaults, embedded so the binary stands alone.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Environment variables that start with this (then `SECTION__KEY`) override the file.
pub const ENV_PREFIX: &str = "PAPERBOY";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config key `{key}` has the value `{value}`, which is not allowed: {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("config key `{key}` is required: {why}")]
    Missing { key: String, why: String },
    /// A key given a value of the wrong kind: a section that is not a table, a list that is not a
    /// list, a single value that is a table or a list.
    #[error("config key `{key}` {origin} must be {expected}, not {found}")]
    Shape {
        key: String,
        /// "in FILE" or "set by PAPERBOY__…".
        origin: String,
        expected: String,
        found: String,
    },
    #[error("cannot read the config file {}: {detail}", path.display())]
    File { path: PathBuf, detail: String },
    #[error("the configuration cannot be read: {0}")]
    Load(String),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Signs emailed links. Always present after loading: with the file transport and no key
    /// configured, a per-process random key is used (links then stop working after a restart,
    /// which is acceptable for a trial run that mails nobody).
    pub secret_key: Secret,
    /// True when `secret_key` was generated because none was configured.
    pub secret_key_generated: bool,
    /// The key used before the last rotation: links it signed keep working.
    pub previous_secret_key: Option<Secret>,
    pub database: DatabaseSettings,
    pub web: WebSettings,
    pub mail: MailSettings,
    pub schedule: ScheduleSettings,
    pub digest: DigestSettings,
    pub matching: MatchingSettings,
    pub sources: SourcesSettings,
    pub log: LogSettings,
    pub daemon: DaemonSettings,
}

impl Settings {
    /// Loads defaults, then `file` (which must exist when given), then `PAPERBOY__…` variables
    /// from the process environment. The one way settings are read: at start and on SIGHUP.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment passed in (tests use this).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        Self::parse(Raw::read(file, env)?)
    }

    fn parse(raw: Raw) -> Result<Settings, ConfigError> {
        let mail = MailSettings::parse(&raw.mail)?;
        let keys = SigningKeys::parse(
            &raw.secret_key,
            &raw.secret_key_file,
            &raw.previous_secret_key,
            mail.transport == MailTransportKind::File,
        )?;
        Ok(Settings {
            secret_key: keys.secret_key,
            secret_key_generated: keys.generated,
            previous_secret_key: keys.previous,
            database: DatabaseSettings::parse(&raw.database)?,
            web: WebSettings::parse(&raw.web)?,
            mail,
            schedule: ScheduleSettings::parse(&raw.schedule)?,
            digest: DigestSettings::parse(&raw.digest)?,
            matching: MatchingSettings::parse(&raw.matching)?,
            sources: SourcesSettings::parse(&raw.sources)?,
            log: LogSettings::parse(&raw.log)?,
            daemon: DaemonSettings::parse(&raw.daemon)?,
        })
    }

    /// The domain of the From address: Message-IDs and the List-Id live under it.
    pub fn mail_domain(&self) -> &str {
        self.mail.from.email.domain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_load() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(s.mail.transport, MailTransportKind::File);
        assert!(s.secret_key_generated);
        assert_eq!(s.database.url.expose(), "sqlite://paperboy.db");
        assert_eq!(s.mail.max_connections, 10);
        assert_eq!(s.schedule.send_time.to_string(), "07:00");
        assert_eq!(s.digest.max_papers.get(), 10);
        assert_eq!(s.mail_domain(), "example.org");
        // The floor ranking code falls back on (`Blend::floor`) is the configured default.
        assert_eq!(s.matching.min_closeness, crate::matching::MEANING_FLOOR);
        let bad = Settings::load_with_env(None, env(&[("PAPERBOY__MATCHING__MIN_CLOSENESS", "2")]));
        let message = bad.expect_err("a cosine above 1 is refused").to_string();
        assert!(message.contains("matching.min_closeness"), "{message}");
    }

    #[test]
    fn pool_and_leader_settings_parse_and_name_the_key_when_wrong() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(s.database.statement_timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.database.acquire_timeout, Duration::from_secs(30));
        assert_eq!(s.daemon.leader_lease, Duration::from_secs(60));
        assert_eq!(s.daemon.instance_id, "");
        let s = Settings::load_with_env(
            None,
            env(&[
                ("PAPERBOY__DATABASE__STATEMENT_TIMEOUT_SECS", "0"),
                ("PAPERBOY__DAEMON__INSTANCE_ID", " node-1 "),
            ]),
        )
        .unwrap();
        assert_eq!(s.database.statement_timeout, None, "0 turns the limit off");
        assert_eq!(s.daemon.instance_id, "node-1");
        for (var, key, value) in [
            (
                "PAPERBOY__DATABASE__STATEMENT_TIMEOUT_SECS",
                "database.statement_timeout_secs",
                "soon",
            ),
            (
                "PAPERBOY__DATABASE__ACQUIRE_TIMEOUT_SECS",
                "database.acquire_timeout_secs",
                "0",
            ),
            (
                "PAPERBOY__DAEMON__LEADER_LEASE_SECS",
                "daemon.leader_lease_secs",
                "1",
            ),
            (
                "PAPERBOY__DAEMON__INSTANCE_ID",
                "daemon.instance_id",
                "a\tb",
            ),
        ] {
            let err = Settings::load_with_env(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn file_then_environment_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[mail]\nsmtp_url = \"smtp://file.example:25\"\nmax_connections = 3\n",
        )
        .unwrap();
        let s = Settings::load_with_env(
            Some(&path),
            env(&[("PAPERBOY__MAIL__SMTP_URL", "smtp://env.example:2525")]),
        )
        .unwrap();
        assert_eq!(
            (s.mail.smtp_url.host.as_str(), s.mail.smtp_url.port),
            ("env.example", 2525)
        );
        assert_eq!(s.mail.max_connections, 3);
    }

    #[test]
    fn a_bad_value_names_key_value_and_what_is_allowed() {
        let err =
            Settings::load_with_env(None, env(&[("PAPERBOY__MAIL__MAX_CONNECTIONS", "lots")]))
                .unwrap_err()
                .to_string();
        assert!(err.contains("mail.max_connections"), "{err}");
        assert!(err.contains("lots"), "{err}");
        assert!(err.contains("whole number"), "{err}");

        let err =
            Settings::load_with_env(None, env(&[("PAPERBOY__SCHEDULE__TIMEZONE", "Mars/Base")]))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("schedule.timezone") && err.contains("Mars/Base"),
            "{err}"
        );

        let err =
            Settings::load_with_env(None, env(&[("PAPERBOY__SCHEDULE__FETCH", "every hour")]))
                .unwrap_err()
                .to_string();
        assert!(err.contains("schedule.fetch"), "{err}");
    }

    #[test]
    fn smtp_needs_a_secret_key() {
        let err = Settings::load_with_env(None, env(&[("PAPERBOY__MAIL__TRANSPORT", "smtp")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret_key"), "{err}");
        let ok = Settings::load_with_env(
            None,
            env(&[
                ("PAPERBOY__MAIL__TRANSPORT", "smtp"),
                ("PAPERBOY__SECRET_KEY", "0123456789abcdef0123456789abcdef"),
            ]),
        )
        .unwrap();
        assert!(!ok.secret_key_generated);
    }

    #[test]
    fn secrets_stay_out_of_errors_and_debug() {
        let err = Settings::load_with_env(
            None,
            env(&[(
                "PAPERBOY__MAIL__SMTP_URL",
                "ftp://user:hunter2@mail.example",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("mail.smtp_url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");

        let s = Settings::load_with_env(
            None,
            env(&[(
                "PAPERBOY__MAIL__SMTP_URL",
                "smtps://user:hunter2@mail.example:465",
            )]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[mail]\nsmtp_ur = \"smtp://x:25\"\n").unwrap();
        let err = Settings::load_with_env(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("smtp_ur"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_kind_names_the_key_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let load = |toml: &str, vars: &[(&str, &str)]| {
            std::fs::write(&path, toml).unwrap();
            Settings::load_with_env(Some(&path), env(vars))
                .unwrap_err()
                .to_string()
        };
        let file = path.display().to_string();
        for vars in [
            &[][..],
            &[("PAPERBOY__MAIL__TRANSPORT", "file")],
            &[("PAPERBOY__WEB__BIND", "127.0.0.1:9")],
        ] {
            let err = load("web = 3\n", vars);
            assert_eq!(
                err,
                format!(
                    "config key `web` in {file} must be a table (`[web]` with keys such as \
                     `base_url`, `bind`, `confirmation_emails_per_hour`), not the number 3"
                ),
                "{vars:?}"
            );
        }
        let err = load("[web]\nbind = [1]\n", &[]);
        assert!(
            err.starts_with(&format!(
                "config key `web.bind` in {file} must be a single value such as `\"127.0.0.1:8080\"`, not a list"
            )),
            "{err}"
        );
        let err = load("[sources.hf]\nenabled = { a = 1 }\n", &[]);
        assert!(
            err.contains("`sources.hf.enabled`") && err.contains("not a table"),
            "{err}"
        );
        let err = load("[sources]\nfeeds = 3\n", &[]);
        assert!(
            err.contains("`sources.feeds`") && err.contains("a list of `[[sources.feeds]]` tables"),
            "{err}"
        );
        let err = load("[sources.arxiv]\ncategories = \"cs.LG\"\n", &[]);
        assert!(
            err.contains("`sources.arxiv.categories`") && err.contains("not a text value"),
            "{err}"
        );
        let err = load("database = \"postgres://u:hunter2@db/x\"\n", &[]);
        assert!(err.contains("`database`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");

        let err = Settings::load_with_env(None, env(&[("PAPERBOY__WEB", "3")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config key `web` set by PAPERBOY__WEB must be a table")
                && err.contains("such as PAPERBOY__WEB__BASE_URL"),
            "{err}"
        );
        let err = Settings::load_with_env(None, env(&[("PAPERBOY__SOURCES__HF", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`sources.hf`"), "{err}");
    }

    #[test]
    fn the_confirmation_cap_is_off_at_zero() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(
            s.web.confirmation_emails_per_hour.map(|n| n.get()),
            Some(50)
        );
        let s = Settings::load_with_env(
            None,
            env(&[("PAPERBOY__WEB__CONFIRMATION_EMAILS_PER_HOUR", "0")]),
        )
        .unwrap();
        assert_eq!(s.web.confirmation_emails_per_hour, None);
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Settings::load_with_env(Some(Path::new("/nonexistent/p.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/p.toml"), "{err}");
    }
}
