//! The fetch job: ask each enabled source for a day's papers and upsert them.

use super::App;
use crate::sources::hf::HfSource;
use crate::sources::http::{HttpClient, HttpSettings, user_agent};
use crate::sources::{Source, SourceError};
use crate::store::UpsertCounts;
use chrono::NaiveDate;
use tracing::{Instrument, info, info_span, warn};

/// How one source's fetch went.
#[derive(Debug)]
pub struct SourceReport {
    pub source: &'static str,
    pub date: NaiveDate,
    pub result: Result<SourceOutcome, String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceOutcome {
    pub fetched: usize,
    pub counts: UpsertCounts,
    /// Items the source listed that could not be read, with where and why.
    pub skipped: Vec<String>,
}

/// The enabled sources, or only the one named.
pub fn sources(app: &App, only: Option<&str>) -> Result<Vec<Box<dyn Source>>, SourceError> {
    // The live copy: a SIGHUP may have changed the sources since the daemon started.
    let live = app.live.get();
    let s = &live.sources;
    let client = HttpClient::new(&HttpSettings {
        timeout: s.timeout,
        retries: s.retries,
        backoff: s.backoff,
        user_agent: user_agent(&s.contact),
    })?;
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
    if let Some(name) = only
        && out.is_empty()
    {
        return Err(SourceError::Config(format!(
            "there is no source named `{name}`; the sources are: hf"
        )));
    }
    Ok(out)
}

/// Fetches `date` from each source in turn. A failing source is reported and recorded in
/// `source_state`; it never stops the others (invariant 7).
pub async fn fetch_day(
    app: &App,
    sources: &[Box<dyn Source>],
    date: NaiveDate,
) -> Vec<SourceReport> {
    let mut reports = Vec::new();
    for source in sources {
        let span = info_span!("fetch", source = source.name(), %date);
        let report = async {
            let result = fetch_one(app, source.as_ref(), date).await;
            let now = app.clock.now();
            match &result {
                Ok(outcome) => {
                    app.metrics.source_fetched(source.name(), outcome.fetched);
                    info!(
                        fetched = outcome.fetched,
                        new = outcome.counts.new,
                        updated = outcome.counts.updated,
                        skipped = outcome.skipped.len(),
                        "source fetched"
                    );
                    for s in &outcome.skipped {
                        warn!(item = %s, "skipped an item the source sent");
                    }
                    if let Err(e) = app
                        .store
                        .record_source_success(source.name(), Some(&date.to_string()), now)
                        .await
                    {
                        warn!(error = %e, "could not record the source's state");
                    }
                }
                Err(e) => {
                    app.metrics.source_failed(source.name());
                    warn!(error = %e, "source failed");
                    if let Err(e2) = app.store.record_source_error(source.name(), e, now).await {
                        warn!(error = %e2, "could not record the source's state");
                    }
                }
            }
            SourceReport {
                source: source.name(),
                date,
                result,
            }
        }
        .instrument(span)
        .await;
        reports.push(report);
    }
    reports
}

async fn fetch_one(
    app: &App,
    source: &dyn Source,
    date: NaiveDate,
) -> Result<SourceOutcome, String> {
    let batch = source.fetch_day(date).await.map_err(|e| e.to_string())?;
    let counts = app
        .store
        .upsert_papers(&batch.papers, source.name(), app.clock.now())
        .await
        .map_err(|e| e.to_string())?;
    Ok(SourceOutcome {
        fetched: batch.papers.len(),
        counts,
        skipped: batch
            .skipped
            .iter()
            .map(|s| format!("page {} item {}: {}", s.page, s.position, s.reason))
            .collect(),
    })
}
