//! The small sections: `[database]`, `[web]`, `[schedule]`, `[digest]`, `[matching]`,
//! `[log]`, `[daemon]`. Each type parses itself from its raw text form, every value into a
//! domain type with an error naming its key.
//! Not for: `[mail]` and `[sources]` (their own files), secrets (`secrets`).

use super::ConfigError;
use super::secrets::Secret;
use super::values::{invalid, nonempty, parse_bool, parse_http_url, parse_range};
use crate::model::{MaxPapers, SendTime, TimeZoneName};
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    url: String,
    max_connections: String,
    statement_timeout_secs: String,
    acquire_timeout_secs: String,
}

impl DatabaseSettings {
    pub(super) fn parse(raw: &RawDatabase) -> Result<DatabaseSettings, ConfigError> {
        Ok(DatabaseSettings {
            url: Secret::new(parse_database_url(&raw.url)?),
            max_connections: parse_range(
                "database.max_connections",
                &raw.max_connections,
                1,
                1000,
            )?,
            statement_timeout: match parse_range(
                "database.statement_timeout_secs",
                &raw.statement_timeout_secs,
                0,
                86_400,
            )? {
                0 => None,
                secs => Some(Duration::from_secs(u64::from(secs))),
            },
            acquire_timeout: Duration::from_secs(u64::from(parse_range(
                "database.acquire_timeout_secs",
                &raw.acquire_timeout_secs,
                1,
                3600,
            )?)),
        })
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

#[derive(Debug, Clone)]
pub struct WebSettings {
    pub bind: SocketAddr,
    pub base_url: url::Url,
    /// Sign-ups and "email me my link" requests one client address may make per hour.
    pub form_posts_per_hour: u32,
    /// Confirmation emails the process sends per hour; `None` = no cap.
    pub confirmation_emails_per_hour: Option<NonZeroU32>,
    /// The least time between two confirmation (or two manage-link) emails to one address.
    pub resend_cooldown: Duration,
    /// Behind a reverse proxy: take the client address for rate limits from the last
    /// `X-Forwarded-For` entry (the one the proxy added) instead of the TCP peer.
    pub trust_forwarded_for: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    bind: String,
    base_url: String,
    form_posts_per_hour: String,
    confirmation_emails_per_hour: String,
    resend_cooldown_secs: String,
    trust_forwarded_for: String,
}

impl WebSettings {
    pub(super) fn parse(raw: &RawWeb) -> Result<WebSettings, ConfigError> {
        Ok(WebSettings {
            bind: raw.bind.trim().parse().map_err(|_| {
                invalid(
                    "web.bind",
                    &raw.bind,
                    "an address and port such as 127.0.0.1:8080",
                )
            })?,
            base_url: parse_http_url("web.base_url", &raw.base_url)?,
            form_posts_per_hour: parse_range(
                "web.form_posts_per_hour",
                &raw.form_posts_per_hour,
                1,
                100_000,
            )?,
            confirmation_emails_per_hour: NonZeroU32::new(parse_range(
                "web.confirmation_emails_per_hour",
                &raw.confirmation_emails_per_hour,
                0,
                1_000_000,
            )?),
            resend_cooldown: Duration::from_secs(u64::from(parse_range(
                "web.resend_cooldown_secs",
                &raw.resend_cooldown_secs,
                0,
                86_400,
            )?)),
            trust_forwarded_for: parse_bool("web.trust_forwarded_for", &raw.trust_forwarded_for)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub fetch: cron::Schedule,
    pub send_time: SendTime,
    pub timezone: TimeZoneName,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    fetch: String,
    send_time: String,
    timezone: String,
}

impl ScheduleSettings {
    pub(super) fn parse(raw: &RawSchedule) -> Result<ScheduleSettings, ConfigError> {
        Ok(ScheduleSettings {
            fetch: cron::Schedule::from_str(raw.fetch.trim()).map_err(|e| {
                invalid(
                    "schedule.fetch",
                    &raw.fetch,
                    format!(
                        "a cron expression with seconds first, e.g. \"0 0 * * * *\" for every \
                         hour ({e})"
                    ),
                )
            })?,
            send_time: raw.send_time.parse().map_err(|_| {
                invalid(
                    "schedule.send_time",
                    &raw.send_time,
                    "HH:MM in 24-hour time, e.g. 07:00",
                )
            })?,
            timezone: raw.timezone.parse().map_err(|_| {
                invalid(
                    "schedule.timezone",
                    &raw.timezone,
                    "an IANA time zone name such as UTC, Europe/Paris or America/Los_Angeles",
                )
            })?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// New subscribers' default, and what `paperboy eval` cuts at; each subscriber chooses
    /// their own within `MaxPapers`.
    pub max_papers: MaxPapers,
    pub max_age_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDigest {
    max_papers: String,
    max_age_days: String,
}

impl DigestSettings {
    pub(super) fn parse(raw: &RawDigest) -> Result<DigestSettings, ConfigError> {
        Ok(DigestSettings {
            max_papers: raw
                .max_papers
                .parse()
                .map_err(|_| invalid("digest.max_papers", &raw.max_papers, MaxPapers::allowed()))?,
            max_age_days: parse_range("digest.max_age_days", &raw.max_age_days, 1, 90)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct MatchingSettings {
    pub min_score: f32,
    /// The floor of closeness in meaning (a cosine, 0 to 1): below it meaning alone never
    /// qualifies a paper.
    pub min_closeness: f32,
    /// The most Hugging Face upvotes can add to a matching paper's score (0 = off).
    pub trending_weight: f32,
    /// Whether each abstract sentence is embedded, so that a paper picked by meaning alone
    /// shows the sentence closest to the interest (about one and a half times the embedding
    /// work of the papers themselves).
    pub highlight_sentences: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatching {
    min_score: String,
    min_closeness: String,
    trending_weight: String,
    highlight_sentences: String,
}

impl MatchingSettings {
    pub(super) fn parse(raw: &RawMatching) -> Result<MatchingSettings, ConfigError> {
        let min_score: f32 = raw.min_score.trim().parse().map_err(|_| {
            invalid(
                "matching.min_score",
                &raw.min_score,
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
            .trending_weight
            .trim()
            .parse()
            .ok()
            .filter(|w: &f32| w.is_finite() && (0.0..=100.0).contains(w))
            .ok_or_else(|| {
                invalid(
                    "matching.trending_weight",
                    &raw.trending_weight,
                    "a number from 0 (off) to 100, e.g. 1.0",
                )
            })?;
        let min_closeness: f32 = raw
            .min_closeness
            .trim()
            .parse()
            .ok()
            .filter(|c: &f32| c.is_finite() && (0.0..=1.0).contains(c))
            .ok_or_else(|| {
                invalid(
                    "matching.min_closeness",
                    &raw.min_closeness,
                    "a cosine from 0 to 1, e.g. 0.32 (1 turns matching by meaning alone off)",
                )
            })?;
        Ok(MatchingSettings {
            min_score,
            min_closeness,
            trending_weight,
            highlight_sentences: parse_bool(
                "matching.highlight_sentences",
                &raw.highlight_sentences,
            )?,
        })
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    level: String,
    format: String,
}

impl LogSettings {
    pub(super) fn parse(raw: &RawLog) -> Result<LogSettings, ConfigError> {
        Ok(LogSettings {
            level: nonempty("log.level", &raw.level)?.to_string(),
            format: match raw.format.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(invalid("log.format", other, "\"text\" or \"json\"")),
            },
        })
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    shutdown_timeout_secs: String,
    instance_id: String,
    leader_lease_secs: String,
}

impl DaemonSettings {
    pub(super) fn parse(raw: &RawDaemon) -> Result<DaemonSettings, ConfigError> {
        Ok(DaemonSettings {
            shutdown_timeout: Duration::from_secs(u64::from(parse_range(
                "daemon.shutdown_timeout_secs",
                &raw.shutdown_timeout_secs,
                1,
                3600,
            )?)),
            instance_id: parse_instance_id(&raw.instance_id)?,
            leader_lease: Duration::from_secs(u64::from(parse_range(
                "daemon.leader_lease_secs",
                &raw.leader_lease_secs,
                3,
                3600,
            )?)),
        })
    }
}

/// `daemon.instance_id`: empty means "this host" (see `daemon::instance_id`); anything
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
