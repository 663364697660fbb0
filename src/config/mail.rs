//! `[mail]`: how digests leave (SMTP or `.eml` files), the From address, pacing, bounces,
//! retries and DKIM.
//! Not for: connecting or sending (that is `mail`).

use super::ConfigError;
use super::secrets::{Secret, credential_path, read_credential, without_password};
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
    /// `mail.smtp_url` and `mail.smtp_password_file`, parsed.
    pub smtp_url: SmtpUrl,
    /// `mail.tls_ca_file`: roots trusted beside the system's, for a relay whose certificate
    /// comes from a private CA.
    pub tls_ca: Option<CaFile>,
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
    /// `mail.bounce_address`: the envelope sender, one VERP address per delivery, so a bounce
    /// that arrives later names its delivery. `None`: the From address, as before.
    pub bounce_address: Option<BounceAddress>,
    /// `mail.bounce_imap_url` with `mail.bounce_imap_password_file`: where those bounces arrive.
    pub bounce_mailbox: Option<ImapUrl>,
    /// `mail.bounce_check_secs`: how often the daemon reads the bounce mailbox.
    pub bounce_check_every: Duration,
    /// Soft bounces (a full mailbox, "delayed") on distinct digests that count as one hard one.
    pub max_soft_bounces: u32,
    /// `mail.webhook_secret_file`: the password the bounce and complaint webhooks of Amazon
    /// SES (through SNS) and Postmark must present (HTTP Basic); `None` turns them off.
    pub webhook_secret: Option<Secret>,
}

/// `mail.bounce_address`, split where a VERP tag goes in: `LOCAL+TAG@DOMAIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceAddress {
    pub local: String,
    pub domain: String,
}

/// `mail.bounce_imap_url` (`imaps://user@host:993/MAILBOX`) and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    /// `INBOX` unless the URL's path names another.
    pub mailbox: String,
}

/// The certificates of `mail.tls_ca_file`, read and parsed when the configuration is.
#[derive(Debug, Clone)]
pub struct CaFile {
    pub path: PathBuf,
    pub certificates: Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>,
}

impl CaFile {
    fn read(value: &str) -> Result<Option<CaFile>, ConfigError> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let file = value.trim();
        if file.is_empty() {
            return Ok(None);
        }
        let path = credential_path(file);
        let refuse = |why: String| invalid("mail.tls_ca_file", path.display(), why);
        let bytes = std::fs::read(&path)
            .map_err(|e| refuse(format!("a readable PEM file of CA certificates ({e})")))?;
        let certificates = tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                refuse(format!(
                    "PEM CA certificates (\"-----BEGIN CERTIFICATE-----\"): {e}"
                ))
            })?;
        if certificates.is_empty() {
            return Err(refuse(
                "a PEM file holding at least one \"-----BEGIN CERTIFICATE-----\" block".into(),
            ));
        }
        Ok(Some(CaFile { path, certificates }))
    }
}

/// `mail.webhook_secret_file`'s secret: long enough that guessing it is hopeless.
fn webhook_secret(file: &str) -> Result<Option<Secret>, ConfigError> {
    let Some(text) = read_credential(
        "mail.webhook_secret_file",
        file,
        "the webhooks' password (e.g. `openssl rand -hex 24`)",
    )?
    else {
        return Ok(None);
    };
    let secret = text.trim();
    if secret.len() < 24 || secret.contains(char::is_whitespace) {
        return Err(invalid(
            "mail.webhook_secret_file",
            credential_path(file.trim()).display(),
            "a file holding one password of at least 24 characters without spaces, e.g. \
             from `openssl rand -hex 24`",
        ));
    }
    Ok(Some(Secret::new(secret)))
}

impl BounceAddress {
    fn parse(value: &str) -> Result<Option<BounceAddress>, ConfigError> {
        let v = value.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let refuse = |why: &str| invalid("mail.bounce_address", v, why);
        let address: lettre::Address = v
            .parse()
            .map_err(|_| refuse("an address such as \"bounces@example.org\""))?;
        if address.user().contains('+') || !address.user().is_ascii() {
            return Err(refuse(
                "an ASCII address without a `+`: paperboy adds `+TAG` for each delivery",
            ));
        }
        Ok(Some(BounceAddress {
            local: address.user().to_string(),
            domain: address.domain().to_string(),
        }))
    }
}

impl ImapUrl {
    fn parse(value: &str, file_password: Option<String>) -> Result<Option<ImapUrl>, ConfigError> {
        const FORM: &str = "imaps://user@imap.example.org:993/INBOX, with the password in \
                            `mail.bounce_imap_password_file` (or in the URL)";
        let v = value.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let url = url::Url::parse(v)
            .map_err(|_| invalid("mail.bounce_imap_url", "(unparseable URL)", FORM))?;
        let refuse = |why: &str| invalid("mail.bounce_imap_url", without_password(v), why);
        if url.scheme() != "imaps" {
            return Err(refuse(&format!(
                "an imaps:// URL (TLS from the first byte): {FORM}"
            )));
        }
        let host = url_host(&url).ok_or_else(|| refuse(FORM))?;
        let decode = |part: &str| {
            url_part(part)
                .ok_or_else(|| refuse("a URL whose user and password are UTF-8 once %-decoded"))
        };
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(refuse(&format!("a URL that names the user: {FORM}")));
        }
        let password = match (file_password, url.password()) {
            (Some(p), _) => p,
            (None, Some(p)) => decode(p)?,
            (None, None) => {
                return Err(ConfigError::Missing {
                    key: "mail.bounce_imap_password_file".into(),
                    why: "mail.bounce_imap_url names no password; put it in this file (or \
                          the URL)"
                        .into(),
                });
            }
        };
        let mailbox = decode(url.path().trim_matches('/'))?;
        Ok(Some(ImapUrl {
            port: url.port().unwrap_or(993),
            host,
            user,
            password: Secret::new(password),
            mailbox: if mailbox.is_empty() {
                "INBOX".into()
            } else {
                mailbox
            },
        }))
    }
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
    smtp_plaintext_auth: String,
    tls_ca_file: String,
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
    bounce_address: String,
    bounce_imap_url: String,
    bounce_imap_password_file: String,
    bounce_check_secs: String,
    max_soft_bounces: String,
    webhook_secret_file: String,
}

impl MailSettings {
    pub(super) fn parse(raw: &RawMail) -> Result<MailSettings, ConfigError> {
        let smtp_url = SmtpUrl::parse_with_password(
            &raw.smtp_url,
            read_credential(
                "mail.smtp_password_file",
                &raw.smtp_password_file,
                "the SMTP password",
            )?
            .map(|p| p.trim_end_matches(['\n', '\r']).to_string()),
        )?
        .allowing_plaintext_auth(parse_bool(
            "mail.smtp_plaintext_auth",
            &raw.smtp_plaintext_auth,
        )?)?;
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
            smtp_url,
            tls_ca: CaFile::read(&raw.tls_ca_file)?,
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
            bounce_address: BounceAddress::parse(&raw.bounce_address)?,
            bounce_mailbox: ImapUrl::parse(
                &raw.bounce_imap_url,
                read_credential(
                    "mail.bounce_imap_password_file",
                    &raw.bounce_imap_password_file,
                    "the bounce mailbox's password",
                )?
                .map(|p| p.trim_end_matches(['\n', '\r']).to_string()),
            )?,
            bounce_check_every: Duration::from_secs(u64::from(parse_range(
                "mail.bounce_check_secs",
                &raw.bounce_check_secs,
                10,
                86_400,
            )?)),
            max_soft_bounces: parse_range("mail.max_soft_bounces", &raw.max_soft_bounces, 1, 100)?,
            webhook_secret: webhook_secret(&raw.webhook_secret_file)?,
        })
        .and_then(|settings| {
            if settings.bounce_mailbox.is_some() && settings.bounce_address.is_none() {
                return Err(ConfigError::Missing {
                    key: "mail.bounce_address".into(),
                    why: "mail.bounce_imap_url is set, and a bounce is matched to its delivery \
                          only through the envelope sender this address makes, e.g. \
                          \"bounces@example.org\" (whose mail arrives in that mailbox)"
                        .into(),
                });
            }
            Ok(settings)
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

/// A URL's host: a name or an address, an IPv6 address without its brackets.
fn url_host(url: &url::Url) -> Option<String> {
    url.host_str()
        .filter(|h| !h.is_empty())
        .map(|h| h.trim_matches(['[', ']']).to_string())
}

/// A user or password part of a URL, percent-decoded as lettre decodes it: `+` stays `+` (it
/// is not a form). `None` when it is not UTF-8 once decoded.
fn url_part(part: &str) -> Option<String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// `mail.smtp_url` with `mail.smtp_password_file`, read once when the configuration is: what
/// the SMTP pool connects to, and so what `paperboy check` probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// A name or an address; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The name said in EHLO, from the URL's path (`smtp://host/NAME`); `None` = this host's.
    pub hello: Option<String>,
    /// AUTH: the URL's user with the URL's password or the password file's. A user without a
    /// password means no AUTH.
    pub login: Option<SmtpLogin>,
    /// `mail.smtp_plaintext_auth`: AUTH may go without TLS. Only ever true for a loopback host.
    pub plaintext_auth: bool,
}

/// SMTP AUTH credentials, decoded (a `%40` in the URL is an `@` here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpLogin {
    pub user: String,
    pub password: Secret,
}

/// How an SMTP session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (`smtp://host`): loopback relays and tests.
    Plain,
    /// `STARTTLS` after the greeting; refuse to go on without it (`?tls=required`).
    StartTlsRequired,
    /// `STARTTLS` when the server offers it (`?tls=opportunistic`).
    StartTlsOpportunistic,
    /// TLS from the first byte (`smtps://`, port 465).
    Implicit,
}

const SMTP_URL_FORMS: &str = "smtp://host:25, smtp://host:587?tls=required (or \
                              ?tls=opportunistic) or smtps://user:pass@host:465";

impl SmtpUrl {
    /// Parses `smtp://[user:pass@]host[:port][/helo-name][?tls=required|opportunistic]` or
    /// `smtps://…`, with lettre's defaults (25 plain, 587 STARTTLS, 465 implicit TLS), so a
    /// URL written for lettre means the same here. An error names `mail.smtp_url` and never
    /// shows the password.
    pub fn parse(value: &str) -> Result<SmtpUrl, ConfigError> {
        Self::parse_with_password(value, None)
    }

    /// As [`SmtpUrl::parse`]; a password read from `mail.smtp_password_file` wins over the
    /// URL's, and needs the URL to name the user.
    fn parse_with_password(
        value: &str,
        file_password: Option<String>,
    ) -> Result<SmtpUrl, ConfigError> {
        let v = value.trim();
        let url = url::Url::parse(v).map_err(|_| {
            invalid(
                "mail.smtp_url",
                "(unparseable URL)",
                format!("a URL such as {SMTP_URL_FORMS}"),
            )
        })?;
        let refuse = |allowed: &str| invalid("mail.smtp_url", without_password(v), allowed);
        let host = url_host(&url).ok_or_else(|| refuse(SMTP_URL_FORMS))?;
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (tls, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (SmtpTls::Plain, 25),
            ("smtp", Some("required")) => (SmtpTls::StartTlsRequired, 587),
            ("smtp", Some("opportunistic")) => (SmtpTls::StartTlsOpportunistic, 587),
            ("smtps", _) => (SmtpTls::Implicit, 465),
            ("smtp", Some(_)) => {
                return Err(refuse(
                    "`?tls=required` or `?tls=opportunistic` (STARTTLS), or no `tls` for plain \
                     text",
                ));
            }
            _ => return Err(refuse(SMTP_URL_FORMS)),
        };
        let decode = |part: &str, what: &str| {
            url_part(part)
                .ok_or_else(|| refuse(&format!("a URL whose {what} is UTF-8 once %-decoded")))
        };
        let user = decode(url.username(), "user")?;
        let login = match (file_password, url.password()) {
            (Some(_), _) if user.is_empty() => {
                return Err(ConfigError::Missing {
                    key: "mail.smtp_url".into(),
                    why: "mail.smtp_password_file is set, so the URL must name the user, e.g. \
                          smtp://user@mail.example.org:587?tls=required"
                        .into(),
                });
            }
            (Some(password), _) => Some(SmtpLogin {
                user,
                password: Secret::new(password),
            }),
            (None, Some(password)) => Some(SmtpLogin {
                user,
                password: Secret::new(decode(password, "password")?),
            }),
            (None, None) => None,
        };
        let hello = Some(url.path().trim_matches('/'))
            .filter(|name| !name.is_empty())
            .map(str::to_string);
        Ok(SmtpUrl {
            port: url.port().unwrap_or(default_port),
            host,
            tls,
            hello,
            login,
            plaintext_auth: false,
        })
    }

    /// `mail.smtp_plaintext_auth`, checked against the URL: a password goes over a connection
    /// without TLS only to a relay on this machine, and only when the operator says so.
    fn allowing_plaintext_auth(mut self, allowed: bool) -> Result<SmtpUrl, ConfigError> {
        let loopback = self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if allowed && !loopback {
            return Err(invalid(
                "mail.smtp_plaintext_auth",
                "true",
                format!(
                    "false: a password is sent without TLS only to a relay on this machine \
                     (127.0.0.1, ::1 or localhost), and `mail.smtp_url` names {}",
                    self.host
                ),
            ));
        }
        if self.login.is_some() && self.tls == SmtpTls::Plain && !allowed {
            return Err(ConfigError::Missing {
                key: "mail.smtp_url".into(),
                why: "it has a user and password but no TLS, so the password would cross the \
                      network in clear text: use smtp://…:587?tls=required or smtps://…:465, or, \
                      for a relay on this machine only, set `mail.smtp_plaintext_auth = true`"
                    .into(),
            });
        }
        self.plaintext_auth = allowed;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_mean_what_lettre_made_them_mean() {
        let t = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("127.0.0.1", 2525, SmtpTls::Plain)
        );
        assert!(t.login.is_none());
        let t = SmtpUrl::parse("smtp://mail.example.org?tls=required").unwrap();
        assert_eq!((t.port, t.tls), (587, SmtpTls::StartTlsRequired));
        let t = SmtpUrl::parse("smtp://mail.example.org?tls=opportunistic").unwrap();
        assert_eq!((t.port, t.tls), (587, SmtpTls::StartTlsOpportunistic));
        let t = SmtpUrl::parse("smtps://mail.example.org").unwrap();
        assert_eq!((t.port, t.tls), (465, SmtpTls::Implicit));
        let t = SmtpUrl::parse("smtp://[::1]:2525/relay.example").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.hello.as_deref(), Some("relay.example"));
        assert_eq!(SmtpUrl::parse("smtp://h").unwrap().hello, None);
        // A user without a password: no AUTH.
        assert!(SmtpUrl::parse("smtp://paperboy@h").unwrap().login.is_none());
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_shown() {
        let t = SmtpUrl::parse("smtps://u%40x:p%2Fw%25+1@mail.example.org").unwrap();
        let login = t.login.as_ref().expect("a password means AUTH");
        assert_eq!(login.user, "u@x");
        // `+` is a plus sign in a URL's user part, not a space as in a form.
        assert_eq!(login.password.expose(), "p/w%+1");
        assert!(!format!("{t:?}").contains("p/w"), "no password in Debug");

        for (url, wrong) in [
            ("smtp://u:hunter2@h?tls=sometimes", "tls"),
            ("ftp://u:hunter2@h", "smtp://"),
            ("smtp://u:hunter2@h:notaport", "unparseable"),
            ("smtp://u:hunter2%ff@h", "UTF-8"),
        ] {
            let err = SmtpUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains("config key `mail.smtp_url`"), "{err}");
            assert!(err.contains(wrong), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_password_file_needs_a_user_and_wins_over_the_url() {
        let t = SmtpUrl::parse_with_password("smtp://u:old@h", Some("new+pw".into())).unwrap();
        assert_eq!(
            t.login.map(|l| (l.user, l.password.expose().to_string())),
            Some(("u".to_string(), "new+pw".to_string()))
        );
        let err = SmtpUrl::parse_with_password("smtp://h", Some("pw".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`mail.smtp_url` is required") && err.contains("must name the user"),
            "{err}"
        );
    }

    #[test]
    fn a_password_goes_without_tls_only_to_a_loopback_relay_that_allows_it() {
        let url = |u: &str| SmtpUrl::parse(u).unwrap();
        let err = url("smtp://u:hunter2@mail.example.org")
            .allowing_plaintext_auth(false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`mail.smtp_url`")
                && err.contains("clear text")
                && err.contains("`mail.smtp_plaintext_auth = true`")
                && !err.contains("hunter2"),
            "{err}"
        );
        let err = url("smtp://u:hunter2@mail.example.org")
            .allowing_plaintext_auth(true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`mail.smtp_plaintext_auth`") && err.contains("mail.example.org"),
            "{err}"
        );
        for relay in [
            "smtp://u:p@127.0.0.1:25",
            "smtp://u:p@[::1]:25",
            "smtp://u:p@localhost",
        ] {
            let t = url(relay).allowing_plaintext_auth(true).unwrap();
            assert!(t.plaintext_auth, "{relay}");
        }
        // TLS, or no password: nothing to allow.
        for fine in [
            "smtps://u:p@mail.example.org",
            "smtp://u:p@mail.example.org?tls=required",
            "smtp://mail.example.org",
        ] {
            let t = url(fine).allowing_plaintext_auth(false).unwrap();
            assert!(!t.plaintext_auth, "{fine}");
        }
    }

    #[test]
    fn a_ca_file_must_be_readable_and_hold_a_certificate() {
        assert!(CaFile::read(" ").unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = CaFile::read(&missing.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`mail.tls_ca_file`") && err.contains("missing.pem"),
            "{err}"
        );
        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = CaFile::read(&key.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`mail.tls_ca_file`") && err.contains("BEGIN CERTIFICATE"),
            "{err}"
        );
    }
}
