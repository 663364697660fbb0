//! The plan job: decide who is due a digest now and which papers it holds.
//!
//! A subscriber is due when they are active, their frequency includes their local date, their
//! local send time has passed (or the operator said `--now`) and they have no delivery for that
//! local date yet. Their digest holds the papers first seen since their previous digest (at
//! most `digest.max_age_days` back), never sent to them before, ranked against their interests,
//! above the relevance floor, at most their maximum. The delivery and its papers are written in
//! one transaction; planning the same date twice is a no-op thanks to the unique key.
//!
//! One decision, one place: [`Candidates::digest`] decides what a digest holds, for the planner
//! and for everything that shows a digest before it is planned (`paperboy preview`,
//! `send --dry-run`, the live preview). What it ranks for a subscriber is assembled in one place
//! too ([`due_page`], or [`Candidates::digest_for`] for one subscriber, both through
//! `recipients`), from the store's page reads (`store::planning`).
//!
//! The daemon plans as the holder of the leader lease ([`plan_as_leader`]): each write batch
//! checks the lease's generation in its transaction, so an instance that lost the lease (it
//! was paused past its expiry and another took over) stops instead of planning a second time.
//! `paperboy send` plans without the lease: the operator asked for it, and the unique keys keep
//! a second planning of the same date harmless.

use super::App;
use crate::digest::DigestPaper;
use crate::embed::Embedding;
use crate::matching::{
    Blend, CandidateIndex, ClauseTable, InterestsSyntaxError, Pick, ProfileSignals, meaning_clauses,
};
use crate::model::{DigestDate, Interests, MaxPapers, Paper, Subscriber};
use crate::store::{
    LeaderFence, PageHistory, PlannedDelivery, PlannedPaper, StoreError, StoredPaper,
};
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
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
    /// Due subscribers ranked by words alone: a clause of their interests has no vector yet.
    pub words_only: usize,
}

/// The papers a planning run chooses from, indexed once for every subscriber, and how they are
/// weighed.
pub struct Candidates {
    pub papers: Vec<StoredPaper>,
    pub index: CandidateIndex,
    /// Papers first seen before this are too old for any digest.
    pub oldest: DateTime<Utc>,
    /// The relevance floor and the trending weight (`[matching]`), the same for every digest.
    pub blend: Blend,
    /// Paper id → position in `papers`, to turn a subscriber's known papers into positions
    /// once instead of hashing every candidate's id for every subscriber.
    positions: HashMap<String, usize>,
}

/// Whom a digest is for, as ranking reads them.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub interests: Interests,
    /// The most papers their digest holds.
    pub max_papers: MaxPapers,
    /// Only papers first seen since then: their previous digest's planning, at most
    /// `digest.max_age_days` back.
    pub window_start: DateTime<Utc>,
    /// Papers they already have, and the example papers they gave: never sent (again).
    pub known: HashSet<String>,
    pub signals: ProfileSignals,
    /// Clauses of their interests with no stored vector yet: ranked by words alone until
    /// the embed job gives them one (said in the log and by `paperboy preview`).
    pub clauses_without_vectors: usize,
}

impl Recipient {
    /// Someone who just signed up with `interests`: no profile, no votes, nothing sent yet.
    /// What the live preview ranks for.
    /// `vectors` are the vectors their interests' clauses have (as a sign-up stores them).
    pub fn newcomer(
        interests: Interests,
        max_papers: MaxPapers,
        candidates: &Candidates,
        vectors: &HashMap<String, Embedding>,
    ) -> Recipient {
        let mut signals = ProfileSignals::default();
        let clauses_without_vectors = with_clause_vectors(&mut signals, &interests, vectors);
        Recipient {
            interests,
            max_papers,
            window_start: candidates.oldest,
            known: HashSet::new(),
            signals,
            clauses_without_vectors,
        }
    }
}

/// Gives `signals` the vectors of `interests`' clauses found in `vectors`; returns how many
/// clauses have none. All or nothing: a subscriber with a clause not embedded yet is ranked
/// by words alone, so that one interest does not drown the others.
fn with_clause_vectors(
    signals: &mut ProfileSignals,
    interests: &Interests,
    vectors: &HashMap<String, Embedding>,
) -> usize {
    let clauses = meaning_clauses(interests.as_str());
    let found: Vec<(String, Embedding)> = clauses
        .iter()
        .filter_map(|c| vectors.get(c).map(|v| (c.clone(), v.clone())))
        .collect();
    let missing = clauses.len() - found.len();
    if missing == 0 {
        signals.meaning.clauses = found;
    } else {
        signals.meaning = Default::default();
    }
    missing
}

/// A subscriber due a digest on their local `date`, and what ranking reads about them.
pub struct Due {
    pub subscriber: Subscriber,
    pub date: DigestDate,
    pub recipient: Recipient,
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
        let blend = Blend {
            meaning_floor: app.settings.matching.min_closeness,
            trending_weight: app.settings.matching.trending_weight,
            ..Blend::floor(app.settings.matching.min_score)
        };
        let ids: Vec<String> = papers.iter().map(|p| p.paper.id.to_string()).collect();
        let mut stored = app.store.paper_vectors(&ids).await?;
        let vectors: Vec<Option<Embedding>> = ids.iter().map(|id| stored.remove(id)).collect();
        let mut stored = app.store.paper_sentences(&ids).await?;
        let sentences: Vec<_> = ids
            .iter()
            .map(|id| stored.remove(id).unwrap_or_default())
            .collect();
        let missing = vectors.iter().filter(|v| v.is_none()).count();
        if missing > 0 {
            warn!(
                papers = missing,
                "candidate papers without a vector yet are matched by words alone; \
                 `paperboy db embed` computes them"
            );
        }
        // Indexing is CPU work: off the runtime's threads, which serve the web meanwhile.
        tokio::task::spawn_blocking(move || {
            let index = CandidateIndex::build(papers.iter().map(|p| &p.paper))
                .map_err(|e| PlanError::Matching(e.to_string()))?
                .with_vectors(vectors)
                .with_sentences(sentences);
            let positions = papers
                .iter()
                .enumerate()
                .map(|(i, p)| (p.paper.id.to_string(), i))
                .collect();
            Ok(Candidates {
                papers,
                index,
                oldest,
                blend,
                positions,
            })
        })
        .await
        .map_err(|e| PlanError::Matching(e.to_string()))?
    }

    /// Ranked picks as a digest shows them, numbered from 1 in their order: what `preview` and
    /// `send --dry-run` render before anything is stored.
    pub fn digest_papers(&self, picks: Vec<Pick>) -> Vec<DigestPaper> {
        picks
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                DigestPaper::new(
                    &self.papers[p.index].paper,
                    i as u32 + 1,
                    p.score,
                    p.explanation,
                )
            })
            .collect()
    }

    /// What `recipient`'s digest holds: the papers first seen since their window start that
    /// they do not have, ranked for their interests and profile signals (the floor on
    /// relevance, then the trending boost), at most their maximum, each with its explanation.
    ///
    /// The one decision of what a subscriber gets: the planner, `paperboy preview`,
    /// `send --dry-run` and the live preview all rank through here (many at a time through
    /// [`Candidates::digests`], which gives the same picks).
    pub fn digest(&self, recipient: &Recipient) -> Result<Vec<Pick>, PlanError> {
        self.rank(recipient, None)
    }

    /// [`Candidates::digest`] for each of `recipients`, with their interests' clauses scored
    /// against the candidates together first (one matrix product rather than one pass per
    /// clause: most of what meaning costs planning).
    pub fn digests(&self, recipients: &[&Recipient]) -> Vec<Result<Vec<Pick>, PlanError>> {
        let table = Arc::new(
            self.index.score_clauses(
                recipients
                    .iter()
                    .flat_map(|r| &r.signals.meaning.clauses)
                    .map(|(key, v)| (key.as_str(), v)),
            ),
        );
        recipients
            .iter()
            .map(|r| self.rank(r, Some(&table)))
            .collect()
    }

    fn rank(
        &self,
        recipient: &Recipient,
        scored: Option<&Arc<ClauseTable>>,
    ) -> Result<Vec<Pick>, PlanError> {
        let mut profile = self
            .index
            .profile(Some(recipient.interests.as_str()), &recipient.signals)?;
        if let Some(table) = scored {
            profile = profile.with_scored_clauses(table.clone());
        }
        let mut known = vec![false; self.papers.len()];
        for id in &recipient.known {
            if let Some(&i) = self.positions.get(id) {
                known[i] = true;
            }
        }
        self.index
            .rank_profile(
                &profile,
                &self.blend,
                |i| !known[i] && self.papers[i].first_seen_at >= recipient.window_start,
                recipient.max_papers.get() as usize,
            )
            .map_err(|e| PlanError::Matching(e.to_string()))
    }

    /// What `subscriber`'s digest for `date` would hold if planned now, recorded nowhere
    /// (`paperboy preview`): read with the planner's statements over a page of one, ranked by
    /// [`Candidates::digest`]. With the picks, how many clauses of their interests have no
    /// vector yet (more than 0: matched by words alone).
    pub async fn digest_for(
        &self,
        app: &App,
        subscriber: &Subscriber,
        date: DigestDate,
    ) -> Result<(Vec<Pick>, usize), PlanError> {
        let id = subscriber.id.0;
        let history = app
            .store
            .page_history(id - 1, id, date, self.oldest)
            .await?;
        let due = recipients(app, vec![(subscriber.clone(), date)], history, self.oldest).await?;
        match due.first() {
            Some(due) => Ok((
                self.digest(&due.recipient)?,
                due.recipient.clauses_without_vectors,
            )),
            None => Ok((Vec::new(), 0)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("matching failed: {0}")]
    Matching(String),
    #[error(transparent)]
    Interests(#[from] InterestsSyntaxError),
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

pub async fn plan(app: &App, mode: PlanMode) -> Result<PlanReport, PlanError> {
    let now = app.clock.now();
    plan_at(app, mode, now, None)
        .instrument(info_span!("plan", ?mode, %now))
        .await
}

/// [`plan`] under the leader lease `fence`: every write batch checks it is still current and
/// the run ends with [`StoreError::Fenced`] (nothing of that batch written) once it is not.
pub async fn plan_as_leader(
    app: &App,
    mode: PlanMode,
    fence: LeaderFence,
) -> Result<PlanReport, PlanError> {
    let now = app.clock.now();
    let span = info_span!("plan", ?mode, %now, generation = fence.generation);
    plan_at(app, mode, now, Some(fence)).instrument(span).await
}

/// Subscribers read, ranked and written per page: memory stays flat however many there are,
/// and one page is read while the previous one is ranked and the one before is written.
const PAGE_SIZE: u32 = 2_000;

/// What a page of ranking produced: the deliveries to write, and the subscribers whose
/// interests no longer parse (counted, logged, skipped).
struct RankedPage {
    plans: Vec<PlannedDelivery>,
    bad_rows: usize,
}

/// Reads the next page of active subscribers after `after` and keeps those due now without a
/// delivery for their date, with what ranking reads about them. `None` when no subscriber is
/// left; otherwise the page's last id (where the next page starts) and its due subscribers.
/// The planner reads through this, and so does `send --dry-run`.
pub async fn due_page(
    app: &App,
    after: i64,
    now: DateTime<Utc>,
    mode: PlanMode,
    oldest: DateTime<Utc>,
    report: &mut PlanReport,
) -> Result<Option<(i64, Vec<Due>)>, PlanError> {
    let rows = app.store.active_subscribers_after(after, PAGE_SIZE).await?;
    let Some(last) = rows.last().map(|r| r.id) else {
        return Ok(None);
    };
    let mut due = Vec::new();
    for row in rows {
        match row.parse() {
            Ok(subscriber) => {
                if let Some(date) = due_date(&subscriber, now, mode) {
                    due.push((subscriber, date));
                }
            }
            Err(e) => {
                warn!(error = %e, "skipping a subscriber row that cannot be read");
                report.bad_rows += 1;
            }
        }
    }
    let Some(first_date) = due.iter().map(|(_, d)| *d).min() else {
        return Ok(Some((last, Vec::new())));
    };
    let history = app
        .store
        .page_history(after, last, first_date, oldest)
        .await?;
    due.retain(|(s, d)| !history.planned_dates.contains(&(s.id.0, d.to_string())));
    Ok(Some((last, recipients(app, due, history, oldest).await?)))
}

/// The one assembly from a page's rows (`history`, read for ids covering every subscriber in
/// `due`) to what ranking reads: the window since their previous digest, the papers they
/// already have, and their profile signals ([`ProfileSignals::new`]). Reads the page's example
/// papers in one statement.
async fn recipients(
    app: &App,
    due: Vec<(Subscriber, DigestDate)>,
    mut history: PageHistory,
    oldest: DateTime<Utc>,
) -> Result<Vec<Due>, PlanError> {
    let mut example_ids: Vec<String> = due
        .iter()
        .filter_map(|(s, _)| history.profiles.get(&s.id.0))
        .flat_map(|p| p.examples.iter().cloned())
        .collect();
    example_ids.sort_unstable();
    example_ids.dedup();
    let examples: HashMap<String, Paper> = if example_ids.is_empty() {
        HashMap::new()
    } else {
        app.store
            .papers_by_ids(&example_ids)
            .await?
            .into_iter()
            .map(|p| (p.paper.id.to_string(), p.paper))
            .collect()
    };
    // The vectors ranking reads: the voted and example papers', and the interests' clauses'.
    let mut paper_ids: Vec<String> = example_ids;
    paper_ids.extend(
        due.iter()
            .filter_map(|(s, _)| history.votes.get(&s.id.0))
            .flatten()
            .map(|v| v.paper_id.clone()),
    );
    paper_ids.sort_unstable();
    paper_ids.dedup();
    let paper_vectors = app.store.paper_vectors(&paper_ids).await?;
    let mut clauses: Vec<String> = due
        .iter()
        .flat_map(|(s, _)| meaning_clauses(s.interests.as_str()))
        .collect();
    clauses.sort_unstable();
    clauses.dedup();
    let clause_vectors = app.store.interest_vectors(&clauses).await?;
    Ok(due
        .into_iter()
        .map(|(subscriber, date)| {
            let id = subscriber.id.0;
            let window_start = history
                .last_planned
                .get(&id)
                .map_or(oldest, |last| (*last).max(oldest));
            let mut known: HashSet<String> = history
                .delivered
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, seen)| *seen >= window_start)
                .map(|(paper, _)| paper)
                .collect();
            let stated = history.profiles.remove(&id).unwrap_or_default();
            let liked_examples: Vec<(&Paper, Option<&Embedding>)> = stated
                .examples
                .iter()
                .filter_map(|e| examples.get(e).map(|p| (p, paper_vectors.get(e))))
                .collect();
            known.extend(stated.examples.iter().cloned());
            let votes = history.votes.remove(&id).unwrap_or_default();
            let mut signals = ProfileSignals::new(
                stated,
                votes.iter().map(|v| {
                    (
                        v.vote,
                        v.title.as_str(),
                        v.abstract_text.as_str(),
                        paper_vectors.get(&v.paper_id),
                    )
                }),
                liked_examples,
            );
            let clauses_without_vectors =
                with_clause_vectors(&mut signals, &subscriber.interests, &clause_vectors);
            Due {
                recipient: Recipient {
                    interests: subscriber.interests.clone(),
                    max_papers: subscriber.max_papers,
                    window_start,
                    known,
                    signals,
                    clauses_without_vectors,
                },
                subscriber,
                date,
            }
        })
        .collect())
}

/// Subscribers ranked together ([`Candidates::digests`]: their interests' clauses scored in
/// one product): small enough that the workers share a page evenly, large enough that a
/// product covers many clauses.
pub const RANK_SLICE: usize = 64;

/// Ranks a page on every core: the page is cut into slices, each ranked on a blocking thread
/// against the shared, read-only candidate index.
async fn rank_page(
    candidates: Arc<Candidates>,
    page: Vec<Due>,
    now: DateTime<Utc>,
) -> Result<RankedPage, PlanError> {
    // One worker per core, each taking the next small slice of the page until none is left.
    // Why not one fixed share per core: the database writer runs on the same cores, and the
    // share that had to make room for it finished last while the other core stood idle.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let subscribers = Arc::new(page);
    let cursor = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..cores.min(subscribers.len().div_ceil(RANK_SLICE)).max(1))
        .map(|_| {
            let (candidates, subscribers, cursor) =
                (candidates.clone(), subscribers.clone(), cursor.clone());
            tokio::task::spawn_blocking(move || {
                let mut done = Vec::new();
                loop {
                    let start = cursor.fetch_add(RANK_SLICE, std::sync::atomic::Ordering::Relaxed);
                    if start >= subscribers.len() {
                        return Ok(done);
                    }
                    let slice = &subscribers[start..(start + RANK_SLICE).min(subscribers.len())];
                    done.push((start, rank_chunk(&candidates, slice, now)?));
                }
            })
        })
        .collect();
    let mut slices = Vec::new();
    for worker in workers {
        let ranked: Result<Vec<(usize, RankedPage)>, PlanError> = worker
            .await
            .map_err(|e| PlanError::Matching(format!("a ranking thread stopped: {e}")))?;
        slices.extend(ranked?);
    }
    // In page order, as one worker alone would have produced them.
    slices.sort_unstable_by_key(|(start, _)| *start);
    let mut out = RankedPage {
        plans: Vec::with_capacity(subscribers.len()),
        bad_rows: 0,
    };
    for (_, part) in slices {
        out.plans.extend(part.plans);
        out.bad_rows += part.bad_rows;
    }
    Ok(out)
}

fn rank_chunk(
    candidates: &Candidates,
    subscribers: &[Due],
    now: DateTime<Utc>,
) -> Result<RankedPage, PlanError> {
    let mut out = RankedPage {
        plans: Vec::with_capacity(subscribers.len()),
        bad_rows: 0,
    };
    let recipients: Vec<&Recipient> = subscribers.iter().map(|d| &d.recipient).collect();
    for (due, picks) in subscribers.iter().zip(candidates.digests(&recipients)) {
        let picks = match picks {
            Ok(p) => p,
            Err(PlanError::Interests(e)) => {
                warn!(subscriber = %due.subscriber.id, error = %e, "skipping a subscriber whose interests do not parse");
                out.bad_rows += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        out.plans.push(PlannedDelivery {
            subscriber_id: due.subscriber.id,
            digest_date: due.date,
            planned_at: now,
            message_id: message_key(&due.subscriber, due.date),
            papers: picks
                .iter()
                .enumerate()
                .map(|(rank, pick)| PlannedPaper {
                    paper_id: candidates.papers[pick.index].paper.id.to_string(),
                    rank: rank as u32 + 1,
                    score: pick.score,
                    reason: pick.explanation.to_stored_json(),
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Deliveries written per transaction: few enough that an interrupted run keeps most of its
/// work, many enough that commits cost nothing next to ranking.
const WRITE_BATCH: usize = 250;

/// Writes a ranked page, a transaction per [`WRITE_BATCH`], and counts what was written.
async fn write_page(
    store: crate::store::Store,
    plans: Vec<PlannedDelivery>,
    fence: Option<LeaderFence>,
) -> Result<PlanReport, PlanError> {
    let mut report = PlanReport::default();
    for batch in plans.chunks(WRITE_BATCH) {
        let outcomes = store.plan_deliveries(batch, fence.as_ref()).await?;
        for (plan, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Some(_) if plan.papers.is_empty() => report.empty += 1,
                Some(_) => report.planned += 1,
                None => {
                    debug!(subscriber = %plan.subscriber_id, "already planned by another run")
                }
            }
        }
    }
    Ok(report)
}

async fn plan_at(
    app: &App,
    mode: PlanMode,
    now: DateTime<Utc>,
    fence: Option<LeaderFence>,
) -> Result<PlanReport, PlanError> {
    let mut report = PlanReport::default();
    let oldest = now - Duration::days(i64::from(app.settings.digest.max_age_days));
    let started = std::time::Instant::now();
    let mut timings = PlanTimings::default();
    // Built when the first due subscriber turns up: a run with nobody due reads no papers.
    let mut candidates: Option<Arc<Candidates>> = None;
    let mut writing: Option<tokio::task::JoinHandle<Result<PlanReport, PlanError>>> = None;
    let mut next = due_page(app, 0, now, mode, oldest, &mut report).await?;
    while let Some((last, page)) = next {
        report.due += page.len();
        report.words_only += page
            .iter()
            .filter(|d| d.recipient.clauses_without_vectors > 0)
            .count();
        if page.is_empty() {
            next = due_page(app, last, now, mode, oldest, &mut report).await?;
            continue;
        }
        let index = match &candidates {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(timed(&mut timings.candidates, Candidates::load(app, now)).await?);
                info!(candidates = c.papers.len(), "planning digests");
                candidates = Some(c.clone());
                c
            }
        };
        // Rank this page while the next one is read (and the previous one is still being
        // written by its own task).
        let mut page_report = PlanReport::default();
        let (ranked, following) = tokio::join!(
            timed(&mut timings.rank, rank_page(index, page, now)),
            timed(
                &mut timings.read,
                due_page(app, last, now, mode, oldest, &mut page_report)
            )
        );
        let ranked = ranked?;
        report.bad_rows += ranked.bad_rows + page_report.bad_rows;
        next = following?;
        if let Some(previous) = writing.take() {
            timed(&mut timings.write_wait, add_written(&mut report, previous)).await?;
        }
        writing = Some(tokio::spawn(
            write_page(app.store.clone(), ranked.plans, fence.clone()).in_current_span(),
        ));
    }
    if let Some(previous) = writing.take() {
        timed(&mut timings.write_wait, add_written(&mut report, previous)).await?;
    }
    if report.due == 0 {
        debug!("nobody is due");
        return Ok(report);
    }
    if report.words_only > 0 {
        warn!(
            subscribers = report.words_only,
            "some subscribers' interests have no vector yet, so their digests were matched by \
             words alone; `paperboy db embed` computes the missing vectors"
        );
    }
    // Where the time went: reading and ranking overlap, and writing overlaps both, so
    // `write_wait_ms` is only the time planning stood still for the database.
    info!(
        due = report.due,
        planned = report.planned,
        empty = report.empty,
        bad_rows = report.bad_rows,
        total_ms = started.elapsed().as_millis() as u64,
        candidates_ms = timings.candidates.as_millis() as u64,
        read_ms = timings.read.as_millis() as u64,
        rank_ms = timings.rank.as_millis() as u64,
        write_wait_ms = timings.write_wait.as_millis() as u64,
        "planning done"
    );
    Ok(report)
}

/// Time spent in each stage of one planning run, for the "planning done" log line.
#[derive(Default)]
struct PlanTimings {
    candidates: std::time::Duration,
    read: std::time::Duration,
    rank: std::time::Duration,
    write_wait: std::time::Duration,
}

/// Runs `work`, adding the time it took to `spent`.
async fn timed<T>(spent: &mut std::time::Duration, work: impl Future<Output = T>) -> T {
    let start = std::time::Instant::now();
    let out = work.await;
    *spent += start.elapsed();
    out
}

async fn add_written(
    report: &mut PlanReport,
    task: tokio::task::JoinHandle<Result<PlanReport, PlanError>>,
) -> Result<(), PlanError> {
    let written = task
        .await
        .map_err(|e| PlanError::Matching(format!("writing deliveries stopped: {e}")))??;
    report.planned += written.planned;
    report.empty += written.empty;
    Ok(())
}

/// The unique part of a delivery's Message-ID. Random, so nothing about the subscriber can be
/// guessed from it; fixed once planned, so a resend carries the same id.
fn message_key(subscriber: &Subscriber, date: DigestDate) -> String {
    use rand::Rng;
    let nonce: u64 = rand::thread_rng().r#gen();
    format!("digest.{date}.{}.{nonce:016x}", subscriber.id)
}
