//! The fetch job: ask each enabled source for its papers and upsert them into one row per paper.
//!
//! A scheduled run ([`fetch_scheduled`]) catches each source up from its checkpoint in
//! `source_state` (the days it missed while paperboy was down, once each: Hugging Face by date,
//! arXiv through its API), then fetches its current listing with a conditional GET, then asks
//! the arXiv API for the categories, DOI, comment and journal reference of new papers other
//! sources know only by id. [`fetch_day`] fetches one given day (`paperboy fetch --date`, and
//! day by day `--from/--to`).
//!
//! Sources fail alone: an error is recorded in `source_state` and logged, and the next source
//! runs. A source that should have produced papers and has produced none for
//! `sources.stale_after_days` of its announcement days is logged as an error. The job holds no
//! SQL (`store`) and no HTTP details (`sources`).

use super::App;
use crate::config::ArxivPastDays;
use crate::sources::arxiv_api::{ArxivApi, shared_spacing};
use crate::sources::arxiv_oai::ArxivOai;
use crate::sources::arxiv_rss::{API_SOURCE, ArxivSource};
use crate::sources::feed::FeedSource;
use crate::sources::hf::HfSource;
use crate::sources::http::{HttpClient, HttpSettings, Validators, user_agent};
use crate::sources::{Source, SourceBatch, SourceError};
use crate::store::{SourceListing, SourceRun, SourceStatus, UpsertCounts};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use std::collections::HashMap;
use tracing::{Instrument, error, info, info_span, warn};

/// How one source's fetch of one day (or of its current listing) went.
#[derive(Debug)]
pub struct SourceReport {
    pub source: String,
    pub date: NaiveDate,
    pub result: Result<SourceOutcome, String>,
    /// Set when the source is stale (see `sources.stale_after_days`): what the operator reads.
    pub stale: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceOutcome {
    pub fetched: usize,
    pub counts: UpsertCounts,
    /// Items the source listed that could not be read, with where and why.
    pub skipped: Vec<String>,
    /// The listing had not changed since the last fetch (HTTP 304).
    pub not_modified: bool,
    /// What the papers were recorded under (`arxiv-api` for the arXiv source's API answers).
    pub recorded_as: String,
}

/// The names of every source the configuration knows, enabled or not.
pub fn source_names(app: &App) -> Vec<String> {
    let live = app.live.get();
    let mut names = vec!["hf".to_string(), "arxiv".to_string()];
    names.extend(live.sources.feeds.iter().map(|f| f.name.clone()));
    names
}

fn http_client(app: &App) -> Result<HttpClient, SourceError> {
    let live = app.live.get();
    let s = &live.sources;
    HttpClient::new(&HttpSettings {
        timeout: s.timeout,
        retries: s.retries,
        backoff: s.backoff,
        user_agent: user_agent(&s.contact),
    })
}

/// The arXiv API client every part of the process shares (one request spacing, process-wide).
pub fn arxiv_api(app: &App) -> Result<ArxivApi, SourceError> {
    let live = app.live.get();
    let a = &live.sources.arxiv;
    Ok(ArxivApi::new(
        a.api_base_url.clone(),
        http_client(app)?,
        shared_spacing(a.api_interval),
        a.api_page_size,
    ))
}

/// The enabled sources, or only the one named (enabled or not: `--source` is explicit).
pub fn sources(app: &App, only: Option<&str>) -> Result<Vec<Box<dyn Source>>, SourceError> {
    // The live copy: a SIGHUP may have changed the sources since the daemon started.
    let live = app.live.get();
    let s = &live.sources;
    let client = http_client(app)?;
    let mut out: Vec<Box<dyn Source>> = Vec::new();
    let wanted = |name: &str, enabled: bool| match only {
        Some(o) => o == name,
        None => enabled,
    };
    if wanted("hf", s.hf.enabled) {
        out.push(Box::new(HfSource::new(
            s.hf.base_url.clone(),
            client.clone(),
        )));
    }
    if wanted("arxiv", s.arxiv.enabled) {
        if s.arxiv.categories.is_empty() {
            return Err(SourceError::Config(
                "the arXiv source needs at least one category in `sources.arxiv.categories`".into(),
            ));
        }
        let mut arxiv = ArxivSource::new(
            s.arxiv.rss_base_url.clone(),
            s.arxiv.categories.clone(),
            s.arxiv.cross_lists,
            client.clone(),
            arxiv_api(app)?,
        );
        if s.arxiv.past_days == ArxivPastDays::Oai {
            arxiv = arxiv.with_oai(ArxivOai::new(
                s.arxiv.oai_base_url.clone(),
                client.clone(),
                shared_spacing(s.arxiv.api_interval),
            ));
        }
        out.push(Box::new(arxiv));
    }
    for feed in &s.feeds {
        if wanted(&feed.name, true) {
            out.push(Box::new(FeedSource::new(
                feed.name.clone(),
                feed.url.clone(),
                client.clone(),
            )));
        }
    }
    if let Some(name) = only
        && out.is_empty()
    {
        return Err(SourceError::Config(format!(
            "there is no source named `{name}`; the sources are: {}",
            source_names(app).join(", ")
        )));
    }
    Ok(out)
}

/// Fetches `date` from each source in turn (a source that lists only what is current lists
/// that). A failing source is reported and recorded in `source_state`; it never stops the
/// others.
pub async fn fetch_day(
    app: &App,
    sources: &[Box<dyn Source>],
    date: NaiveDate,
) -> Vec<SourceReport> {
    let mut reports = Vec::new();
    for source in sources {
        let span = info_span!("fetch", source = source.name(), %date);
        let report = run_one(app, source.as_ref(), date, Mode::Day)
            .instrument(span)
            .await;
        reports.push(report);
    }
    reports
}

/// The scheduled fetch of `today`: per source, the missed days since its checkpoint (at most
/// `sources.catch_up_days`), then its current listing; then arXiv enrichment of papers known
/// only by id. Every source runs whatever the others did.
pub async fn fetch_scheduled(
    app: &App,
    sources: &[Box<dyn Source>],
    today: NaiveDate,
) -> Vec<SourceReport> {
    let catch_up_days = app.live.get().sources.catch_up_days;
    let mut reports = Vec::new();
    for source in sources {
        let name = source.name().to_string();
        let state = app.store.source_status(&name).await.unwrap_or_else(|e| {
            warn!(source = %name, error = %e, "could not read the source's state; fetching today only");
            None
        });
        for date in days_to_catch_up(
            source.as_ref(),
            state.as_ref().and_then(|s| s.checkpoint),
            today,
            catch_up_days,
        ) {
            let span = info_span!("fetch", source = %name, %date, catch_up = true);
            reports.push(
                run_one(app, source.as_ref(), date, Mode::Day)
                    .instrument(span)
                    .await,
            );
        }
        let validators = state
            .map(|s| Validators {
                etag: s.etag,
                last_modified: s.last_modified,
            })
            .unwrap_or_default();
        let span = info_span!("fetch", source = %name, date = %today);
        let mut report = run_one(app, source.as_ref(), today, Mode::Latest(validators))
            .instrument(span.clone())
            .await;
        report.stale = check_stale(app, source.as_ref(), today)
            .instrument(span)
            .await;
        reports.push(report);
    }
    if sources.iter().any(|s| s.name() == "arxiv") && app.live.get().sources.arxiv.enabled {
        let span = info_span!("fetch", source = API_SOURCE, date = %today, enrich = true);
        if let Some(r) = enrich_from_arxiv(app, today).instrument(span).await {
            reports.push(r);
        }
    }
    reports
}

/// The past days a scheduled run fetches before the current listing: from the checkpoint day
/// (its list may have grown after it was fetched) up to yesterday; yesterday alone on a first
/// run; at most `max_days`; none for a source that cannot list past days.
pub fn days_to_catch_up(
    source: &dyn Source,
    checkpoint: Option<NaiveDate>,
    today: NaiveDate,
    max_days: u32,
) -> Vec<NaiveDate> {
    if !source.can_fetch_past_days() || max_days == 0 {
        return Vec::new();
    }
    let yesterday = today - chrono::Duration::days(1);
    let earliest = today - chrono::Duration::days(max_days as i64);
    let from = checkpoint.unwrap_or(yesterday).max(earliest);
    from.iter_days().take_while(|d| *d < today).collect()
}

enum Mode {
    /// `fetch_day(date)`: one given day.
    Day,
    /// The current listing, conditionally.
    Latest(Validators),
}

async fn run_one(app: &App, source: &dyn Source, date: NaiveDate, mode: Mode) -> SourceReport {
    let result = match mode {
        Mode::Day if source.can_fetch_past_days() => source.fetch_day(date).await,
        Mode::Day => source.fetch_latest(date, Validators::default()).await,
        Mode::Latest(v) => source.fetch_latest(date, v).await,
    };
    let now = app.clock.now();
    let name = source.name();
    let result = match result {
        Ok(batch) => store_batch(app, name, date, batch, now).await,
        Err(e) => Err(e.to_string()),
    };
    match &result {
        Ok(outcome) => {
            app.metrics.source_fetched(name, outcome.fetched);
            info!(
                fetched = outcome.fetched,
                new = outcome.counts.new,
                updated = outcome.counts.updated,
                ignored = outcome.counts.ignored,
                skipped = outcome.skipped.len(),
                not_modified = outcome.not_modified,
                "source fetched"
            );
            for s in &outcome.skipped {
                warn!(item = %s, "skipped an item the source sent");
            }
        }
        Err(e) => {
            app.metrics.source_failed(name);
            warn!(error = %e, "source failed");
            if let Err(e2) = app.store.record_source_failure(name, e, now).await {
                warn!(error = %e2, "could not record the source's state");
            }
        }
    }
    SourceReport {
        source: name.to_string(),
        date,
        result,
        stale: None,
    }
}

async fn store_batch(
    app: &App,
    name: &str,
    date: NaiveDate,
    batch: SourceBatch,
    now: DateTime<Utc>,
) -> Result<SourceOutcome, String> {
    let recorded_as = batch.via.clone().unwrap_or_else(|| name.to_string());
    let counts = app
        .store
        .upsert_listing(
            SourceListing {
                source: &recorded_as,
                papers: &batch.papers,
                updates: &batch.updates,
                announce_types: &batch.announce_types,
            },
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
    let fetched = batch.papers.len() + batch.updates.len();
    // A 304 means the listing still holds what we stored: it counts as having papers if the
    // last full answer had them, so an unchanged listing never looks stale by itself.
    let run = SourceRun {
        day: Some(date),
        fetched,
        skipped: batch.skipped.len(),
        etag: batch.validators.etag.as_deref(),
        last_modified: batch.validators.last_modified.as_deref(),
    };
    if batch.not_modified {
        let previous = app
            .store
            .source_status(name)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.last_fetched)
            .unwrap_or(0);
        let run = SourceRun {
            fetched: previous.max(0) as usize,
            ..run
        };
        app.store
            .record_source_run(name, &run, now)
            .await
            .map_err(|e| e.to_string())?;
    } else {
        app.store
            .record_source_run(name, &run, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(SourceOutcome {
        fetched,
        counts,
        skipped: batch
            .skipped
            .iter()
            .map(|s| format!("page {} item {}: {}", s.page, s.position, s.reason))
            .collect(),
        not_modified: batch.not_modified,
        recorded_as,
    })
}

/// Asks the arXiv API for the papers first seen in the last few days that still have no
/// categories (Hugging Face lists papers by id only), and merges what it says. Updates only:
/// enrichment never adds a paper.
async fn enrich_from_arxiv(app: &App, today: NaiveDate) -> Option<SourceReport> {
    let since = app.clock.now() - chrono::Duration::days(3);
    let ids = match app.store.papers_without_categories(since).await {
        Ok(ids) if ids.is_empty() => return None,
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "could not list the papers to enrich from arXiv");
            return None;
        }
    };
    let result = async {
        let api = arxiv_api(app).map_err(|e| e.to_string())?;
        let answer = api.by_ids(&ids).await.map_err(|e| e.to_string())?;
        let batch = SourceBatch {
            updates: answer.entries.into_iter().map(|e| e.paper).collect(),
            skipped: answer.skipped,
            requests: answer.requests,
            ..SourceBatch::default()
        };
        store_batch(app, API_SOURCE, today, batch, app.clock.now()).await
    }
    .await;
    match &result {
        Ok(o) => info!(
            asked = ids.len(),
            updated = o.counts.updated,
            "enriched papers from the arXiv API"
        ),
        Err(e) => {
            warn!(error = %e, "arXiv enrichment failed");
            let _ = app
                .store
                .record_source_failure(API_SOURCE, e, app.clock.now())
                .await;
        }
    }
    Some(SourceReport {
        source: API_SOURCE.to_string(),
        date: today,
        result,
        stale: None,
    })
}

/// The number of the source's announcement days after `since` up to and including `today`.
pub fn announcement_days_since(source: &dyn Source, since: NaiveDate, today: NaiveDate) -> u32 {
    since
        .iter_days()
        .skip(1)
        .take_while(|d| *d <= today)
        .filter(|d| source.announces_on(d.weekday()))
        .count() as u32
}

/// Why the source is stale, if it is: it has produced no paper for `stale_after_days` of its
/// announcement days (counted from its first run when it never produced any).
pub fn stale_reason(
    source: &dyn Source,
    state: &SourceStatus,
    today: NaiveDate,
    stale_after_days: u32,
) -> Option<String> {
    let reference = state.last_papers_at.or(state.first_run_at)?;
    let missed = announcement_days_since(source, reference.date_naive(), today);
    if missed < stale_after_days {
        return None;
    }
    Some(match state.last_papers_at {
        Some(at) => format!(
            "source {} has produced no paper for {missed} announcement days (since {}); the \
             threshold is `sources.stale_after_days` = {stale_after_days}. Check its last error \
             with `paperboy check` and the source's URL ({})",
            source.name(),
            at.format("%Y-%m-%d %H:%M UTC"),
            source.location()
        ),
        None => format!(
            "source {} has never produced a paper in {missed} announcement days since its first \
             run; check its configuration (`sources.{}` / `[[sources.feeds]]`) and URL ({})",
            source.name(),
            source.name(),
            source.location()
        ),
    })
}

async fn check_stale(app: &App, source: &dyn Source, today: NaiveDate) -> Option<String> {
    let stale_after = app.live.get().sources.stale_after_days;
    let state = app.store.source_status(source.name()).await.ok()??;
    let reason = stale_reason(source, &state, today, stale_after)?;
    error!(stale = true, "{reason}");
    Some(reason)
}

/// The source state of each named source, with its staleness, for `check` and `papers`.
pub async fn source_overview(
    app: &App,
    sources: &[Box<dyn Source>],
) -> Vec<(String, Option<SourceStatus>, Option<String>)> {
    let today = app.clock.now().date_naive();
    let stale_after = app.live.get().sources.stale_after_days;
    let states: HashMap<String, SourceStatus> = app
        .store
        .source_statuses()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.source.clone(), s))
        .collect();
    sources
        .iter()
        .map(|src| {
            let state = states.get(src.name()).cloned();
            let stale = state
                .as_ref()
                .and_then(|s| stale_reason(src.as_ref(), s, today, stale_after));
            (src.name().to_string(), state, stale)
        })
        .collect()
}
