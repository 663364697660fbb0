//! The plan job: decide who is due a digest now and which papers it holds.
//!
//! A subscriber is due when they are active, their frequency includes their local date, their
//! local send time has passed (or the operator said `--now`) and they have no delivery for that
//! local date yet. Their digest holds the papers first seen since their previous digest (at
//! most `digest.max_age_days` back), never sent to them before, ranked against their interests,
//! above the relevance floor, at most their maximum. The delivery and its papers are written in
//! one transaction; planning the same date twice is a no-op thanks to the unique key.

use super::App;
use crate::matching::{Blend, CandidateIndex, CategoryMode, Pick, ProfileInput};
use crate::model::{DigestDate, Subscriber};
use crate::store::{PlannedDelivery, PlannedPaper, StoreError, StoredPaper};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use tracing::{Instrument, debug, info, info_span, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanMode {
    /// Only subscribers whose local send time has passed today.
    Scheduled,
    /// Every active subscriber whose frequency includes today (`send --now`).
    Now,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PlanReport {
    /// Subscribers due a digest in this run.
    pub due: usize,
    /// Deliveries written with papers in them.
    pub planned: usize,
    /// Due subscribers for whom nothing matched: recorded, nothing will be sent.
    pub empty: usize,
    /// Subscriber rows that could not be read, or whose interests no longer parse.
    pub bad_rows: usize,
}

/// The papers a planning run chooses from, indexed once for every subscriber.
pub struct Candidates {
    pub papers: Vec<StoredPaper>,
    pub index: CandidateIndex,
    /// Papers first seen before this are too old for any digest.
    pub oldest: DateTime<Utc>,
}

impl Candidates {
    pub async fn load(app: &App, now: DateTime<Utc>) -> Result<Candidates, PlanError> {
        let oldest = now - Duration::days(i64::from(app.settings.digest.max_age_days));
        let papers: Vec<StoredPaper> = app
            .store
            .papers_first_seen_since(oldest)
            .await?
            .into_iter()
            // With a clock set back (PAPERBOY_NOW), papers "from the future" are not yet seen.
            .filter(|p| p.first_seen_at <= now)
            .collect();
        let index = CandidateIndex::build(papers.iter().map(|p| &p.paper))
            .map_err(|e| PlanError::Matching(e.to_string()))?;
        Ok(Candidates {
            papers,
            index,
            oldest,
        })
    }

    /// The papers `subscriber` would get now, with their stored profile (followed authors,
    /// categories, example papers, feedback votes) and the configured floor and trending weight.
    pub async fn rank_subscriber(
        &self,
        app: &App,
        subscriber: &Subscriber,
        window_start: DateTime<Utc>,
        delivered: &HashSet<String>,
    ) -> Result<Vec<Pick>, PlanError> {
        let (profile, examples) = load_profile(app, subscriber).await?;
        let blend = Blend {
            min_score: app.settings.matching.min_score,
            trending_weight: app.settings.matching.trending_weight,
        };
        if examples.is_empty() {
            return self.rank_for(subscriber, &profile, window_start, delivered, &blend);
        }
        // The example papers are what the subscriber already knows: never send them back.
        let mut known = delivered.clone();
        known.extend(examples);
        self.rank_for(subscriber, &profile, window_start, &known, &blend)
    }

    /// The papers `subscriber` would get now: first seen since `window_start`, not in
    /// `delivered`, ranked for their interests and `profile`, above the floor, at most their
    /// maximum. The interests are parsed once here, not per paper.
    pub fn rank_for(
        &self,
        subscriber: &Subscriber,
        profile: &ProfileInput,
        window_start: DateTime<Utc>,
        delivered: &HashSet<String>,
        blend: &Blend,
    ) -> Result<Vec<Pick>, PlanError> {
        let parsed = self
            .index
            .profile(Some(subscriber.interests.as_str()), profile)
            .map_err(|e| PlanError::Interests(e.to_string()))?;
        self.index
            .rank_profile(
                &parsed,
                blend,
                |i| {
                    let p = &self.papers[i];
                    p.first_seen_at >= window_start && !delivered.contains(p.paper.id.as_str())
                },
                subscriber.max_papers as usize,
            )
            .map_err(|e| PlanError::Matching(e.to_string()))
    }
}

/// A subscriber's stored profile and the texts of the papers they liked, disliked or gave as
/// examples, ready for `matching`; and the example papers' ids.
pub async fn load_profile(
    app: &App,
    subscriber: &Subscriber,
) -> Result<(ProfileInput, Vec<String>), StoreError> {
    let row = app.store.profile(subscriber.id).await?;
    let texts = app
        .store
        .profile_texts(subscriber.id, &row.examples)
        .await?;
    let input = ProfileInput {
        authors: row.authors,
        categories: row.categories,
        category_mode: CategoryMode::parse(&row.category_mode).unwrap_or_default(),
        liked: texts.liked,
        disliked: texts.disliked,
    };
    Ok((input, row.examples))
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("matching failed: {0}")]
    Matching(String),
    #[error("{0}")]
    Interests(String),
}

/// The local date for `subscriber` at `now`, if a digest is due then.
pub fn due_date(subscriber: &Subscriber, now: DateTime<Utc>, mode: PlanMode) -> Option<DigestDate> {
    let local = now.with_timezone(&subscriber.timezone.0);
    let date = local.date_naive();
    if !subscriber.frequency.includes(date) {
        return None;
    }
    if mode == PlanMode::Scheduled && local.time() < subscriber.send_time.0 {
        return None;
    }
    Some(date)
}

/// Where this subscriber's next digest starts: their previous digest, at most the maximum age.
pub async fn window_start(
    app: &App,
    subscriber: &Subscriber,
    oldest: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    Ok(app
        .store
        .last_planned_at(subscriber.id)
        .await?
        .map_or(oldest, |last| last.max(oldest)))
}

pub async fn plan(app: &App, mode: PlanMode) -> Result<PlanReport, PlanError> {
    let now = app.clock.now();
    plan_at(app, mode, now)
        .instrument(info_span!("plan", ?mode, %now))
        .await
}

async fn plan_at(app: &App, mode: PlanMode, now: DateTime<Utc>) -> Result<PlanReport, PlanError> {
    let mut report = PlanReport::default();

    let mut due: Vec<(Subscriber, DigestDate)> = Vec::new();
    for row in app.store.active_subscribers().await? {
        let subscriber = match row.parse() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "skipping a subscriber row that cannot be read");
                report.bad_rows += 1;
                continue;
            }
        };
        if let Some(date) = due_date(&subscriber, now, mode)
            && !app.store.has_delivery(subscriber.id, date).await?
        {
            due.push((subscriber, date));
        }
    }
    report.due = due.len();
    if due.is_empty() {
        debug!("nobody is due");
        return Ok(report);
    }

    let candidates = Candidates::load(app, now).await?;
    info!(
        due = due.len(),
        candidates = candidates.papers.len(),
        "planning digests"
    );
    for (subscriber, date) in due {
        let start = window_start(app, &subscriber, candidates.oldest).await?;
        let delivered = app.store.delivered_paper_ids(subscriber.id, start).await?;
        let picks = match candidates
            .rank_subscriber(app, &subscriber, start, &delivered)
            .await
        {
            Ok(p) => p,
            Err(PlanError::Interests(e)) => {
                warn!(subscriber = %subscriber.id, error = %e, "skipping a subscriber whose interests do not parse");
                report.bad_rows += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let plan = PlannedDelivery {
            subscriber_id: subscriber.id,
            digest_date: date,
            planned_at: now,
            message_id: message_key(&subscriber, date),
            papers: picks
                .iter()
                .enumerate()
                .map(|(rank, pick)| PlannedPaper {
                    paper_id: candidates.papers[pick.index].paper.id.to_string(),
                    rank: rank as u32 + 1,
                    score: pick.score,
                    reason: serde_json::to_string(&pick.explanation).unwrap_or_default(),
                })
                .collect(),
        };
        match app.store.plan_delivery(&plan).await? {
            Some(_) if plan.papers.is_empty() => report.empty += 1,
            Some(id) => {
                report.planned += 1;
                debug!(subscriber = %subscriber.id, delivery = id, papers = plan.papers.len(), "digest planned");
            }
            None => debug!(subscriber = %subscriber.id, "already planned by another run"),
        }
    }
    info!(
        planned = report.planned,
        empty = report.empty,
        bad_rows = report.bad_rows,
        "planning done"
    );
    Ok(report)
}

/// The unique part of a delivery's Message-ID. Random, so nothing about the subscriber can be
/// guessed from it; fixed once planned, so a resend carries the same id.
fn message_key(subscriber: &Subscriber, date: DigestDate) -> String {
    use rand::Rng;
    let nonce: u64 = rand::thread_rng().r#gen();
    format!("digest.{date}.{}.{nonce:016x}", subscriber.id)
}
