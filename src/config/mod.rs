//! Typed settings: loading, validation, and errors that name the key at fault.
//!
//! The built-in defaults are `config/default.toml`, embedded in the binary, so a missing config
//! file still gives a working paperboy (SQLite, mail written to files). Every value is read as
//! text and parsed here into a domain type, so a wrong value fails at start with the key, the
//! value and what is allowed, instead of failing later in the middle of a job.
//! This module does not open databases or sockets.

use crate::model::{SendTime, TimeZoneName};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

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

fn invalid(key: &str, value: impl fmt::Display, allowed: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
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

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub max_connections: u32,
    /// How long a statement may run before PostgreSQL cancels it; `None` = no limit. SQLite
    /// has no statement timeout (its `busy_timeout` is fixed in `store`).
    pub statement_timeout: Option<Duration>,
    /// How long a task waits for a free connection (or a new one to open) before giving up.
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WebSettings {
    pub bind: SocketAddr,
    pub base_url: url::Url,
    /// Sign-ups and "email me my link" requests one client address may make per hour.
    pub form_posts_per_hour: u32,
    /// Confirmation emails the process sends per hour; `None` = no cap.
    pub confirmation_emails_per_hour: Option<std::num::NonZeroU32>,
    /// The least time between two confirmation (or two manage-link) emails to one address.
    pub resend_cooldown: Duration,
    /// Behind a reverse proxy: take the client address for rate limits from the last
    /// `X-Forwarded-For` entry (the one the proxy added) instead of the TCP peer.
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTransportKind {
    Smtp,
    File,
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub transport: MailTransportKind,
    pub file_dir: PathBuf,
    pub from: lettre::message::Mailbox,
    /// May carry a password: kept secret.
    pub smtp_url: Secret,
    pub max_connections: u32,
    pub max_per_second: u32,
    pub timeout: Duration,
    /// Hard bounces (5xx at RCPT) after which an address is suspended.
    pub max_hard_bounces: u32,
    /// A delivery failing temporarily is given up this long after it was planned.
    pub retry_max_age: Duration,
    /// How long sending stops for everyone when the server refuses most messages.
    pub circuit_pause: Duration,
    /// `TCP_NODELAY` on SMTP connections (only ever turned off to measure its effect).
    pub tcp_nodelay: bool,
    pub dkim: Option<DkimSettings>,
}

/// DKIM signing: all three keys set, or none.
#[derive(Debug, Clone)]
pub struct DkimSettings {
    pub key_file: PathBuf,
    pub selector: String,
    pub domain: String,
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub fetch: cron::Schedule,
    pub send_time: SendTime,
    pub timezone: TimeZoneName,
}

#[derive(Debug, Clone)]
pub struct DigestSettings {
    pub max_papers: u32,
    pub max_age_days: u32,
}

#[derive(Debug, Clone)]
pub struct MatchingSettings {
    pub min_score: f32,
    /// The most Hugging Face upvotes can add to a matching paper's score (0 = off).
    pub trending_weight: f32,
}

#[derive(Debug, Clone)]
pub struct SourcesSettings {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub contact: String,
    /// A source that should have produced papers and has produced none for this many of its
    /// announcement days is logged as an error and shown stale by `check` and `papers`.
    pub stale_after_days: u32,
    /// The most missed days one scheduled fetch catches up on after downtime.
    pub catch_up_days: u32,
    pub hf: HfSettings,
    pub arxiv: ArxivSettings,
    /// `[[sources.feeds]]`: any RSS or Atom feed, by name.
    pub feeds: Vec<FeedSettings>,
}

#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// The source name (`paperboy fetch --source NAME`, `source_state`, `paper_sources`).
    pub name: String,
    pub url: url::Url,
}

#[derive(Debug, Clone)]
pub struct HfSettings {
    pub enabled: bool,
    pub base_url: url::Url,
}

#[derive(Debug, Clone)]
pub struct ArxivSettings {
    pub enabled: bool,
    pub categories: Vec<String>,
    pub rss_base_url: url::Url,
    pub api_base_url: url::Url,
    /// Take `cross` announcements (papers cross-listed into the categories) as new papers too.
    pub cross_lists: bool,
    /// The least time between two arXiv API requests, process-wide (arXiv asks for 3 s).
    pub api_interval: Duration,
    /// `max_results` per API page.
    pub api_page_size: u32,
    /// Where past days (catch-up, backfill) come from.
    pub past_days: ArxivPastDays,
    /// The OAI-PMH endpoint, used with `past_days = "oai"`.
    pub oai_base_url: url::Url,
}

/// `sources.arxiv.past_days`: how the arXiv source lists a day it did not see announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArxivPastDays {
    /// The search API by submission date.
    Api,
    /// OAI-PMH `ListRecords` by datestamp (arXiv's recommended bulk interface).
    Oai,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// How `paperboy run` behaves as a service.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// On SIGTERM, how long SMTP transactions in flight may take to finish before the process
    /// hands back its leases and exits anyway. Keep it below systemd's `TimeoutStopSec`.
    pub shutdown_timeout: Duration,
    /// Names this instance in the leader lease (`leader_leases.holder`). A restart with the
    /// same name takes the lease back at once instead of waiting for it to expire.
    pub instance_id: String,
    /// How long the leader lease (fetch and plan) lasts without renewal: a leader that died is
    /// replaced this long after its last renewal.
    pub leader_lease: Duration,
}

// The raw shape: every scalar is text, so that parsing (and its error message) happens here
// rather than inside serde, where the message could not name the value and what is allowed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    secret_key: String,
    secret_key_file: String,
    previous_secret_key: String,
    database: RawDatabase,
    web: RawWeb,
    mail: RawMail,
    schedule: RawSchedule,
    digest: RawDigest,
    matching: RawMatching,
    sources: RawSources,
    log: RawLog,
    daemon: RawDaemon,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
    max_connections: String,
    statement_timeout_secs: String,
    acquire_timeout_secs: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    bind: String,
    base_url: String,
    form_posts_per_hour: String,
    confirmation_emails_per_hour: String,
    resend_cooldown_secs: String,
    trust_forwarded_for: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    transport: String,
    file_dir: String,
    from: String,
    smtp_url: String,
    smtp_password_file: String,
    max_connections: String,
    max_per_second: String,
    timeout_secs: String,
    max_hard_bounces: String,
    retry_max_hours: String,
    circuit_pause_secs: String,
    tcp_nodelay: String,
    dkim_key_file: String,
    dkim_selector: String,
    dkim_domain: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    fetch: String,
    send_time: String,
    timezone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    max_papers: String,
    max_age_days: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatching {
    min_score: String,
    trending_weight: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    timeout_secs: String,
    retries: String,
    backoff_ms: String,
    contact: String,
    stale_after_days: String,
    catch_up_days: String,
    hf: RawHf,
    arxiv: RawArxiv,
    #[serde(default)]
    feeds: Vec<RawFeed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: String,
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHf {
    enabled: String,
    base_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArxiv {
    enabled: String,
    categories: Vec<String>,
    rss_base_url: String,
    api_base_url: String,
    cross_lists: String,
    api_interval_ms: String,
    api_page_size: String,
    past_days: String,
    oai_base_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: String,
    format: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    shutdown_timeout_secs: String,
    instance_id: String,
    leader_lease_secs: String,
}

impl Settings {
    /// Loads defaults, then `file` (which must exist when given), then `PAPERBOY__…` variables
    /// from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment passed in (tests use this).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
            // Parse here first: the `config` crate's TOML errors do not name the file.
            let table = text.parse::<toml::Table>().map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                detail: format!("it is not valid TOML: {e}"),
            })?;
            check_file_shape(
                &defaults_table(),
                &table,
                "",
                &format!("in {}", path.display()),
            )?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let prefix = format!("{ENV_PREFIX}__");
        let env_map: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        for var in env_map.keys() {
            check_env_shape(&defaults_table(), var)?;
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("sources.arxiv.categories")
                .try_parsing(false)
                .source(Some(env_map)),
        );
        let merged = builder
            .build()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        let raw: Raw = merged.try_deserialize().map_err(|e| {
            ConfigError::Load(format!(
                "{e}; see config/default.toml for every key and its meaning"
            ))
        })?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Settings, ConfigError> {
        let mail = MailSettings {
            transport: match raw.mail.transport.trim() {
                "smtp" => MailTransportKind::Smtp,
                "file" => MailTransportKind::File,
                other => return Err(invalid("mail.transport", other, "\"smtp\" or \"file\"")),
            },
            file_dir: PathBuf::from(nonempty("mail.file_dir", &raw.mail.file_dir)?),
            from: raw.mail.from.trim().parse().map_err(|e| {
                invalid(
                    "mail.from",
                    &raw.mail.from,
                    format!("a mailbox such as \"Paperboy <digest@example.org>\" ({e})"),
                )
            })?,
            smtp_url: Secret::new(with_smtp_password(
                parse_smtp_url(&raw.mail.smtp_url)?,
                &raw.mail.smtp_password_file,
            )?),
            max_connections: parse_range(
                "mail.max_connections",
                &raw.mail.max_connections,
                1,
                1000,
            )?,
            max_per_second: parse_range(
                "mail.max_per_second",
                &raw.mail.max_per_second,
                0,
                100_000,
            )?,
            timeout: Duration::from_secs(parse_range(
                "mail.timeout_secs",
                &raw.mail.timeout_secs,
                1,
                3600,
            )? as u64),
            max_hard_bounces: parse_range(
                "mail.max_hard_bounces",
                &raw.mail.max_hard_bounces,
                1,
                100,
            )?,
            retry_max_age: Duration::from_secs(
                u64::from(parse_range(
                    "mail.retry_max_hours",
                    &raw.mail.retry_max_hours,
                    1,
                    24 * 14,
                )?) * 3600,
            ),
            circuit_pause: Duration::from_secs(u64::from(parse_range(
                "mail.circuit_pause_secs",
                &raw.mail.circuit_pause_secs,
                1,
                3600,
            )?)),
            tcp_nodelay: parse_bool("mail.tcp_nodelay", &raw.mail.tcp_nodelay)?,
            dkim: parse_dkim(&raw.mail)?,
        };

        let secret_key = resolve_secret_key(&raw.secret_key, &raw.secret_key_file)?;
        let (secret_key, secret_key_generated) = match secret_key {
            Some(k) => (k, false),
            None if mail.transport == MailTransportKind::File => (random_secret(), true),
            None => {
                return Err(ConfigError::Missing {
                    key: "secret_key".into(),
                    why: "it signs the links in every email, so it must be set when \
                          mail.transport = \"smtp\"; generate one with `openssl rand -hex 32` and \
                          put it in the config file, PAPERBOY__SECRET_KEY or secret_key_file"
                        .into(),
                });
            }
        };

        let database = DatabaseSettings {
            url: Secret::new(parse_database_url(&raw.database.url)?),
            max_connections: parse_range(
                "database.max_connections",
                &raw.database.max_connections,
                1,
                1000,
            )?,
            statement_timeout: match parse_range(
                "database.statement_timeout_secs",
                &raw.database.statement_timeout_secs,
                0,
                86_400,
            )? {
                0 => None,
                secs => Some(Duration::from_secs(u64::from(secs))),
            },
            acquire_timeout: Duration::from_secs(u64::from(parse_range(
                "database.acquire_timeout_secs",
                &raw.database.acquire_timeout_secs,
                1,
                3600,
            )?)),
        };

        let web = WebSettings {
            bind: raw.web.bind.trim().parse().map_err(|_| {
                invalid(
                    "web.bind",
                    &raw.web.bind,
                    "an address and port such as 127.0.0.1:8080",
                )
            })?,
            base_url: parse_http_url("web.base_url", &raw.web.base_url)?,
            form_posts_per_hour: parse_range(
                "web.form_posts_per_hour",
                &raw.web.form_posts_per_hour,
                1,
                100_000,
            )?,
            confirmation_emails_per_hour: std::num::NonZeroU32::new(parse_range(
                "web.confirmation_emails_per_hour",
                &raw.web.confirmation_emails_per_hour,
                0,
                1_000_000,
            )?),
            resend_cooldown: Duration::from_secs(u64::from(parse_range(
                "web.resend_cooldown_secs",
                &raw.web.resend_cooldown_secs,
                0,
                86_400,
            )?)),
            trust_forwarded_for: parse_bool(
                "web.trust_forwarded_for",
                &raw.web.trust_forwarded_for,
            )?,
        };
        let previous_secret_key = match raw.previous_secret_key.trim() {
            "" => None,
            k if k.len() < 32 => {
                return Err(invalid(
                    "previous_secret_key",
                    format!("({} characters, hidden)", k.len()),
                    "empty, or the full former secret_key (32+ characters)",
                ));
            }
            k => Some(Secret::new(k)),
        };

        let schedule = ScheduleSettings {
            fetch: cron::Schedule::from_str(raw.schedule.fetch.trim()).map_err(|e| {
                invalid(
                    "schedule.fetch",
                    &raw.schedule.fetch,
                    format!(
                        "a cron expression with seconds first, e.g. \"0 0 * * * *\" for every hour ({e})"
                    ),
                )
            })?,
            send_time: raw.schedule.send_time.parse().map_err(|_| {
                invalid("schedule.send_time", &raw.schedule.send_time, "HH:MM in 24-hour time, e.g. 07:00")
            })?,
            timezone: raw.schedule.timezone.parse().map_err(|_| {
                invalid(
                    "schedule.timezone",
                    &raw.schedule.timezone,
                    "an IANA time zone name such as UTC, Europe/Paris or America/Los_Angeles",
                )
            })?,
        };

        let digest = DigestSettings {
            max_papers: parse_range("digest.max_papers", &raw.digest.max_papers, 1, 100)?,
            max_age_days: parse_range("digest.max_age_days", &raw.digest.max_age_days, 1, 90)?,
        };

        let min_score: f32 = raw.matching.min_score.trim().parse().map_err(|_| {
            invalid(
                "matching.min_score",
                &raw.matching.min_score,
                "a number >= 0, e.g. 1.0",
            )
        })?;
        if !(min_score.is_finite() && min_score >= 0.0) {
            return Err(invalid(
                "matching.min_score",
                min_score,
                "a number >= 0, e.g. 1.0",
            ));
        }
        let trending_weight: f32 = raw
            .matching
            .trending_weight
            .trim()
            .parse()
            .ok()
            .filter(|w: &f32| w.is_finite() && (0.0..=100.0).contains(w))
            .ok_or_else(|| {
                invalid(
                    "matching.trending_weight",
                    &raw.matching.trending_weight,
                    "a number from 0 (off) to 100, e.g. 1.0",
                )
            })?;

        let arxiv_enabled = parse_bool("sources.arxiv.enabled", &raw.sources.arxiv.enabled)?;
        let arxiv_categories = parse_arxiv_categories(&raw.sources.arxiv.categories)?;
        if arxiv_enabled && arxiv_categories.is_empty() {
            return Err(invalid(
                "sources.arxiv.categories",
                "[]",
                "at least one arXiv category such as \"cs.LG\" when `sources.arxiv.enabled` is true",
            ));
        }
        let feeds = parse_feeds(&raw.sources.feeds)?;
        let sources = SourcesSettings {
            timeout: Duration::from_secs(parse_range(
                "sources.timeout_secs",
                &raw.sources.timeout_secs,
                1,
                600,
            )? as u64),
            retries: parse_range("sources.retries", &raw.sources.retries, 0, 10)?,
            backoff: Duration::from_millis(parse_range(
                "sources.backoff_ms",
                &raw.sources.backoff_ms,
                0,
                600_000,
            )? as u64),
            contact: raw.sources.contact.trim().to_string(),
            stale_after_days: parse_range(
                "sources.stale_after_days",
                &raw.sources.stale_after_days,
                1,
                365,
            )?,
            catch_up_days: parse_range(
                "sources.catch_up_days",
                &raw.sources.catch_up_days,
                0,
                366,
            )?,
            hf: HfSettings {
                enabled: parse_bool("sources.hf.enabled", &raw.sources.hf.enabled)?,
                base_url: parse_http_url("sources.hf.base_url", &raw.sources.hf.base_url)?,
            },
            arxiv: ArxivSettings {
                enabled: arxiv_enabled,
                categories: arxiv_categories,
                rss_base_url: parse_http_url(
                    "sources.arxiv.rss_base_url",
                    &raw.sources.arxiv.rss_base_url,
                )?,
                api_base_url: parse_http_url(
                    "sources.arxiv.api_base_url",
                    &raw.sources.arxiv.api_base_url,
                )?,
                cross_lists: parse_bool(
                    "sources.arxiv.cross_lists",
                    &raw.sources.arxiv.cross_lists,
                )?,
                api_interval: Duration::from_millis(parse_range(
                    "sources.arxiv.api_interval_ms",
                    &raw.sources.arxiv.api_interval_ms,
                    0,
                    600_000,
                )? as u64),
                api_page_size: parse_range(
                    "sources.arxiv.api_page_size",
                    &raw.sources.arxiv.api_page_size,
                    1,
                    2000,
                )?,
                past_days: match raw.sources.arxiv.past_days.trim() {
                    "api" => ArxivPastDays::Api,
                    "oai" => ArxivPastDays::Oai,
                    other => {
                        return Err(invalid(
                            "sources.arxiv.past_days",
                            other,
                            "\"api\" (the search API by submission date) or \"oai\" (OAI-PMH by datestamp)",
                        ));
                    }
                },
                oai_base_url: parse_http_url(
                    "sources.arxiv.oai_base_url",
                    &raw.sources.arxiv.oai_base_url,
                )?,
            },
            feeds,
        };

        let daemon = DaemonSettings {
            shutdown_timeout: Duration::from_secs(parse_range(
                "daemon.shutdown_timeout_secs",
                &raw.daemon.shutdown_timeout_secs,
                1,
                3600,
            )? as u64),
            instance_id: parse_instance_id(&raw.daemon.instance_id)?,
            leader_lease: Duration::from_secs(u64::from(parse_range(
                "daemon.leader_lease_secs",
                &raw.daemon.leader_lease_secs,
                3,
                3600,
            )?)),
        };

        let log = LogSettings {
            level: nonempty("log.level", &raw.log.level)?.to_string(),
            format: match raw.log.format.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(invalid("log.format", other, "\"text\" or \"json\"")),
            },
        };

        Ok(Settings {
            secret_key,
            secret_key_generated,
            previous_secret_key,
            database,
            web,
            mail,
            schedule,
            digest,
            matching: MatchingSettings {
                min_score,
                trending_weight,
            },
            sources,
            log,
            daemon,
        })
    }

    /// The domain of the From address: Message-IDs and the List-Id live under it.
    pub fn mail_domain(&self) -> &str {
        self.mail.from.email.domain()
    }
}

/// `config/default.toml` as a table: it has every key, so its shape is the shape of the settings.
fn defaults_table() -> toml::Table {
    DEFAULT_TOML
        .parse()
        .expect("the embedded config/default.toml is valid TOML")
}

/// Checks that each key the file sets has the kind of value its default has (a section is a
/// table, a list a list, anything else a single value), naming the key as written. Done before
/// the environment merges in: with `web = 3` in the file and `PAPERBOY__WEB__BIND` set, the
/// merged result would blame a key the user never wrote. Unknown keys are left to serde, whose
/// message lists the known ones.
fn check_file_shape(
    defaults: &toml::Table,
    file: &toml::Table,
    prefix: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    for (name, value) in file {
        let key = format!("{prefix}{name}");
        let Some(default) = defaults.get(name) else {
            continue;
        };
        let expected = match (default, value) {
            (toml::Value::Table(d), toml::Value::Table(v)) => {
                check_file_shape(d, v, &format!("{key}."), origin)?;
                continue;
            }
            (toml::Value::Array(_), toml::Value::Array(_)) => continue,
            (toml::Value::Table(d), _) => table_wanted(&key, d),
            (toml::Value::Array(d), _) if d.is_empty() => format!("a list of `[[{key}]]` tables"),
            (toml::Value::Array(_), _) => format!("a list such as `{}`", toml_example(default)),
            (_, toml::Value::Table(_) | toml::Value::Array(_)) => {
                format!("a single value such as `{}`", toml_example(default))
            }
            _ => continue,
        };
        return Err(ConfigError::Shape {
            key,
            origin: origin.to_string(),
            expected,
            found: value_kind(value),
        });
    }
    Ok(())
}

/// An environment variable can only set a single value: one that names a section is refused
/// with the section's keys, rather than with serde's name for the section's type.
fn check_env_shape(defaults: &toml::Table, var: &str) -> Result<(), ConfigError> {
    let path = var
        .trim_start_matches(ENV_PREFIX)
        .trim_start_matches("__")
        .to_ascii_lowercase();
    let mut table = defaults;
    for (i, part) in path.split("__").enumerate() {
        match table.get(part) {
            Some(toml::Value::Table(t)) => table = t,
            _ => return Ok(()),
        }
        let key = path.split("__").take(i + 1).collect::<Vec<_>>().join(".");
        if path.split("__").nth(i + 1).is_none() {
            let first = table.keys().next().map(String::as_str).unwrap_or("key");
            return Err(ConfigError::Shape {
                expected: format!(
                    "{}; set one of its keys instead, such as {var}__{}",
                    table_wanted(&key, table),
                    first.to_ascii_uppercase()
                ),
                key,
                origin: format!("set by {var}"),
                found: "a single value".into(),
            });
        }
    }
    Ok(())
}

/// "a table (`[web]` with keys such as `base_url`, `bind`)"
fn table_wanted(key: &str, default: &toml::Table) -> String {
    let keys: Vec<String> = default.keys().take(3).map(|k| format!("`{k}`")).collect();
    format!("a table (`[{key}]` with keys such as {})", keys.join(", "))
}

/// A default value as it is written in TOML.
fn toml_example(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_example).collect();
            format!("[{}]", items.join(", "))
        }
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Table(_) => "{ … }".into(),
    }
}

/// What a TOML value is, in words. Text is not quoted: it could be a password put in the wrong
/// place.
fn value_kind(value: &toml::Value) -> String {
    match value {
        toml::Value::String(_) => "a text value".into(),
        toml::Value::Integer(n) => format!("the number {n}"),
        toml::Value::Float(x) => format!("the number {x}"),
        toml::Value::Boolean(b) => format!("the value {b}"),
        toml::Value::Datetime(_) => "a date".into(),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// arXiv categories as the listing URL and the API query need them: `cs.LG`, `math.AP`,
/// `hep-th`, `q-bio.NC`.
fn parse_arxiv_categories(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for c in raw {
        let c = c.trim();
        let ok = !c.is_empty()
            && c.as_bytes()[0].is_ascii_alphabetic()
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            return Err(invalid(
                "sources.arxiv.categories",
                c,
                "arXiv category names such as \"cs.LG\", \"math.AP\" or \"hep-th\"",
            ));
        }
        if !out.iter().any(|o: &String| o == c) {
            out.push(c.to_string());
        }
    }
    Ok(out)
}

/// `[[sources.feeds]]`: names are source names, so they must be unique, short, and not clash
/// with the built-in sources.
fn parse_feeds(raw: &[RawFeed]) -> Result<Vec<FeedSettings>, ConfigError> {
    let mut out: Vec<FeedSettings> = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let key = format!("sources.feeds[{i}].name");
        let name = f.name.trim();
        let ok = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(invalid(
                &key,
                name,
                "a short name of lowercase letters, digits, - and _, such as \"biorxiv-neuro\"",
            ));
        }
        if matches!(name, "hf" | "arxiv" | "arxiv-api") || out.iter().any(|o| o.name == name) {
            return Err(invalid(
                &key,
                name,
                "a name no other source has (hf, arxiv and arxiv-api are taken)",
            ));
        }
        let url = parse_http_url(&format!("sources.feeds[{i}].url"), &f.url)?;
        out.push(FeedSettings {
            name: name.to_string(),
            url,
        });
    }
    Ok(out)
}

fn nonempty<'a>(key: &str, value: &'a str) -> Result<&'a str, ConfigError> {
    let v = value.trim();
    if v.is_empty() {
        Err(invalid(key, value, "a non-empty value"))
    } else {
        Ok(v)
    }
}

/// `daemon.instance_id`: empty means "this host" (see `jobs::daemon::instance_id`); anything
/// else is kept as written, printable and short enough to show in logs.
fn parse_instance_id(value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if v.len() > 200 || v.chars().any(char::is_control) {
        return Err(invalid(
            "daemon.instance_id",
            value,
            "empty (this host) or a name of at most 200 printable characters",
        ));
    }
    Ok(v.to_string())
}

fn parse_range(key: &str, value: &str, min: u32, max: u32) -> Result<u32, ConfigError> {
    match value.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            key,
            value,
            format!("a whole number from {min} to {max}"),
        )),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "true or false")),
    }
}

fn parse_http_url(key: &str, value: &str) -> Result<url::Url, ConfigError> {
    match url::Url::parse(value.trim()) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(u),
        _ => Err(invalid(
            key,
            value,
            "an http:// or https:// URL such as https://example.org",
        )),
    }
}

fn parse_dkim(mail: &RawMail) -> Result<Option<DkimSettings>, ConfigError> {
    let (file, selector) = (mail.dkim_key_file.trim(), mail.dkim_selector.trim());
    if file.is_empty() && selector.is_empty() {
        return Ok(None);
    }
    if file.is_empty() || selector.is_empty() {
        return Err(ConfigError::Missing {
            key: if file.is_empty() {
                "mail.dkim_key_file"
            } else {
                "mail.dkim_selector"
            }
            .into(),
            why: "DKIM signing needs both the private key file and the selector its public key \
                  is published under (SELECTOR._domainkey.DOMAIN)"
                .into(),
        });
    }
    let domain = mail.dkim_domain.trim();
    let domain = if domain.is_empty() {
        // The From domain is what DMARC aligns with: the natural default.
        mail.from
            .trim()
            .parse::<lettre::message::Mailbox>()
            .map(|m| m.email.domain().to_string())
            .unwrap_or_default()
    } else {
        domain.to_string()
    };
    Ok(Some(DkimSettings {
        key_file: credential_path(file),
        selector: selector.to_string(),
        domain,
    }))
}

fn parse_smtp_url(value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    // The URL may hold a password: never echo it back in an error.
    let shown = match url::Url::parse(v) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable URL)".to_string(),
    };
    match url::Url::parse(v) {
        Ok(u) if (u.scheme() == "smtp" || u.scheme() == "smtps") && u.host().is_some() => {
            Ok(v.to_string())
        }
        _ => Err(invalid(
            "mail.smtp_url",
            shown,
            "smtp://host:25, smtp://host:587?tls=required or smtps://user:pass@host:465",
        )),
    }
}

fn parse_database_url(value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if v.starts_with("sqlite:") || v.starts_with("postgres://") || v.starts_with("postgresql://") {
        Ok(v.to_string())
    } else {
        let scheme = v.split(':').next().unwrap_or("");
        Err(invalid(
            "database.url",
            format!("{scheme}:…"),
            "sqlite://PATH or postgres://user@host/db",
        ))
    }
}

/// Where a `*_file` key's file is: a relative name is looked up in systemd's credentials
/// directory (`$CREDENTIALS_DIRECTORY`, filled by `LoadCredential=`) first, then taken as is.
pub fn credential_path(file: &str) -> PathBuf {
    let path = PathBuf::from(file);
    if path.is_relative()
        && let Ok(dir) = std::env::var("CREDENTIALS_DIRECTORY")
    {
        let candidate = Path::new(&dir).join(file);
        if candidate.exists() {
            return candidate;
        }
    }
    path
}

/// Puts the password read from `mail.smtp_password_file` (when set) into the SMTP URL, so the
/// password can live in a systemd credential instead of the config file.
fn with_smtp_password(url: String, file: &str) -> Result<String, ConfigError> {
    let file = file.trim();
    if file.is_empty() {
        return Ok(url);
    }
    let path = credential_path(file);
    let password = std::fs::read_to_string(&path).map_err(|e| {
        invalid(
            "mail.smtp_password_file",
            path.display(),
            format!("a readable file holding the SMTP password ({e})"),
        )
    })?;
    let mut parsed = url::Url::parse(&url).map_err(|e| ConfigError::Load(e.to_string()))?;
    if parsed.username().is_empty() {
        return Err(ConfigError::Missing {
            key: "mail.smtp_url".into(),
            why: "mail.smtp_password_file is set, so the URL must name the user, e.g. \
                  smtp://user@mail.example.org:587?tls=required"
                .into(),
        });
    }
    // `set_password` percent-encodes, so any character in the password is safe.
    parsed
        .set_password(Some(password.trim_end_matches(['\n', '\r'])))
        .map_err(|()| ConfigError::Load("mail.smtp_url cannot carry a password".into()))?;
    Ok(parsed.to_string())
}

fn resolve_secret_key(key: &str, file: &str) -> Result<Option<Secret>, ConfigError> {
    let file = file.trim();
    let key = if !file.is_empty() {
        // A relative name is looked up in systemd's credentials directory first, so that
        // `LoadCredential=secret_key:/etc/...` and `secret_key_file = "secret_key"` work together.
        let path = credential_path(file);
        std::fs::read_to_string(&path)
            .map_err(|e| {
                invalid(
                    "secret_key_file",
                    path.display(),
                    format!("a readable file holding the key ({e})"),
                )
            })?
            .trim()
            .to_string()
    } else {
        key.trim().to_string()
    };
    if key.is_empty() {
        return Ok(None);
    }
    if key.len() < 32 {
        return Err(invalid(
            "secret_key",
            format!("({} characters, hidden)", key.len()),
            "at least 32 characters; generate one with `openssl rand -hex 32`",
        ));
    }
    Ok(Some(Secret::new(key)))
}

fn random_secret() -> Secret {
    use rand::Rng;
    let bytes: [u8; 32] = rand::thread_rng().r#gen();
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.digest.max_papers, 10);
        assert_eq!(s.mail_domain(), "example.org");
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
        assert_eq!(s.mail.smtp_url.expose(), "smtp://env.example:2525");
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
