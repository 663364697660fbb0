//! `paperboy papers`: the papers fetched, with their sources, and how each source is doing.

use paperboy::config::Settings;
use paperboy::jobs::fetch;
use std::io::Write;
use std::process::ExitCode;

use super::shared::{TableFormat, open_app, shorten, source_status_line};

/// `paperboy papers`: what was fetched, with each paper's sources, and how each source is doing.
pub async fn run(
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
