//! `paperboy check`: is everything paperboy depends on there and answering? Sends nothing.
//!
//! For: an operator after installing or changing the configuration, and `ExecStartPre=` or CI.
//! It checks, in order: the configuration (already parsed by the time this runs: a bad value
//! stops `main` with exit 2 and the key's name), the database (reachable, migrations pending),
//! the secrets, the mail transport (one SMTP session opened by the pool that sends, so check
//! passes only if sending can connect: TCP, implicit TLS or STARTTLS as configured, EHLO, AUTH
//! when credentials are given, then QUIT — no MAIL FROM, so nothing is sent), the bounce
//! mailbox when one is configured (TLS, LOGIN, the folder; nothing is marked read), and each enabled
//! source (one listing request, nothing stored). Not for: monitoring a running daemon (that is
//! `/readyz` and `/metrics`).
//!
//! Each line starts with `ok`, `warn` or `FAIL`; a FAIL names the config key to fix. The exit
//! status is 1 when anything failed.

use paperboy::config::Settings;
use paperboy::jobs::{App, Clock, fetch};
use paperboy::mail::Mailer;
use paperboy::mail::pool::{SessionFailure, SessionStep, SmtpPool};
use paperboy::store::Store;
use std::process::ExitCode;

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
        Ok(mailer) => {
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
            match mailer.smtp_pool() {
                Some(pool) => check_smtp(pool, &settings, &mut r).await,
                None => check_file_dir(&settings, &mut r).await,
            }
        }
    }
    match paperboy::bounces::probe_mailbox(&settings.mail).await {
        None if settings.mail.bounce_address.is_some() => r.warn(
            "bounces",
            "`mail.bounce_address` tags each envelope sender, but no `mail.bounce_imap_url` \
             is read: bounces that arrive later change nothing",
        ),
        None => {}
        Some(Ok(state)) => r.ok("bounce mailbox", state),
        Some(Err(e)) => r.fail("bounce mailbox", e),
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
                        super::shared::source_status_line(&name, state.as_ref(), stale.as_deref());
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

/// One session through the pool that sends, closed at QUIT before any transaction.
async fn check_smtp(pool: &SmtpPool, settings: &Settings, r: &mut Report) {
    let server = &settings.mail.smtp_url;
    let what = format!("smtp {}:{}", server.host, server.port);
    match pool.test_connection().await {
        Ok(steps) => r.ok(&what, steps.join("; ")),
        Err(SessionFailure {
            step,
            done,
            failure,
        }) => {
            let after = if done.is_empty() {
                String::new()
            } else {
                format!(" ({})", done.join("; "))
            };
            // A failure that names the key to change already says all; the rest point at
            // the URL.
            let key = if failure.detail.contains("`mail.") {
                String::new()
            } else {
                format!(" (config key `mail.smtp_url`{})", hint(step))
            };
            r.fail(
                &what,
                format!("cannot open a session{after}: {}{key}", failure.detail),
            );
        }
    }
}

/// What to look at when a session stops at `step`, beyond the URL.
fn hint(step: SessionStep) -> &'static str {
    match step {
        SessionStep::Connect => {
            "; nothing listens there, or the host is unreachable: is the server running, the \
             host and port right?"
        }
        SessionStep::Ehlo => {
            "; is it an SMTP server, and does it speak TLS from the first byte (smtps://) or \
             not (smtp://)?"
        }
        // The failure itself says what to change (the certificate's issuer and
        // `mail.tls_ca_file`, the password's keys, ...).
        SessionStep::Tls | SessionStep::StartTls | SessionStep::Auth | SessionStep::Quit => "",
    }
}
