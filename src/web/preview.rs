//! The live preview: what the last days' papers would have given someone with these interests.
//!
//! It is how a researcher learns to write a good query, so it is the digest: the planner's own
//! decision ([`Candidates::digest`], with the same floor and trending weight) for someone who
//! just signed up with these interests (no profile, no votes, nothing sent yet), over the papers
//! first seen within `digest.max_age_days`, as many as that digest holds: a sign-up's
//! (`digest.max_papers`), or on the manage page the subscriber's own `max_papers`. The indexed
//! candidates are kept for a minute, so typing does not rebuild the index on every keystroke.
//! `GET /preview?interests=…&max_papers=…` answers an HTML fragment for the page's script; the
//! forms embed the same fragment when JavaScript is off (their "Show preview" button).
//!
//! Anyone can ask for a preview, so its cost is bounded: parsing and ranking run on a blocking
//! thread (never on the runtime's, which serve `/healthz`, sign-ups and sending), at most
//! [`MAX_RUNNING`] at once (the next one is told to try again, not queued), and a visitor waits
//! at most [`BUDGET`] for them (loading the papers, once a minute, and the embedding model, once
//! per process, are bounded by the data, not by what the visitor typed).

use super::Web;
use super::forms::{interests_text, max_papers_field, syntax_message};
use crate::embed::{Embedder, Embedding};
use crate::jobs::plan::{Candidates, PlanError, Recipient};
use crate::matching::meaning_clauses;
use crate::model::{Interests, MaxPapers};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

/// How long an indexed candidate set is reused.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// Previews parsed and ranked at the same time. Typing is debounced by the page's script, so a
/// few visitors at once stay well under this; more means someone is hammering the endpoint.
pub const MAX_RUNNING: usize = 4;
/// How long a visitor waits for a preview's parse and ranking.
pub const BUDGET: Duration = Duration::from_secs(2);

const UNAVAILABLE: &str = "The preview is not available right now; you can still subscribe.";
const BUSY: &str = "Many previews are being made right now; try again in a moment.";
const TOO_SLOW: &str = "The preview took too long for these interests. Try fewer words or \
                        parentheses; you can still subscribe.";

/// The indexed candidates, and the bound on previews running at once.
pub struct PreviewCache {
    slot: Mutex<Option<(Instant, Arc<Candidates>)>>,
    running: Bounded,
}

impl Default for PreviewCache {
    fn default() -> Self {
        PreviewCache {
            slot: Mutex::new(None),
            running: Bounded::new(MAX_RUNNING, BUDGET),
        }
    }
}

impl PreviewCache {
    async fn candidates(&self, web: &Web) -> Result<Arc<Candidates>, String> {
        // One lock across the rebuild: concurrent previews wait for one index instead of each
        // building their own.
        let mut slot = self.slot.lock().await;
        if let Some((at, c)) = slot.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(c.clone());
        }
        let fresh = Arc::new(
            Candidates::load(&web.app, web.app.clock.now())
                .await
                .map_err(|e| e.to_string())?,
        );
        *slot = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}

/// Why bounded work did not give an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// As many jobs as allowed are running already.
    Busy,
    /// The job ran past the budget. It finishes on its blocking thread (it cannot be stopped
    /// there) and keeps its place among the running until it does.
    TooSlow,
    /// The job panicked.
    Failed,
}

/// CPU work on blocking threads, at most `limit` at once, each awaited for at most `budget`.
pub struct Bounded {
    slots: Arc<Semaphore>,
    budget: Duration,
}

impl Bounded {
    pub fn new(limit: usize, budget: Duration) -> Self {
        Bounded {
            slots: Arc::new(Semaphore::new(limit)),
            budget,
        }
    }

    /// A place among the running, or [`Refused::Busy`] at once.
    pub fn enter(&self) -> Result<Slot, Refused> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map(|permit| Slot {
                permit,
                budget: self.budget,
            })
            .map_err(|_| Refused::Busy)
    }
}

/// A place taken with [`Bounded::enter`]; the job it runs keeps it until the job ends.
pub struct Slot {
    permit: tokio::sync::OwnedSemaphorePermit,
    budget: Duration,
}

impl Slot {
    pub async fn run<T: Send + 'static>(
        self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let Slot { permit, budget } = self;
        let task = tokio::task::spawn_blocking(move || {
            let _held = permit;
            job()
        });
        match tokio::time::timeout(budget, task).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a preview job failed");
                Err(Refused::Failed)
            }
            Err(_) => Err(Refused::TooSlow),
        }
    }
}

#[derive(Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    interests: String,
    /// The digest size to preview (the manage page's field); a sign-up's when absent.
    max_papers: Option<String>,
}

#[derive(Serialize)]
struct PreviewPaper {
    title: String,
    url: Option<String>,
    snippet: Vec<crate::matching::Fragment>,
    why: String,
}

/// `GET /preview`: the fragment alone; 503 with `Retry-After` when too many previews run.
pub async fn fragment(State(web): State<Web>, Query(q): Query<PreviewQuery>) -> Response {
    let size = max_papers_field(q.max_papers.as_deref(), web.app.settings.digest.max_papers)
        .map_err(|e| e.message);
    let (status, html) = answer(&web, &q.interests, size).await;
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// The preview fragment for `interests`, for a digest of `max_papers` papers (a message instead
/// when they do not parse, when the preview is busy or too slow).
pub async fn render(web: &Web, interests: &str, max_papers: MaxPapers) -> String {
    answer(web, interests, Ok(max_papers)).await.1
}

/// `max_papers` is the digest size, or why the one asked for is not one.
async fn answer(
    web: &Web,
    interests: &str,
    max_papers: Result<MaxPapers, String>,
) -> (StatusCode, String) {
    let mut ctx = tera::Context::new();
    ctx.insert("interests", interests.trim());
    ctx.insert("days", &web.app.settings.digest.max_age_days);
    ctx.insert("papers", &Vec::<PreviewPaper>::new());
    ctx.insert("candidates", &0);
    ctx.insert("max_papers", &0);
    ctx.insert("error", &None::<String>);
    if interests.trim().is_empty() {
        return (StatusCode::OK, String::new());
    }
    let picked = match max_papers {
        Ok(max_papers) => {
            ctx.insert("max_papers", &max_papers.get());
            pick(web, interests, max_papers).await
        }
        Err(message) => Err((StatusCode::OK, message)),
    };
    let status = match picked {
        Ok((papers, candidates)) => {
            ctx.insert("papers", &papers);
            ctx.insert("candidates", &candidates);
            StatusCode::OK
        }
        Err((status, message)) => {
            ctx.insert("error", &Some(message));
            status
        }
    };
    (status, web.pages.fragment("preview.html", &ctx))
}

type Picked = (Vec<PreviewPaper>, usize);

async fn pick(web: &Web, raw: &str, max_papers: MaxPapers) -> Result<Picked, (StatusCode, String)> {
    let ok = |message: String| (StatusCode::OK, message);
    // The text rules first: a hostile query is refused here, before any parser or slot.
    let interests = interests_text(raw).map_err(|e| ok(e.message))?;
    let slot = web
        .preview
        .running
        .enter()
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, BUSY.to_string()))?;
    let candidates = web.preview.candidates(web).await.map_err(|e| {
        tracing::warn!(error = %e, "the preview could not load papers");
        ok(UNAVAILABLE.to_string())
    })?;
    let clauses = meaning_clauses(interests.as_str());
    let stored = web
        .app
        .store
        .interest_vectors(&clauses)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the preview could not read interest vectors");
            HashMap::new()
        });
    // The model loads once per process (about a second, more on a busy machine; the daemon
    // starts loading it at start): like loading the papers, that is bounded by the data, not
    // by what the visitor typed, so it is waited for outside the budget. Without this the
    // first previews after a restart were answered "took too long, try fewer words".
    if clauses.iter().any(|c| !stored.contains_key(c)) {
        let _ = tokio::task::spawn_blocking(|| Embedder::shared().map(|_| ())).await;
    }
    match slot
        .run(move || {
            let vectors = with_missing_embedded(clauses, stored);
            rank(&candidates, interests, max_papers, &vectors)
        })
        .await
    {
        Ok(picked) => picked.map_err(ok),
        Err(Refused::Busy) => Err((StatusCode::SERVICE_UNAVAILABLE, BUSY.to_string())),
        Err(Refused::TooSlow) => {
            tracing::warn!(interests = %raw, "a preview ran past its budget");
            Err(ok(TOO_SLOW.to_string()))
        }
        Err(Refused::Failed) => Err(ok(UNAVAILABLE.to_string())),
    }
}

/// The clauses' vectors: the stored ones, and the others computed now (as signing up with
/// these interests would store them). Computed, not stored: a GET changes nothing. On a
/// blocking thread: the model is CPU work.
fn with_missing_embedded(
    clauses: Vec<String>,
    mut vectors: HashMap<String, Embedding>,
) -> HashMap<String, Embedding> {
    let missing: Vec<&str> = clauses
        .iter()
        .filter(|c| !vectors.contains_key(*c))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return vectors;
    }
    match Embedder::shared().and_then(|m| m.embed(&missing)) {
        Ok(computed) => {
            vectors.extend(missing.iter().map(|c| c.to_string()).zip(computed));
        }
        Err(e) => tracing::warn!(error = %e, "the preview ranks by words alone"),
    }
    vectors
}

/// Parses and ranks: CPU work, run on a blocking thread by [`pick`].
fn rank(
    candidates: &Candidates,
    interests: Interests,
    max_papers: MaxPapers,
    vectors: &HashMap<String, Embedding>,
) -> Result<Picked, String> {
    let newcomer = Recipient::newcomer(interests, max_papers, candidates, vectors);
    let picks = candidates.digest(&newcomer).map_err(|e| match e {
        PlanError::Interests(e) => syntax_message(&e),
        e => {
            tracing::warn!(error = %e, "the preview ranking failed");
            UNAVAILABLE.to_string()
        }
    })?;
    let papers = picks
        .into_iter()
        .filter_map(|p| {
            let paper = &candidates.papers.get(p.index)?.paper;
            let url = paper
                .links
                .abstract_url
                .clone()
                .or_else(|| paper.links.hf_url.clone())
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
            Some(PreviewPaper {
                title: paper.title.split_whitespace().collect::<Vec<_>>().join(" "),
                url,
                snippet: p.explanation.snippet,
                why: p.explanation.reasons.join("; "),
            })
        })
        .collect();
    Ok((papers, candidates.papers.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_limit_a_job_is_refused_at_once() {
        let bounded = Bounded::new(1, Duration::from_secs(5));
        let first = bounded.enter().unwrap();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn(first.run(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            7
        }));
        started_rx.await.unwrap();
        assert_eq!(bounded.enter().err(), Some(Refused::Busy));
        release_tx.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(7));
        assert_eq!(bounded.enter().unwrap().run(|| 8).await, Ok(8));
    }

    #[tokio::test]
    async fn a_slow_job_is_answered_at_the_budget_and_keeps_its_place_until_it_ends() {
        let bounded = Bounded::new(1, Duration::from_millis(100));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let started = Instant::now();
        let slow = bounded.enter().unwrap().run(move || {
            release_rx.recv().unwrap();
        });
        assert_eq!(slow.await, Err(Refused::TooSlow));
        assert!(started.elapsed() < Duration::from_secs(2));
        // Still running on its blocking thread: its place is not free yet.
        assert_eq!(bounded.enter().err(), Some(Refused::Busy));
        release_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let slot = loop {
            match bounded.enter() {
                Ok(slot) => break slot,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("the finished job kept its place: {e:?}"),
            }
        };
        assert_eq!(slot.run(|| 1).await, Ok(1));
    }
}
