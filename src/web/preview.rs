//! The live preview: what the last days' papers would have given someone with these interests.
//!
//! It is how a researcher learns to write a good query, so it uses exactly the planner's
//! ranking (`jobs::plan::Candidates`, the same relevance floor) over the papers first seen within
//! `digest.max_age_days`, without the per-subscriber filters (nothing was sent yet). The indexed
//! candidates are kept for a minute, so typing does not rebuild the index on every keystroke.
//! `GET /preview?interests=…` answers an HTML fragment for the page's script; the forms embed the
//! same fragment when JavaScript is off (their "Show preview" button).

use super::Web;
use super::forms::parse_interests;
use crate::jobs::plan::Candidates;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long an indexed candidate set is reused.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// The preview shows at most this many papers.
const PREVIEW_MAX: usize = 10;

#[derive(Default)]
pub struct PreviewCache {
    slot: Mutex<Option<(Instant, Arc<Candidates>)>>,
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

#[derive(Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    interests: String,
}

#[derive(Serialize)]
struct PreviewPaper {
    title: String,
    url: Option<String>,
    snippet: Vec<crate::matching::Fragment>,
    why: String,
}

/// `GET /preview`: the fragment alone.
pub async fn fragment(State(web): State<Web>, Query(q): Query<PreviewQuery>) -> Response {
    let html = render(&web, &q.interests).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// The preview fragment for `interests` (an error message when they do not parse).
pub async fn render(web: &Web, interests: &str) -> String {
    let mut ctx = tera::Context::new();
    ctx.insert("interests", interests.trim());
    ctx.insert("days", &web.app.settings.digest.max_age_days);
    ctx.insert("papers", &Vec::<PreviewPaper>::new());
    ctx.insert("candidates", &0);
    ctx.insert("error", &None::<String>);
    if interests.trim().is_empty() {
        return String::new();
    }
    match pick(web, interests).await {
        Ok((papers, candidates)) => {
            ctx.insert("papers", &papers);
            ctx.insert("candidates", &candidates);
        }
        Err(message) => ctx.insert("error", &Some(message)),
    }
    web.pages.fragment("preview.html", &ctx)
}

async fn pick(web: &Web, raw: &str) -> Result<(Vec<PreviewPaper>, usize), String> {
    let interests = parse_interests(raw).map_err(|e| e.message)?;
    let candidates = web.preview.candidates(web).await.map_err(|e| {
        tracing::warn!(error = %e, "the preview could not load papers");
        "The preview is not available right now; you can still subscribe.".to_string()
    })?;
    let query = candidates
        .index
        .parse_interests(interests.as_str())
        .map_err(|e| {
            format!(
                "We cannot understand these interests: {}. {}",
                e.problem.trim_end_matches('.'),
                e.hint
            )
        })?;
    let picks = candidates
        .index
        .rank(
            &*query,
            |_| true,
            PREVIEW_MAX,
            web.app.settings.matching.min_score,
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "the preview ranking failed");
            "The preview is not available right now; you can still subscribe.".to_string()
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
