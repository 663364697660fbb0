//! `[mail]`: how digests leave (SMTP or `.eml` files), the From address, pacing, bounces,
//! retries and DKIM.
//! Not for: connecting or sending (that is `mail`).

use super::ConfigError;
use super::secrets::{Secret, credential_path, read_credential};
use super::values::{invalid, nonempty, parse_bool, parse_range};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
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

impl MailSettings {
    pub(super) fn parse(raw: &RawMail) -> Result<MailSettings, ConfigError> {
        Ok(MailSettings {
            transport: match raw.transport.trim() {
                "smtp" => MailTransportKind::Smtp,
                "file" => MailTransportKind::File,
                other => return Err(invalid("mail.transport", other, "\"smtp\" or \"file\"")),
            },
            file_dir: PathBuf::from(nonempty("mail.file_dir", &raw.file_dir)?),
            from: raw.from.trim().parse().map_err(|e| {
                invalid(
                    "mail.from",
                    &raw.from,
                    format!("a mailbox such as \"Paperboy <digest@example.org>\" ({e})"),
                )
            })?,
            smtp_url: Secret::new(with_smtp_password(
                parse_smtp_url(&raw.smtp_url)?,
                &raw.smtp_password_file,
            )?),
            max_connections: parse_range("mail.max_connections", &raw.max_connections, 1, 1000)?,
            max_per_second: parse_range("mail.max_per_second", &raw.max_per_second, 0, 100_000)?,
            timeout: Duration::from_secs(u64::from(parse_range(
                "mail.timeout_secs",
                &raw.timeout_secs,
                1,
                3600,
            )?)),
            max_hard_bounces: parse_range("mail.max_hard_bounces", &raw.max_hard_bounces, 1, 100)?,
            retry_max_age: Duration::from_secs(
                u64::from(parse_range(
                    "mail.retry_max_hours",
                    &raw.retry_max_hours,
                    1,
                    24 * 14,
                )?) * 3600,
            ),
            circuit_pause: Duration::from_secs(u64::from(parse_range(
                "mail.circuit_pause_secs",
                &raw.circuit_pause_secs,
                1,
                3600,
            )?)),
            tcp_nodelay: parse_bool("mail.tcp_nodelay", &raw.tcp_nodelay)?,
            dkim: DkimSettings::parse(raw)?,
        })
    }
}

impl DkimSettings {
    fn parse(mail: &RawMail) -> Result<Option<DkimSettings>, ConfigError> {
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
                why: "DKIM signing needs both the private key file and the selector its public \
                      key is published under (SELECTOR._domainkey.DOMAIN)"
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

/// Puts the password read from `mail.smtp_password_file` (when set) into the SMTP URL, so the
/// password can live in a systemd credential instead of the config file.
fn with_smtp_password(url: String, file: &str) -> Result<String, ConfigError> {
    let Some(password) = read_credential("mail.smtp_password_file", file, "the SMTP password")?
    else {
        return Ok(url);
    };
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
