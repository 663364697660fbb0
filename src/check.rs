//! `paperboy check`: is everything paperboy depends on there and answering? Sends nothing.
//!
//! For: an operator after installing or changing the configuration, and `ExecStartPre=` or CI.
//! It checks, in order: the configuration (already parsed by the time this runs: a bad value
//! stops `main` with exit 2 and the key's name), the database (reachable, migrations pending),
//! the secrets, the mail transport (an SMTP session: connect, EHLO, STARTTLS when asked for,
//! AUTH when credentials are given, QUIT — no MAIL FROM, so nothing is sent), and each enabled
//! source (one listing request, nothing stored). Not for: monitoring a running daemon (that is
//! `/readyz` and `/metrics`).
//!
//! Each line starts with `ok`, `warn` or `FAIL`; a FAIL names the config key to fix. The exit
//! status is 1 when anything failed.

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use paperboy::config::{MailTransportKind, Settings};
use paperboy::jobs::{App, Clock, fetch};
use paperboy::mail::Mailer;
use paperboy::store::Store;
use std::process::ExitCode;
use std::time::Duration;

/// The report, printed as it goes so a slow step shows where it is.
struct Report {
    failed: usize,
    warned: usize,
    passed: usize,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl AsRef<str>) {
        self.passed += 1;
        println!("ok    {what}: {}", detail.as_ref());
    }
    fn warn(&mut self, what: &str, detail: impl AsRef<str>) {
        self.warned += 1;
        println!("warn  {what}: {}", detail.as_ref());
    }
    fn fail(&mut self, what: &str, detail: impl AsRef<str>) {
        self.failed += 1;
        println!("FAIL  {what}: {}", detail.as_ref());
    }
}

pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let mut r = Report {
        failed: 0,
        warned: 0,
        passed: 0,
    };
    r.ok("config", "loaded; every key has an allowed value");

    // Database: reachable, and which migrations the next start would apply. Not migrated
    // here: check changes nothing. A SQLite file that does not exist yet is not created either
    // (it would belong to whoever ran check, typically root, instead of the service's user).
    let missing = missing_sqlite_file(settings.database.url.expose());
    let opened = match &missing {
        Some(path) => {
            r.ok(
                "database (sqlite)",
                format!(
                    "{} does not exist yet; `paperboy run` creates and migrates it at its \
                     first start",
                    path.display()
                ),
            );
            Ok(None)
        }
        None => Store::open(
            settings.database.url.expose(),
            settings.database.max_connections,
        )
        .await
        .map(Some),
    };
    let store = match opened {
        Ok(store) => store,
        Err(e) => {
            r.fail(
                "database",
                format!("{e} (config key `database.url`; is the server up, the path writable?)"),
            );
            None
        }
    };
    if let Some(store) = &store {
        let backend = store.backend_name();
        match (store.ping().await, store.pending_migrations().await) {
            (Err(e), _) | (Ok(()), Err(e)) => r.fail(
                &format!("database ({backend})"),
                format!("{e} (config key `database.url`)"),
            ),
            (Ok(()), Ok(pending)) if pending.is_empty() => r.ok(
                &format!("database ({backend})"),
                "reachable; schema up to date",
            ),
            (Ok(()), Ok(pending)) => r.ok(
                &format!("database ({backend})"),
                format!(
                    "reachable; {} migration(s) pending, applied at the next start or by \
                     `paperboy migrate`: {}",
                    pending.len(),
                    pending.join(", ")
                ),
            ),
        }
    }

    if settings.secret_key_generated {
        r.warn(
            "secret_key",
            "not set: links in emails would stop working at each restart; set `secret_key` or \
             `secret_key_file` (32+ characters, `openssl rand -hex 32`)",
        );
    } else {
        r.ok("secret_key", "set");
    }

    // Mail: the transport as configured (this also loads the DKIM key), then a real session.
    match Mailer::from_settings(&settings.mail) {
        Err(e) => r.fail("mail", e),
        Ok(_) => {
            if let Some(d) = &settings.mail.dkim {
                r.ok(
                    "dkim",
                    format!(
                        "key {} loaded; publish it at {}._domainkey.{}",
                        d.key_file.display(),
                        d.selector,
                        d.domain
                    ),
                );
            }
            match settings.mail.transport {
                MailTransportKind::Smtp => check_smtp(&settings, &mut r).await,
                MailTransportKind::File => check_file_dir(&settings, &mut r).await,
            }
        }
    }

    sources_and_summary(settings, store, r).await
}

/// The SQLite file `url` names, when it does not exist.
fn missing_sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(':') {
        return None; // in memory
    }
    let path = std::path::PathBuf::from(path);
    (!path.exists()).then_some(path)
}

async fn sources_and_summary(
    settings: Settings,
    store: Option<Store>,
    mut r: Report,
) -> anyhow::Result<ExitCode> {
    // Sources: one listing request each, nothing stored. The source set comes from the jobs'
    // own constructor, which needs an App; without a reachable database a throw-away
    // in-memory one stands in (sources never touch it).
    let source_store = match store {
        Some(s) => s,
        None => Store::open("sqlite::memory:", 1).await?,
    };
    let clock = Clock::from_env().map_err(anyhow::Error::msg)?;
    let today = clock.now().date_naive();
    match App::new(settings, source_store, clock) {
        Err(e) => r.fail("sources", e),
        Ok(app) => match fetch::sources(&app, None) {
            Err(e) => r.fail("sources", e.to_string()),
            Ok(sources) if sources.is_empty() => r.warn(
                "sources",
                "none is enabled, so no paper will ever be fetched (`sources.hf.enabled`, \
                 `sources.arxiv.enabled`, `[[sources.feeds]]`)",
            ),
            Ok(sources) => {
                // What the store remembers: last success, last error, staleness.
                for (name, state, stale) in fetch::source_overview(&app, &sources).await {
                    // A source that never ran has nothing to report yet.
                    if state.is_none() {
                        continue;
                    }
                    let line =
                        crate::cli::source_status_line(&name, state.as_ref(), stale.as_deref());
                    let failing = state.as_ref().is_some_and(|s| {
                        s.last_error.is_some() && s.last_error_at > s.last_success_at
                    });
                    if stale.is_some() || failing {
                        r.warn(&format!("source {name} state"), line);
                    } else {
                        r.ok(&format!("source {name} state"), line);
                    }
                }
                // And one live request each (the current listing, unconditionally).
                for source in &sources {
                    let name = source.name();
                    let what = format!("source {name} ({})", source.location());
                    match source
                        .fetch_latest(today, paperboy::sources::http::Validators::default())
                        .await
                    {
                        Ok(batch) => r.ok(
                            &what,
                            format!(
                                "answered: {} papers listed for {today}{}",
                                batch.papers.len() + batch.updates.len(),
                                if batch.skipped.is_empty() {
                                    String::new()
                                } else {
                                    format!(", {} unreadable items skipped", batch.skipped.len())
                                }
                            ),
                        ),
                        Err(e) => {
                            let key = match name {
                                "hf" => "`sources.hf.base_url`".to_string(),
                                "arxiv" => "`sources.arxiv.rss_base_url`".to_string(),
                                feed => format!("`url` of the `[[sources.feeds]]` named {feed}"),
                            };
                            r.fail(&what, format!("{e} (config key {key})"))
                        }
                    }
                }
            }
        },
    }

    println!(
        "{}: {} ok, {} warnings, {} failed",
        if r.failed == 0 { "healthy" } else { "BROKEN" },
        r.passed,
        r.warned,
        r.failed
    );
    Ok(if r.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn check_file_dir(settings: &Settings, r: &mut Report) {
    let dir = &settings.mail.file_dir;
    let probe = dir.join(".paperboy-check");
    let result = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&probe, b"check").await?;
        tokio::fs::remove_file(&probe).await
    }
    .await;
    match result {
        Ok(()) => r.ok(
            "mail (file)",
            format!(
                "digests are written to {} (writable); nothing is emailed until \
                 `mail.transport = \"smtp\"`",
                dir.display()
            ),
        ),
        Err(e) => r.fail(
            "mail (file)",
            format!(
                "cannot write to {}: {e} (config key `mail.file_dir`)",
                dir.display()
            ),
        ),
    }
}

/// How `mail.smtp_url` asks to connect, read the way lettre reads it.
struct SmtpTarget {
    host: String,
    port: u16,
    tls: TlsMode,
    hello: ClientId,
    credentials: Option<Credentials>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TlsMode {
    None,
    Opportunistic,
    Required,
    Wrapper,
}

fn smtp_target(url: &str) -> Result<SmtpTarget, String> {
    let u = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = u.host_str().ok_or("the URL has no host")?.to_string();
    let tls_param = u
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let (tls, default_port) = match (u.scheme(), tls_param.as_deref()) {
        ("smtp", None) => (TlsMode::None, 25),
        ("smtp", Some("required")) => (TlsMode::Required, 587),
        ("smtp", Some("opportunistic")) => (TlsMode::Opportunistic, 587),
        ("smtps", _) => (TlsMode::Wrapper, 465),
        (scheme, tls) => {
            return Err(format!(
                "scheme `{scheme}` with tls={tls:?} is not one paperboy can use; use smtp://, \
                 smtp://…?tls=required or smtps://"
            ));
        }
    };
    let hello = match u.path().trim_matches('/') {
        "" => ClientId::default(),
        name => ClientId::Domain(name.to_string()),
    };
    let credentials = u
        .password()
        .map(|p| Credentials::new(percent_decode(u.username()), percent_decode(p)));
    Ok(SmtpTarget {
        port: u.port().unwrap_or(default_port),
        host,
        tls,
        hello,
        credentials,
    })
}

/// `%XX` escapes in a URL's user or password, decoded (as lettre does when it sends them).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn check_smtp(settings: &Settings, r: &mut Report) {
    let target = match smtp_target(settings.mail.smtp_url.expose()) {
        Ok(t) => t,
        Err(e) => {
            r.fail("smtp", format!("{e} (config key `mail.smtp_url`)"));
            return;
        }
    };
    let what = format!("smtp {}:{}", target.host, target.port);
    let timeout = settings.mail.timeout;
    // Every step has the command timeout; the whole session gets a bound too, so a server
    // that trickles answers cannot hang `check`.
    let session = tokio::time::timeout(
        timeout * 4 + Duration::from_secs(1),
        smtp_session(&target, timeout),
    )
    .await;
    match session {
        Ok(Ok(steps)) => r.ok(&what, steps.join("; ")),
        Ok(Err((steps, e))) => {
            let done = if steps.is_empty() {
                String::new()
            } else {
                format!(" after {}", steps.join("; "))
            };
            r.fail(
                &what,
                format!("{e}{done} (config key `mail.smtp_url`{})", hint(&e)),
            );
        }
        Err(_) => r.fail(
            &what,
            format!(
                "no complete answer within {} s (config keys `mail.smtp_url`, \
                 `mail.timeout_secs`)",
                (timeout * 4).as_secs()
            ),
        ),
    }
}

/// What to look at for a failed session, beyond the URL.
fn hint(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("refused") {
        "; nothing listens there: is the server running, the port right?"
    } else if e.contains("auth") || e.contains("535") {
        "; check the user and password, or `mail.smtp_password_file`"
    } else if e.contains("tls") || e.contains("certificate") {
        "; check the TLS mode (?tls=required, smtps://) and the server's certificate"
    } else {
        ""
    }
}

/// Connect (EHLO), STARTTLS, AUTH, QUIT. Returns the steps done, or them and the error.
async fn smtp_session(
    t: &SmtpTarget,
    timeout: Duration,
) -> Result<Vec<String>, (Vec<String>, String)> {
    let mut steps = Vec::new();
    let tls_params = || TlsParameters::new(t.host.clone()).map_err(|e| e.to_string());
    let wrapper = match t.tls {
        TlsMode::Wrapper => Some(tls_params().map_err(|e| (Vec::new(), e))?),
        _ => None,
    };
    let mut conn = AsyncSmtpConnection::connect_tokio1(
        (t.host.as_str(), t.port),
        Some(timeout),
        &t.hello,
        wrapper,
        None,
    )
    .await
    .map_err(|e| (Vec::new(), format!("cannot open a session: {e}")))?;
    steps.push(format!(
        "connected{}, EHLO answered by {}",
        if t.tls == TlsMode::Wrapper {
            " with TLS"
        } else {
            ""
        },
        conn.server_info().name()
    ));
    match t.tls {
        TlsMode::Required | TlsMode::Opportunistic if conn.can_starttls() => {
            let params = tls_params().map_err(|e| (steps.clone(), e))?;
            conn.starttls(params, &t.hello)
                .await
                .map_err(|e| (steps.clone(), format!("STARTTLS failed: {e}")))?;
            steps.push("STARTTLS ok".into());
        }
        TlsMode::Required => {
            return Err((
                steps,
                "the server does not offer STARTTLS but `?tls=required` demands it".into(),
            ));
        }
        TlsMode::Opportunistic => steps.push("STARTTLS not offered (opportunistic: plain)".into()),
        TlsMode::None => steps.push("no TLS asked for".into()),
        TlsMode::Wrapper => {}
    }
    match &t.credentials {
        Some(c) => {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .await
                .map_err(|e| (steps.clone(), format!("AUTH failed: {e}")))?;
            steps.push("AUTH ok".into());
        }
        None => steps.push("no AUTH configured".into()),
    }
    conn.quit()
        .await
        .map_err(|e| (steps.clone(), format!("QUIT failed: {e}")))?;
    steps.push("QUIT; nothing sent".into());
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_like_lettre_reads_them() {
        let t = smtp_target("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("127.0.0.1", 2525, TlsMode::None)
        );
        assert!(t.credentials.is_none());
        let t = smtp_target("smtp://u%40x:p%25w@mail.example.org?tls=required").unwrap();
        assert_eq!((t.port, t.tls), (587, TlsMode::Required));
        assert!(t.credentials.is_some());
        let t = smtp_target("smtps://mail.example.org").unwrap();
        assert_eq!((t.port, t.tls), (465, TlsMode::Wrapper));
        assert!(smtp_target("smtp://mail.example.org?tls=maybe").is_err());
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("p%25w%40x"), "p%w@x");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("trailing%"), "trailing%");
    }
}
