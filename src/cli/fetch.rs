//! `paperboy fetch`: fetch the sources now, one day, or a range of days.

use anyhow::bail;
use paperboy::config::Settings;
use paperboy::jobs::fetch;
use paperboy::shutdown::Shutdown;
use std::process::ExitCode;

use super::progress::{EmbedBars, progress};
use super::shared::open_app;
use paperboy::jobs::embed;

/// `paperboy fetch`: the scheduled fetch (catch-up + current listings), one `--date`, or a
/// `--from/--to` backfill with a progress bar.
pub async fn run(
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
    } else {
        // The new papers' vectors, now: planning reads them (a stop leaves them to the next
        // fetch or `paperboy db embed`).
        let bars = EmbedBars::default();
        let embedded = tokio::select! {
            r = async {
                let n = embed::embed_papers(&app, &bars).await?;
                embed::embed_sentences(&app, &bars).await?;
                Ok::<_, embed::EmbedJobError>(n)
            } => Some(r),
            _ = shutdown.wait() => None,
        };
        drop(bars);
        match embedded {
            Some(Ok(0)) | None => {}
            Some(Ok(n)) => println!("embedded {n} new papers"),
            Some(Err(e)) => {
                failed += 1;
                eprintln!(
                    "error: could not embed the new papers ({e}); they are matched by words \
                     alone until `paperboy db embed` succeeds"
                );
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
