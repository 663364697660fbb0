//! `paperboy send`: plan and send what is due, or with `--dry-run` write it as .eml files.

use paperboy::config::Settings;
use paperboy::delivery::{SendOptions, send_due, worker_id};
use paperboy::digest::DigestView;
use paperboy::jobs::App;
use paperboy::jobs::plan::{Candidates, PlanMode, PlanReport, RANK_SLICE, due_page, plan};
use paperboy::mail::Mailer;
use paperboy::shutdown::Shutdown;
use std::process::ExitCode;
use std::sync::Arc;

use super::progress::progress;
use super::shared::open_app;

pub async fn run(
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
        ..SendOptions::new(app.mailer.clone(), worker_id())
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
    // The planner's own reading and ranking, page by page; nothing is recorded.
    let (mut after, mut report) = (0, PlanReport::default());
    'pages: while let Some((last, page)) =
        due_page(app, after, now, mode, candidates.oldest, &mut report).await?
    {
        after = last;
        // A slice at a time, as the planner ranks: the slice's clauses are scored together.
        let ranked: Vec<_> = page
            .chunks(RANK_SLICE)
            .flat_map(|slice| {
                let recipients: Vec<_> = slice.iter().map(|d| &d.recipient).collect();
                candidates.digests(&recipients)
            })
            .collect();
        for (due, picks) in page.iter().zip(ranked) {
            if shutdown.requested() {
                println!("stopped on request; nothing was recorded, so run the same command again");
                break 'pages;
            }
            let (subscriber, date) = (&due.subscriber, due.date);
            let picks = match picks {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("warning: subscriber {}: {e}", subscriber.id);
                    continue;
                }
            };
            if picks.is_empty() {
                continue;
            }
            let papers = candidates.digest_papers(picks);
            let view = DigestView::new(
                &app.signer,
                &app.settings.web.base_url,
                subscriber,
                date,
                papers,
                None,
            );
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
                    // No delivery exists to tag: the From address, as without bounce_address.
                    envelope_from: None,
                },
            )?;
            mailer.send(&message, &key).await?;
            written += 1;
        }
    }
    println!(
        "wrote {written} digests to {} (nothing was sent or recorded)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
