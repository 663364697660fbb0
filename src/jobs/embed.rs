//! The embed job: give every paper and every interest clause its vector, once.
//!
//! Papers are embedded right after a fetch stored them (`paperboy fetch`, the daemon's fetch),
//! interests when a profile changes (sign-up, the manage page, `subscriber add` / `set`) and
//! after `subscriber import`; `paperboy db embed` fills in whatever is missing (a database
//! from before vectors, or `--again` after a model change). Each unit is stored as soon as it
//! is computed, so a stop loses at most one batch and nothing is ever embedded twice.
//! Planning never embeds: a subscriber whose clauses have no vector yet is ranked by words
//! alone (`jobs::plan`).
//!
//! The model runs on blocking threads, one per core, never on the async runtime's.

use super::App;
use crate::embed::{
    EmbedError, Embedder, Embedding, SentenceVector, abstract_sentences, paper_text,
};
use crate::matching::meaning_clauses;
use crate::model::Interests;
use crate::store::StoreError;
use std::collections::BTreeSet;
use tracing::{Instrument, info, warn};

/// Papers read, embedded and written per round: a crash loses at most this many.
const PAPER_ROUND: u32 = 128;
/// Distinct interests read per round when looking for clauses without a vector.
const INTEREST_PAGE: u32 = 5_000;
/// Clauses embedded and written per round.
const CLAUSE_ROUND: usize = 1_024;

#[derive(Debug, thiserror::Error)]
pub enum EmbedJobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// Progress of an embedding run: called with the number of texts just embedded (and, once at
/// the start of a phase, `total` through [`EmbedProgress::start`]).
pub trait EmbedProgress: Sync {
    fn start(&self, _total: u64, _what: &'static str) {}
    fn advance(&self, _n: u64) {}
}

/// No progress shown (the daemon, which logs each run's counts instead).
pub struct Quiet;
impl EmbedProgress for Quiet {}

/// Embeds every paper that has no vector of this model yet. Returns how many were embedded.
pub async fn embed_papers(app: &App, progress: &dyn EmbedProgress) -> Result<usize, EmbedJobError> {
    let missing = app.store.papers_without_vectors().await?;
    if missing == 0 {
        return Ok(0);
    }
    progress.start(missing, "embedding papers");
    let started = std::time::Instant::now();
    let mut after = String::new();
    let mut done = 0usize;
    loop {
        let papers = app.store.papers_to_embed(&after, PAPER_ROUND).await?;
        let Some(last) = papers.last() else { break };
        after = last.id.clone();
        let texts: Vec<String> = papers
            .iter()
            .map(|p| paper_text(&p.title, &p.abstract_text))
            .collect();
        let vectors = embed_blocking(texts, progress).await?;
        let rows: Vec<(String, Embedding)> =
            papers.into_iter().map(|p| p.id).zip(vectors).collect();
        app.store.save_paper_vectors(&rows, app.clock.now()).await?;
        done += rows.len();
    }
    log_rate("embedded new papers", done, started);
    Ok(done)
}

/// Embeds each sentence of the abstracts of papers that have a vector but no sentence vectors
/// yet, on its own: what the highlight of a paper picked by meaning alone is chosen from
/// (`matching::explain`). Run after the papers' own vectors, and after the interests', since
/// ranking needs those and only the highlight needs these; it costs about one and a half times
/// as much as the papers' vectors (BENCHMARKS.md). A paper without them is shown with its
/// abstract's opening. Nothing when `matching.highlight_sentences` is off. Returns how many
/// papers got them.
pub async fn embed_sentences(
    app: &App,
    progress: &dyn EmbedProgress,
) -> Result<usize, EmbedJobError> {
    if !app.settings.matching.highlight_sentences {
        return Ok(0);
    }
    let missing = app.store.papers_without_sentences_count().await?;
    if missing == 0 {
        return Ok(0);
    }
    progress.start(missing, "embedding abstract sentences");
    let started = std::time::Instant::now();
    let mut after = String::new();
    let (mut papers_done, mut sentences_done) = (0usize, 0usize);
    loop {
        let papers = app
            .store
            .papers_without_sentences(&after, PAPER_ROUND)
            .await?;
        let Some(last) = papers.last() else { break };
        after = last.id.clone();
        let ranges: Vec<Vec<std::ops::Range<usize>>> = papers
            .iter()
            .map(|p| abstract_sentences(&p.abstract_text))
            .collect();
        let texts: Vec<String> = papers
            .iter()
            .zip(&ranges)
            .flat_map(|(p, rs)| rs.iter().map(|r| p.abstract_text[r.clone()].to_string()))
            .collect();
        sentences_done += texts.len();
        // Progress counts papers: a paper's sentences are one step.
        let mut vectors = embed_blocking(texts, &Quiet).await?.into_iter();
        let rows: Vec<(String, Vec<SentenceVector>)> = papers
            .into_iter()
            .zip(ranges)
            .map(|(p, rs)| {
                let list = rs
                    .into_iter()
                    .zip(vectors.by_ref())
                    .map(|(r, vector)| SentenceVector {
                        start: r.start as u32,
                        end: r.end as u32,
                        vector,
                    })
                    .collect();
                (p.id, list)
            })
            .collect();
        app.store.save_paper_sentences(&rows).await?;
        papers_done += rows.len();
        progress.advance(rows.len() as u64);
    }
    log_rate("embedded abstract sentences", sentences_done, started);
    Ok(papers_done)
}

/// Embeds the clauses of these interests that have no vector yet (a profile just changed).
pub async fn embed_interests(
    app: &App,
    interests: &[&Interests],
    progress: &dyn EmbedProgress,
) -> Result<usize, EmbedJobError> {
    let clauses: BTreeSet<String> = interests
        .iter()
        .flat_map(|i| meaning_clauses(i.as_str()))
        .collect();
    let missing = app
        .store
        .interests_without_vectors(&clauses.into_iter().collect::<Vec<_>>())
        .await?;
    embed_clauses(app, missing, progress).await
}

/// [`embed_interests`] in a task of its own, for a web handler that must not wait for the
/// model: the vectors are usually stored before the subscriber's next digest is planned, and
/// if not, that digest is matched by words alone and the daemon's next fetch run fills them in.
pub fn embed_soon(app: &App, interests: Interests) {
    let app = app.clone();
    tokio::spawn(
        async move {
            if let Err(e) = embed_interests(&app, &[&interests], &Quiet).await {
                warn!(error = %e, "could not embed changed interests; matched by words alone for now");
            }
        }
        .in_current_span(),
    );
}

/// Embeds the clauses of every subscriber's interests that have no vector yet, reading the
/// distinct interests a page at a time (`subscriber import`, `db embed`, the daemon's start).
pub async fn embed_all_interests(
    app: &App,
    progress: &dyn EmbedProgress,
) -> Result<usize, EmbedJobError> {
    let mut missing: BTreeSet<String> = BTreeSet::new();
    let mut after = String::new();
    loop {
        let page = app.store.interests_after(&after, INTEREST_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.clone();
        let clauses: BTreeSet<String> = page.iter().flat_map(|i| meaning_clauses(i)).collect();
        missing.extend(
            app.store
                .interests_without_vectors(&clauses.into_iter().collect::<Vec<_>>())
                .await?,
        );
    }
    let started = std::time::Instant::now();
    let n = embed_clauses(app, missing.into_iter().collect(), progress).await?;
    if n > 0 {
        log_rate("embedded interest clauses", n, started);
    }
    Ok(n)
}

async fn embed_clauses(
    app: &App,
    clauses: Vec<String>,
    progress: &dyn EmbedProgress,
) -> Result<usize, EmbedJobError> {
    if clauses.is_empty() {
        return Ok(0);
    }
    progress.start(clauses.len() as u64, "embedding interests");
    for round in clauses.chunks(CLAUSE_ROUND) {
        let vectors = embed_blocking(round.to_vec(), progress).await?;
        let rows: Vec<(String, Embedding)> = round.iter().cloned().zip(vectors).collect();
        app.store
            .save_interest_vectors(&rows, app.clock.now())
            .await?;
    }
    Ok(clauses.len())
}

/// Runs the model over `texts` on every core, off the async runtime.
async fn embed_blocking(
    texts: Vec<String>,
    progress: &dyn EmbedProgress,
) -> Result<Vec<Embedding>, EmbedJobError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The progress callback is borrowed; the blocking task cannot hold the borrow, so it
    // reports through a channel drained here.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    // Dropping this future (a stop, a task aborted at shutdown) closes the channel, which
    // stops the workers after their current text: the process never waits for a whole batch.
    let task = tokio::task::spawn_blocking(move || {
        let model = Embedder::shared()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        model.embed_parallel(&refs, cores, |n| tx.send(n as u64).is_ok())
    });
    while let Some(n) = rx.recv().await {
        progress.advance(n);
    }
    task.await
        .map_err(|e| EmbedError::Run(format!("the embedding thread stopped: {e}")))?
        .map_err(EmbedJobError::from)
}

/// One log line per embedding run: how many texts, how long, how many a second (the figure
/// BENCHMARKS.md reports per core).
fn log_rate(what: &'static str, texts: usize, started: std::time::Instant) {
    let secs = started.elapsed().as_secs_f64();
    info!(
        texts,
        seconds = format!("{secs:.1}"),
        per_second = format!("{:.1}", texts as f64 / secs.max(1e-3)),
        "{what}"
    );
}
