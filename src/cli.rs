//! What each command does: open what it needs, call the library, print the result.

use crate::{Command, DbCommand, ListFormat, PreviewFormat, SubscriberCommand, TableFormat};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use paperboy::config::without_password;
use paperboy::config::{LogFormat, Settings};
use paperboy::jobs::plan::{Candidates, PlanMode, due_date, plan, window_start};
use paperboy::jobs::send::{SendOptions, build_view, digest_paper, send_due};
use paperboy::jobs::{App, Clock, daemon, fetch};
use paperboy::mail::Mailer;
use paperboy::matching::check_interests;
use paperboy::model::{
    EmailAddress, Frequency, Interests, SendTime, SubscriberStatus, TimeZoneName,
};
use paperboy::shutdown::Shutdown;
use paperboy::store::{DeliveryStatus, NewSubscriber, Store};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

pub fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| {
            eprintln!(
                "warning: config key `log.level` = `{}` is not a level or filter; using info",
                settings.log.level
            );
            EnvFilter::new("info")
        });
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The filter sits behind a reload handle so that SIGHUP can change `log.level` in a
    // running daemon (see `paperboy::reload`).
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    paperboy::reload::set_log_reloader(Box::new(move |level| {
        let filter = EnvFilter::try_new(level)
            .map_err(|e| format!("not a level or tracing filter ({e})"))?;
        handle.reload(filter).map_err(|e| e.to_string())
    }));
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match settings.log.format {
        LogFormat::Json => registry.with(layer.json()).init(),
        LogFormat::Text => registry.with(layer).init(),
    }
}

pub(crate) async fn open_app(settings: Settings) -> anyhow::Result<App> {
    let clock = Clock::from_env().map_err(anyhow::Error::msg)?;
    let store =
        Store::open_with_and_migrate(settings.database.url.expose(), &(&settings.database).into())
            .await?;
    if settings.secret_key_generated {
        tracing::warn!(
            "no secret_key configured: links in emails are signed with a temporary key and stop \
             working when paperboy restarts; set secret_key before mailing real people"
        );
    }
    App::new(settings, store, clock).map_err(anyhow::Error::msg)
}

pub async fn dispatch(settings: Settings, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run => {
            // Before the database opens: a SIGTERM during migrations must still stop cleanly.
            let signals = daemon::Signals::install()?;
            let app = open_app(settings).await?;
            daemon::run(app, signals).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let store = Store::open(
                settings.database.url.expose(),
                settings.database.max_connections,
            )
            .await?;
            let pending = store.pending_migrations().await?;
            store.migrate().await?;
            if pending.is_empty() {
                println!("the database is up to date");
            } else {
                for m in pending {
                    println!("applied {m}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Fetch {
            source,
            date,
            from,
            to,
        } => {
            let shutdown = Shutdown::install()?;
            fetch_command(settings, source, date, from.zip(to), &shutdown).await
        }
        Command::Send { now, dry_run } => {
            let shutdown = Shutdown::install()?;
            send(settings, now, dry_run, &shutdown).await
        }
        Command::Preview { email, format } => preview(settings, &email, format).await,
        Command::Subscriber(cmd) => subscriber(settings, cmd).await,
        Command::Papers {
            since,
            source,
            format,
        } => papers_command(settings, since, source, format).await,
        Command::Deliveries {
            status,
            limit,
            format,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(DeliveryStatus::parse(s).with_context(|| {
                    format!("`{s}` is not a delivery status; use planned, sending, sent, retry, failed or empty")
                })?),
            };
            let app = open_app(settings).await?;
            let rows = app.store.list_deliveries(status, limit).await?;
            match format {
                TableFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                TableFormat::Table => {
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "{:>6} {:<10} {:<8} {:>8} {:>6}  {:<30} LAST ERROR",
                        "ID", "DATE", "STATUS", "ATTEMPTS", "PAPERS", "SUBSCRIBER"
                    )?;
                    for d in &rows {
                        writeln!(
                            out,
                            "{:>6} {:<10} {:<8} {:>8} {:>6}  {:<30} {}",
                            d.id,
                            d.digest_date,
                            d.status,
                            d.attempts,
                            d.papers,
                            shorten(&d.email, 30),
                            d.last_error.as_deref().unwrap_or("")
                        )?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check(settings).await,
        Command::Db(DbCommand::Copy { from, to, force }) => {
            let shutdown = Shutdown::install()?;
            db_copy(&settings, &from, &to, force, &shutdown).await
        }
        Command::Eval {
            docs,
            qrels,
            format,
        } => eval(&settings, &docs, &qrels, format),
    }
}

async fn send(
    settings: Settings,
    now: bool,
    dry_run: Option<std::path::PathBuf>,
    shutdown: &Shutdown,
) -> anyhow::Result<ExitCode> {
    let app = open_app(settings).await?;
    let mode = if now {
        PlanMode::Now
    } else {
        PlanMode::Scheduled
    };
    if let Some(dir) = dry_run {
        return dry_run_send(&app, mode, &dir, shutdown).await;
    }
    let planning = std::time::Instant::now();
    // Planning is not cut short: it commits a batch of deliveries at a time and is over in
    // seconds; a stop asked for meanwhile is honoured before the first message.
    let planned = plan(&app, mode).await?;
    let planning = planning.elapsed().as_secs_f64();
    if shutdown.requested() {
        println!(
            "planned {} digests; stopped on request before sending any. They stay due: run \
             `paperboy send` again to send them",
            planned.planned + planned.empty
        );
        return Ok(ExitCode::SUCCESS);
    }
    // An operator asking to send now means now: retries waiting for their backoff go too.
    app.store.make_retries_due(app.clock.now()).await?;
    let due = app.store.count_due(app.clock.now()).await?;
    let bar = progress(due, "sending digests");
    let tick = bar.clone();
    let options = SendOptions {
        on_progress: Some(Arc::new(move || tick.inc(1))),
        ..SendOptions::new(app.mailer.clone(), daemon::worker_id())
    };
    let started = std::time::Instant::now();
    // On SIGTERM or Ctrl-C no new message starts; the ones in flight finish and are recorded,
    // the rest of the claimed deliveries are handed back.
    let report = send_due(
        &app,
        &options,
        app.settings.mail.max_connections as usize,
        shutdown.receiver(),
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish();
    println!(
        "planned {} digests ({} with nothing new to send); sent {}, retrying {}, failed {}",
        planned.planned + planned.empty,
        planned.empty,
        report.sent,
        report.retrying,
        report.failed
    );
    if planned.due > 0 {
        println!(
            "planned {} subscribers in {planning:.2} s ({:.0} subscribers/s)",
            planned.due,
            planned.due as f64 / planning.max(1e-9)
        );
    }
    if report.sent > 0 {
        // The send phase alone (rendering included, planning not): what BENCHMARKS.md quotes.
        println!(
            "sent {} in {elapsed:.2} s ({:.0} messages/s)",
            report.sent,
            report.sent as f64 / elapsed.max(1e-9)
        );
    }
    if planned.bad_rows > 0 {
        eprintln!(
            "warning: {} subscriber rows could not be planned; see the log for which and why",
            planned.bad_rows
        );
    }
    if report.suspended > 0 {
        eprintln!(
            "{} addresses suspended after hard bounces (mail.max_hard_bounces)",
            report.suspended
        );
    }
    if shutdown.requested() {
        let left = app.store.count_due(app.clock.now()).await?;
        println!(
            "stopped on request: {} sent in this run, {left} digests not sent yet stay due; \
             run `paperboy send` again to send them",
            report.sent
        );
    }
    if report.circuit_open {
        eprintln!(
            "the SMTP server refused most messages, so sending stopped for everyone \
             (mail.circuit_pause_secs); {} digests were not tried and stay due",
            report.released
        );
    }
    if report.retrying > 0 || report.failed > 0 || report.circuit_open {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        if report.retrying > 0 {
            eprintln!(
                "{} digests could not be sent and stay due; `paperboy send` tries them again",
                report.retrying
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Plans in memory and writes what would be sent; records nothing.
async fn dry_run_send(
    app: &App,
    mode: PlanMode,
    dir: &std::path::Path,
    shutdown: &Shutdown,
) -> anyhow::Result<ExitCode> {
    let now = app.clock.now();
    let mailer = Mailer::to_dir(dir);
    let candidates = Candidates::load(app, now).await?;
    let mut written = 0;
    for row in app.store.active_subscribers().await? {
        if shutdown.requested() {
            println!("stopped on request; nothing was recorded, so run the same command again");
            break;
        }
        let Ok(subscriber) = row.parse() else {
            continue;
        };
        let Some(date) = due_date(&subscriber, now, mode) else {
            continue;
        };
        if app.store.has_delivery(subscriber.id, date).await? {
            continue;
        }
        let start = window_start(app, &subscriber, candidates.oldest).await?;
        let delivered = app.store.delivered_paper_ids(subscriber.id, start).await?;
        let picks = match candidates
            .rank_subscriber(app, &subscriber, start, &delivered)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("warning: subscriber {}: {e}", subscriber.id);
                continue;
            }
        };
        if picks.is_empty() {
            continue;
        }
        let papers = picks
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                digest_paper(
                    &candidates.papers[p.index].paper,
                    i as u32 + 1,
                    p.score,
                    p.explanation,
                )
            })
            .collect();
        let view = build_view(app, &subscriber, date, papers, None);
        let rendered = app.renderer.render(&view)?;
        let key = format!("dry-run.{date}.{}", subscriber.id);
        let message = paperboy::mail::build_digest_message(
            &app.settings.mail.from,
            &paperboy::mail::DigestMessage {
                to: subscriber.email.clone(),
                message_key: key.clone(),
                subject: rendered.subject,
                text: rendered.text,
                html: rendered.html,
                unsubscribe_url: view.unsubscribe_url.clone(),
                date: now,
            },
        )?;
        mailer.send(&message, &key).await?;
        written += 1;
    }
    println!(
        "wrote {written} digests to {} (nothing was sent or recorded)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn preview(
    settings: Settings,
    email: &str,
    format: PreviewFormat,
) -> anyhow::Result<ExitCode> {
    let email = EmailAddress::parse(email)?;
    let app = open_app(settings).await?;
    let row = app
        .store
        .subscriber_by_email(&email)
        .await?
        .with_context(|| {
            format!("{email} is not a subscriber; add it with `paperboy subscriber add`")
        })?;
    let subscriber = row.parse().map_err(anyhow::Error::msg)?;
    let now = app.clock.now();
    let date = now.with_timezone(&subscriber.timezone.0).date_naive();
    let candidates = Candidates::load(&app, now).await?;
    let start = window_start(&app, &subscriber, candidates.oldest).await?;
    let delivered = app.store.delivered_paper_ids(subscriber.id, start).await?;
    let picks = candidates
        .rank_subscriber(&app, &subscriber, start, &delivered)
        .await?;
    let papers: Vec<_> = picks
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            digest_paper(
                &candidates.papers[p.index].paper,
                i as u32 + 1,
                p.score,
                p.explanation,
            )
        })
        .collect();
    match format {
        PreviewFormat::Json => {
            let out = serde_json::json!({
                "email": subscriber.email,
                "date": date,
                "status": subscriber.status.as_str(),
                "interests": subscriber.interests,
                "papers": papers.iter().map(|p| serde_json::json!({
                    "rank": p.rank,
                    "id": p.id,
                    "title": p.title,
                    "score": p.score,
                    "reasons": p.reasons,
                    // The abstract excerpt with the matched words marked, as the email shows it.
                    "snippet": p.snippet,
                    "upvotes": p.upvotes,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        PreviewFormat::Text | PreviewFormat::Html => {
            let view = build_view(&app, &subscriber, date, papers, None);
            let rendered = app.renderer.render(&view)?;
            if matches!(format, PreviewFormat::Html) {
                println!("{}", rendered.html);
            } else {
                println!("Subject: {}\n\n{}", rendered.subject, rendered.text);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn subscriber(settings: Settings, cmd: SubscriberCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SubscriberCommand::Add {
            email,
            interests,
            confirmed,
            time,
            timezone,
            frequency,
            max_papers,
            authors,
            categories,
            category_mode,
            like,
        } => {
            // Parse everything before touching the database: a bad value writes nothing.
            let email = EmailAddress::parse(&email)?;
            let profile = profile_from_flags(authors, categories, &category_mode, like)?;
            let interests = Interests::parse(&interests)?;
            check_interests(interests.as_str())?;
            let send_time = match time {
                Some(t) => t.parse::<SendTime>()?,
                None => settings.schedule.send_time,
            };
            let timezone = match timezone {
                Some(t) => t.parse::<TimeZoneName>()?,
                None => settings.schedule.timezone,
            };
            let frequency: Frequency = frequency.parse()?;
            let max_papers = max_papers.unwrap_or(settings.digest.max_papers);
            if !(1..=100).contains(&max_papers) {
                bail!("--max-papers {max_papers} is out of range; use 1 to 100");
            }
            let app = open_app(settings).await?;
            let status = if confirmed {
                SubscriberStatus::Active
            } else {
                SubscriberStatus::Pending
            };
            let id = app
                .store
                .add_subscriber(
                    &NewSubscriber {
                        email: email.clone(),
                        status,
                        interests,
                        frequency,
                        send_time,
                        timezone,
                        max_papers,
                    },
                    app.clock.now(),
                )
                .await?;
            if !profile.is_empty() {
                app.store.set_profile(id, &profile, app.clock.now()).await?;
            }
            println!(
                "added subscriber {id}: {email} ({}; {frequency} at {send_time} {timezone})",
                status.as_str()
            );
            if !confirmed {
                println!(
                    "they get nothing until they confirm; use --confirmed if you have their consent"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriberCommand::List { format } => {
            let app = open_app(settings).await?;
            let rows = app.store.list_subscribers().await?;
            match format {
                ListFormat::Json => {
                    let list: Vec<_> = rows
                        .into_iter()
                        .map(|r| {
                            serde_json::json!({
                                "id": r.id,
                                "email": r.email,
                                "status": r.status,
                                "interests": r.interests,
                                "frequency": r.frequency,
                                "send_time": r.send_time,
                                "timezone": r.timezone,
                                "max_papers": r.max_papers,
                                "created_at": paperboy_time(r.created_at),
                                "confirmed_at": r.confirmed_at.map(paperboy_time),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                ListFormat::Csv => {
                    let mut w = csv::Writer::from_writer(std::io::stdout().lock());
                    w.write_record([
                        "email",
                        "status",
                        "interests",
                        "frequency",
                        "send_time",
                        "timezone",
                        "max_papers",
                    ])?;
                    for r in rows {
                        w.write_record([
                            r.email,
                            r.status,
                            r.interests,
                            r.frequency,
                            r.send_time,
                            r.timezone,
                            r.max_papers.to_string(),
                        ])?;
                    }
                    w.flush()?;
                }
                ListFormat::Table => {
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "{:>5}  {:<32} {:<12} {:<9} {:<5} {:<20} INTERESTS",
                        "ID", "EMAIL", "STATUS", "FREQUENCY", "TIME", "TIME ZONE"
                    )?;
                    for r in &rows {
                        writeln!(
                            out,
                            "{:>5}  {:<32} {:<12} {:<9} {:<5} {:<20} {}",
                            r.id,
                            shorten(&r.email, 32),
                            r.status,
                            r.frequency,
                            r.send_time,
                            r.timezone,
                            shorten(&r.interests, 60)
                        )?;
                    }
                    writeln!(out, "{} subscribers", rows.len())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriberCommand::Import {
            file,
            confirmed,
            check,
        } => {
            let shutdown = Shutdown::install()?;
            crate::subscriber_csv::import(settings, &file, confirmed, check, &shutdown).await
        }
        SubscriberCommand::Export { output } => {
            crate::subscriber_csv::export(settings, output.as_deref()).await
        }
        SubscriberCommand::RevokeLinks { email, no_mail } => {
            revoke_links_command(settings, &email, !no_mail).await
        }
        SubscriberCommand::Remove { email } => {
            let email = EmailAddress::parse(&email)?;
            let app = open_app(settings).await?;
            if app.store.remove_subscriber(&email).await? {
                println!("removed {email} and their history");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: {email} is not a subscriber");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// `paperboy subscriber revoke-links`: bump, mail, say what was done. Exit 1 when the address
/// is unknown or the new link could not be mailed (the links are revoked all the same).
async fn revoke_links_command(
    settings: Settings,
    email: &str,
    mail: bool,
) -> anyhow::Result<ExitCode> {
    use paperboy::jobs::revoke::{NewLink, revoke_links};
    let email = EmailAddress::parse(email)?;
    let app = open_app(settings).await?;
    let Some(row) = app.store.subscriber_by_email(&email).await? else {
        eprintln!("error: {email} is not a subscriber");
        return Ok(ExitCode::FAILURE);
    };
    let subscriber = row.parse().map_err(anyhow::Error::msg)?;
    let Some(done) = revoke_links(&app, &subscriber, mail).await? else {
        eprintln!(
            "error: the links of {email} were revoked by someone else at this very moment; \
             run the command again to revoke them once more"
        );
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "revoked the manage, feedback and digest links of {email} (token version {} -> {}); \
         unsubscribe links keep working",
        done.old_version, done.new_version
    );
    let ask = format!(
        "{}/manage",
        app.settings.web.base_url.as_str().trim_end_matches('/')
    );
    match done.new_link {
        NewLink::Mailed => {
            println!("mailed the new manage link to {email}");
            Ok(ExitCode::SUCCESS)
        }
        NewLink::NotMailed => {
            println!(
                "mailed nothing (--no-mail): their next digest carries the new links, or they \
                 can ask for one at {ask}"
            );
            Ok(ExitCode::SUCCESS)
        }
        NewLink::NeverConfirmed => {
            println!("mailed nothing: {email} never confirmed, so it only gets its confirmation");
            Ok(ExitCode::SUCCESS)
        }
        NewLink::Failed(why) => {
            eprintln!(
                "error: {why}; the old links stay revoked. Check the [mail] settings \
                 (`paperboy check`) and run the command again, or let them ask at {ask}"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `paperboy eval`: the matcher and the baseline on one labelled set, with the configured
/// floor (`matching.min_score`) and digest size (`digest.max_papers`).
fn eval(
    settings: &Settings,
    docs: &std::path::Path,
    qrels: &std::path::Path,
    format: TableFormat,
) -> anyhow::Result<ExitCode> {
    let documents = paperboy::eval::load_docs(docs)?;
    let judgements = paperboy::eval::load_qrels(qrels)?;
    let started = std::time::Instant::now();
    let report = paperboy::eval::evaluate(
        &documents,
        &judgements,
        settings.matching.min_score,
        settings.digest.max_papers as usize,
    )?;
    match format {
        TableFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        TableFormat::Table => {
            println!(
                "{} documents, {} queries; sent = above matching.min_score {} and at most {} papers",
                report.documents, report.queries, report.min_score, report.max_papers
            );
            println!("{:<28} {:>9} {:>9}", "", "paperboy", "baseline");
            type Row = (&'static str, fn(&paperboy::eval::Metrics) -> f64);
            let rows: [Row; 7] = [
                ("nDCG@10", |m| m.ndcg_at_10),
                ("precision@10", |m| m.precision_at_10),
                ("recall@50", |m| m.recall_at_50),
                ("F1 of the set sent", |m| m.sent_f1),
                ("precision of the set sent", |m| m.sent_precision),
                ("recall of the set sent", |m| m.sent_recall),
                ("papers sent per query", |m| m.sent_mean),
            ];
            for (name, get) in rows {
                println!(
                    "{name:<28} {:>9.4} {:>9.4}",
                    get(&report.ours),
                    get(&report.baseline)
                );
            }
            println!(
                "{:<28} {:>9} {:>9}",
                "queries sending nothing", report.ours.empty_digests, report.baseline.empty_digests
            );
            if !report.unparsed.is_empty() {
                println!("queries paperboy could not parse: {:?}", report.unparsed);
            }
            println!("(baseline: BM25 over title + abstract, no stemming, no phrases, words OR'd)");
            println!("took {:.2} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The profile flags of `subscriber add`, checked by `model::Profile::parse`; each problem is
/// reported with the flag that carried it.
fn profile_from_flags(
    authors: Vec<String>,
    categories: Vec<String>,
    category_mode: &str,
    like: Vec<String>,
) -> anyhow::Result<paperboy::store::ProfileRow> {
    paperboy::model::Profile::parse(authors, categories, category_mode, like).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| {
                let flag = match e.field() {
                    "authors" => "--authors",
                    "categories" => "--categories",
                    "category_mode" => "--category-mode",
                    _ => "--like",
                };
                format!("{flag}: {e}")
            })
            .collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })
}

async fn check(settings: Settings) -> anyhow::Result<ExitCode> {
    crate::check::run(settings).await
}

/// `paperboy fetch`: the scheduled fetch (catch-up + current listings), one `--date`, or a
/// `--from/--to` backfill with a progress bar.
async fn fetch_command(
    settings: Settings,
    source: Option<String>,
    date: Option<chrono::NaiveDate>,
    range: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    shutdown: &Shutdown,
) -> anyhow::Result<ExitCode> {
    let app = open_app(settings).await?;
    let sources = fetch::sources(&app, source.as_deref())?;
    // Set when a stop was asked for: what to tell the operator about resuming.
    let mut stopped: Option<String> = None;
    let reports = match (date, range) {
        (_, Some((from, to))) => {
            if from > to {
                bail!("--from {from} is after --to {to}; give the earlier day first");
            }
            let days: Vec<chrono::NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
            let (past, current): (Vec<_>, Vec<_>) =
                sources.into_iter().partition(|s| s.can_fetch_past_days());
            for s in &current {
                eprintln!(
                    "note: source {} lists only what is current, so a backfill leaves it out",
                    s.name()
                );
            }
            let bar = progress((days.len() * past.len()) as u64, "backfilling days");
            let mut reports = Vec::new();
            // A day of one source is the unit: a stop lets the one under way finish (it is
            // stored and its checkpoint moved) and starts no other.
            'days: for day in &days {
                for s in &past {
                    if shutdown.requested() {
                        stopped = Some(format!(
                            "stopped on request before {day} ({} of {} days done); what was \
                             fetched is stored. Run the same command again, or with --from {day} \
                             to skip the days done",
                            day.signed_duration_since(from).num_days(),
                            days.len()
                        ));
                        break 'days;
                    }
                    tracing::debug!(source = s.name(), day = %day, "backfilling");
                    reports.extend(fetch::fetch_day(&app, std::slice::from_ref(s), *day).await);
                    bar.inc(1);
                }
            }
            bar.finish();
            reports
        }
        // One day or one scheduled run: short, so a stop cuts it off rather than waiting
        // between units. Each source's papers are written in one transaction, so what is
        // stored is whole; a fetch run again is harmless (papers are upserted).
        (Some(date), None) => tokio::select! {
            r = fetch::fetch_day(&app, &sources, date) => r,
            _ = shutdown.wait() => {
                stopped = Some("stopped on request; run the same command again".into());
                Vec::new()
            }
        },
        (None, None) => {
            let today = app.clock.now().date_naive();
            tokio::select! {
                r = fetch::fetch_scheduled(&app, &sources, today) => r,
                _ = shutdown.wait() => {
                    stopped = Some("stopped on request; what was fetched before the stop is \
                                    stored. Run the same command again".into());
                    Vec::new()
                }
            }
        }
    };
    let mut failed = 0;
    for r in &reports {
        match &r.result {
            Ok(o) if o.not_modified => println!(
                "{} {}: not modified since the last fetch (HTTP 304)",
                r.source, r.date
            ),
            Ok(o) => {
                println!(
                    "{} {}: {} papers ({} new, {} updated, {} unchanged{}), {} skipped",
                    r.source,
                    r.date,
                    o.fetched,
                    o.counts.new,
                    o.counts.updated,
                    o.counts.unchanged,
                    if o.counts.ignored > 0 {
                        format!(
                            ", {} replacements of unknown papers ignored",
                            o.counts.ignored
                        )
                    } else {
                        String::new()
                    },
                    o.skipped.len()
                );
                for s in &o.skipped {
                    println!("  skipped {s}");
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: source {} failed for {}: {e}", r.source, r.date);
            }
        }
        if let Some(stale) = &r.stale {
            eprintln!("error: {stale}");
        }
    }
    if let Some(stopped) = stopped {
        println!("{stopped}");
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `paperboy papers`: what was fetched, with each paper's sources, and how each source is doing.
async fn papers_command(
    settings: Settings,
    since: Option<chrono::NaiveDate>,
    source: Option<String>,
    format: TableFormat,
) -> anyhow::Result<ExitCode> {
    let app = open_app(settings).await?;
    let since = since
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .unwrap_or_default();
    let papers = app.store.papers_listed(since, source.as_deref()).await?;
    let ids: Vec<String> = papers.iter().map(|p| p.paper.id.to_string()).collect();
    let mut seen_by = app.store.paper_sources(&ids).await?;
    // Every configured source (enabled or not) that has a state, plus the enabled ones.
    let mut configured = fetch::sources(&app, None).unwrap_or_default();
    let states = app.store.source_statuses().await?;
    for st in &states {
        if !configured.iter().any(|s| s.name() == st.source)
            && let Ok(mut more) = fetch::sources(&app, Some(&st.source))
        {
            configured.append(&mut more);
        }
    }
    let overview = fetch::source_overview(&app, &configured).await;
    let status_lines: Vec<String> = overview
        .iter()
        .map(|(name, state, stale)| source_status_line(name, state.as_ref(), stale.as_deref()))
        .collect();
    match format {
        TableFormat::Json => {
            let list: Vec<serde_json::Value> = papers
                .iter()
                .map(|p| {
                    let mut v = serde_json::to_value(p).unwrap_or_default();
                    v["seen_by"] = serde_json::to_value(
                        seen_by.remove(p.paper.id.as_str()).unwrap_or_default(),
                    )
                    .unwrap_or_default();
                    v
                })
                .collect();
            // stdout stays the array scripts read; the source status goes to stderr.
            println!("{}", serde_json::to_string_pretty(&list)?);
            for line in &status_lines {
                eprintln!("{line}");
            }
        }
        TableFormat::Table => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<18} {:>7}  {:<16}  {:<22}  TITLE",
                "ID", "UPVOTES", "FIRST SEEN", "SOURCES"
            )?;
            for p in &papers {
                let sources = match seen_by.get(p.paper.id.as_str()) {
                    Some(rows) if !rows.is_empty() => rows
                        .iter()
                        .map(|r| match &r.announce_type {
                            Some(t) => format!("{}({t})", r.source),
                            None => r.source.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => p.sources.join(","),
                };
                writeln!(
                    out,
                    "{:<18} {:>7}  {:<16}  {:<22}  {}",
                    p.paper.id,
                    p.paper.upvotes.map(|u| u.to_string()).unwrap_or_default(),
                    p.first_seen_at.format("%Y-%m-%d %H:%M"),
                    sources,
                    shorten(&p.paper.title, 80)
                )?;
            }
            writeln!(out, "{} papers", papers.len())?;
            writeln!(out)?;
            writeln!(out, "SOURCES")?;
            for line in &status_lines {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line on a source's state: when it last succeeded, its checkpoint, its last error, stale.
pub fn source_status_line(
    name: &str,
    state: Option<&paperboy::store::SourceStatus>,
    stale: Option<&str>,
) -> String {
    let Some(st) = state else {
        return format!("{name}: never fetched");
    };
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into())
    };
    let mut line = format!(
        "{name}: last success {}, checkpoint {}, {} papers and {} skipped in the last run",
        at(st.last_success_at),
        st.checkpoint
            .map(|d| d.to_string())
            .unwrap_or_else(|| "none".into()),
        st.last_fetched.unwrap_or(0),
        st.last_skipped.unwrap_or(0),
    );
    if let Some(err) = &st.last_error
        && st.last_error_at > st.last_success_at
    {
        line.push_str(&format!("; FAILING since {}: {err}", at(st.last_error_at)));
    }
    if let Some(stale) = stale {
        line.push_str(&format!("; STALE: {stale}"));
    }
    line
}

/// Progress of a long command-line job: on a terminal, an indicatif bar with the rate and the
/// time left; otherwise (a log file, systemd, a pipe) a quiet `tracing` line every 5 seconds or
/// every tenth of the way, and one at the end. Cheap to clone and to `inc` from any thread.
///
/// Every long command uses it: `cli::progress(len, "sending digests")`, then `inc(1)` per item
/// and `finish()` at the end.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<ProgressInner>,
}

struct ProgressInner {
    what: &'static str,
    /// `Some` on a terminal.
    bar: Option<ProgressBar>,
    len: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    /// When the last log line was written and at which tenth (log mode only).
    last_log: std::sync::Mutex<(std::time::Instant, u64)>,
}

/// How often, at most, the log mode writes a line when tenths come slowly.
const PROGRESS_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A progress report for `len` items of `what` ("sending digests", "importing subscribers").
/// `paperboy db copy`: both databases are opened and migrated to this binary's schema; a
/// target holding any row is refused unless `force`, which empties it; then every table is
/// copied (`Store::copy_into`) under one progress bar.
async fn db_copy(
    settings: &Settings,
    from: &str,
    to: &str,
    force: bool,
    shutdown: &Shutdown,
) -> anyhow::Result<ExitCode> {
    let check_url = |flag: &str, url: &str| {
        if url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:")
        {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{flag} `{}` is not a database URL: use sqlite://PATH or postgres://user@host/db",
                without_password(url)
            ))
        }
    };
    check_url("--from", from)?;
    check_url("--to", to)?;
    if from == to {
        bail!(
            "--from and --to name the same database `{}`",
            without_password(from)
        );
    }
    let pool = (&settings.database).into();
    let source = Store::open_with_and_migrate(from, &pool)
        .await
        .with_context(|| format!("cannot open --from `{}`", without_password(from)))?;
    let target = Store::open_with_and_migrate(to, &pool)
        .await
        .with_context(|| format!("cannot open --to `{}`", without_password(to)))?;
    let held: Vec<String> = target
        .table_counts()
        .await?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t} ({n} rows)"))
        .collect();
    if !held.is_empty() {
        if !force {
            bail!(
                "the target --to `{}` is not empty: {}; refusing to copy into it. \
                 Pass --force to delete those rows first",
                without_password(to),
                held.join(", ")
            );
        }
        tracing::warn!(tables = %held.join(", "), "--force: emptying the target first");
        target.empty_copied_tables().await?;
    }
    let total: u64 = source.table_counts().await?.iter().map(|(_, n)| n).sum();
    let bar = progress(total, "rows copied");
    let report = source
        .copy_into(&target, &|n| bar.inc(n), &shutdown.receiver())
        .await?;
    bar.finish();
    for (table, n) in &report.tables {
        println!("{table:<20} {n:>10}");
    }
    if report.stopped {
        println!(
            "stopped on request after {} rows: the target holds a partial copy (whole batches, \
             parents before children); the source is unchanged. Run the same command again \
             with --force to empty the target and copy everything",
            report.tables.iter().map(|(_, n)| n).sum::<u64>()
        );
        source.close().await;
        target.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "copied {} rows from {} to {}",
        report.tables.iter().map(|(_, n)| n).sum::<u64>(),
        source.backend_name(),
        target.backend_name()
    );
    source.close().await;
    target.close().await;
    Ok(ExitCode::SUCCESS)
}

pub fn progress(len: u64, what: &'static str) -> Progress {
    use std::io::IsTerminal;
    let on_terminal = std::io::stderr().is_terminal();
    progress_to(len, what, on_terminal)
}

fn progress_to(len: u64, what: &'static str, on_terminal: bool) -> Progress {
    let bar = on_terminal.then(|| {
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what);
        bar
    });
    let now = std::time::Instant::now();
    Progress {
        inner: Arc::new(ProgressInner {
            what,
            bar,
            len: len.into(),
            done: 0.into(),
            started: now,
            last_log: std::sync::Mutex::new((now, 0)),
        }),
    }
}

impl Progress {
    /// `n` more items done.
    pub fn inc(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let done = self.inner.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.inner.bar {
            bar.inc(n);
            return;
        }
        let len = self.inner.len.load(Ordering::Relaxed);
        let tenth = (done * 10).checked_div(len).unwrap_or(0);
        let Ok(mut last) = self.inner.last_log.try_lock() else {
            // Another thread is writing the line right now; the next call will catch up.
            return;
        };
        if tenth > last.1 || last.0.elapsed() >= PROGRESS_LOG_EVERY {
            *last = (std::time::Instant::now(), tenth);
            drop(last);
            self.log_line(done, len, false);
        }
    }

    /// The job is over: clears the bar, or logs the final count and rate.
    pub fn finish(&self) {
        use std::sync::atomic::Ordering;
        if let Some(bar) = &self.inner.bar {
            bar.finish_and_clear();
            return;
        }
        let done = self.inner.done.load(Ordering::Relaxed);
        self.log_line(done, self.inner.len.load(Ordering::Relaxed), true);
    }

    fn log_line(&self, done: u64, len: u64, finished: bool) {
        let elapsed = self.inner.started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-9);
        let what = self.inner.what;
        if finished {
            tracing::info!(
                what,
                done,
                total = len,
                rate = format!("{rate:.0}/s"),
                elapsed = format!("{elapsed:.1}s"),
                "finished"
            );
        } else {
            let left = if rate > 0.0 {
                len.saturating_sub(done) as f64 / rate
            } else {
                f64::NAN
            };
            tracing::info!(
                what,
                done,
                total = len,
                rate = format!("{rate:.0}/s"),
                eta = format!("{left:.0}s"),
                "progress"
            );
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn paperboy_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}
