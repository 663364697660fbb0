//! The plan job: decide who is due a digest now and which papers it holds.
//!
//! A subscriber is due when they are active, their frequency includes their local date, their
//! local send time has passed (or the operator said `--now`) and they have no delivery for that
//! local date yet. Their digest holds the papers first seen since their previous digest (at
//! most `digest.max_age_days` back), never sent to them before, ranked against their interests,
//! above the relevance floor, at most their maximum. The delivery and its papers are written in
//! one transaction; planning the same date twice is a no-op thanks to the unique key.
//!
//! The daemon plans as the holder of the leader lease ([`plan_as_leader`]): each write batch
//! checks the lease's generation in its transaction, so an instance that lost the lease (it
//! was paused past its expiry and another took over) stops instead of planning a second time.
//! `paperboy send` plans without the lease: the operator asked for it, and the unique keys keep
//! a second planning of the same date harmless.

use super::App;
use crate::matching::{Blend, CandidateIndex, CategoryMode, Pick, ProfileInput};
use crate::model::{DigestDate, Subscriber};
use crate::store::{LeaderFence, PlannedDelivery, PlannedPaper, StoreError, StoredPaper};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
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
}

/// The papers a planning run chooses from, indexed once for every subscriber.
pub struct Candidates {
    pub papers: Vec<StoredPaper>,
    pub index: CandidateIndex,
    /// Papers first seen before this are too old for any digest.
    pub oldest: DateTime<Utc>,
    /// Paper id → position in `papers`, to turn a subscriber's known papers into positions
    /// once instead of hashing every candidate's id for every subscriber.
    positions: std::collections::HashMap<String, usize>,
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
        // Indexing is CPU work: off the runtime's threads, which serve the web meanwhile.
        let (papers, index) = tokio::task::spawn_blocking(move || {
            let index = CandidateIndex::build(papers.iter().map(|p| &p.paper));
            (papers, index)
        })
        .await
        .map_err(|e| PlanError::Matching(e.to_string()))?;
        let index = index.map_err(|e| PlanError::Matching(e.to_string()))?;
        let positions = papers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.paper.id.to_string(), i))
            .collect();
        Ok(Candidates {
            papers,
            index,
            oldest,
            positions,
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
        let mut known = vec![false; self.papers.len()];
        for id in delivered {
            if let Some(&i) = self.positions.get(id) {
                known[i] = true;
            }
        }
        self.index
            .rank_profile(
                &parsed,
                blend,
                |i| !known[i] && self.papers[i].first_seen_at >= window_start,
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

/// One page of due subscribers with what planning knows about them, ready to rank.
struct DuePage {
    subscribers: Vec<DueSubscriber>,
}

struct DueSubscriber {
    subscriber: Subscriber,
    date: DigestDate,
    window_start: DateTime<Utc>,
    /// Papers they already have, and the example papers they gave: never sent (again).
    known: HashSet<String>,
    profile: ProfileInput,
}

/// What a page of ranking produced: the deliveries to write, and the subscribers whose
/// interests no longer parse (counted, logged, skipped).
struct RankedPage {
    plans: Vec<PlannedDelivery>,
    bad_rows: usize,
}

/// Reads the next page of active subscribers after `after` and keeps those due now without a
/// delivery for their date, with their history and profile. `None` when no subscriber is left.
async fn read_page(
    app: &App,
    after: i64,
    now: DateTime<Utc>,
    mode: PlanMode,
    oldest: DateTime<Utc>,
    report: &mut PlanReport,
) -> Result<Option<(i64, DuePage)>, PlanError> {
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
        return Ok(Some((
            last,
            DuePage {
                subscribers: Vec::new(),
            },
        )));
    };
    let mut history = app
        .store
        .page_history(after, last, first_date, oldest)
        .await?;
    due.retain(|(s, d)| !history.planned_dates.contains(&(s.id.0, d.to_string())));

    // Example papers of the whole page in one read.
    let mut example_ids: Vec<String> = due
        .iter()
        .filter_map(|(s, _)| history.profiles.get(&s.id.0))
        .flat_map(|p| p.examples.iter().cloned())
        .collect();
    example_ids.sort_unstable();
    example_ids.dedup();
    let example_texts: std::collections::HashMap<String, String> = if example_ids.is_empty() {
        Default::default()
    } else {
        app.store
            .papers_by_ids(&example_ids)
            .await?
            .into_iter()
            .map(|p| {
                let text = format!("{}\n{}", p.paper.title, p.paper.abstract_text);
                (p.paper.id.to_string(), text)
            })
            .collect()
    };

    let subscribers = due
        .into_iter()
        .map(|(subscriber, date)| {
            let id = subscriber.id.0;
            let start = history
                .last_planned
                .get(&id)
                .map_or(oldest, |last| (*last).max(oldest));
            let mut known: HashSet<String> = history
                .delivered
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, seen)| *seen >= start)
                .map(|(paper, _)| paper)
                .collect();
            let row = history.profiles.remove(&id).unwrap_or_default();
            let mut liked = Vec::new();
            let mut disliked = Vec::new();
            for (vote, text) in history.votes.remove(&id).unwrap_or_default() {
                if vote > 0 {
                    liked.push(text);
                } else {
                    disliked.push(text);
                }
            }
            liked.extend(
                row.examples
                    .iter()
                    .filter_map(|e| example_texts.get(e).cloned()),
            );
            known.extend(row.examples.iter().cloned());
            DueSubscriber {
                subscriber,
                date,
                window_start: start,
                known,
                profile: ProfileInput {
                    authors: row.authors,
                    categories: row.categories,
                    category_mode: CategoryMode::parse(&row.category_mode).unwrap_or_default(),
                    liked,
                    disliked,
                },
            }
        })
        .collect();
    Ok(Some((last, DuePage { subscribers })))
}

/// Ranks a page on every core: the page is cut into one chunk per core, each ranked on a
/// blocking thread against the shared, read-only candidate index.
async fn rank_page(
    candidates: Arc<Candidates>,
    page: DuePage,
    blend: Blend,
    now: DateTime<Utc>,
) -> Result<RankedPage, PlanError> {
    // One worker per core, each taking the next small slice of the page until none is left.
    // Why not one fixed share per core: the database writer runs on the same cores, and the
    // share that had to make room for it finished last while the other core stood idle.
    const SLICE: usize = 64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let subscribers = Arc::new(page.subscribers);
    let cursor = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..cores.min(subscribers.len().div_ceil(SLICE)).max(1))
        .map(|_| {
            let (candidates, subscribers, cursor) =
                (candidates.clone(), subscribers.clone(), cursor.clone());
            tokio::task::spawn_blocking(move || {
                let mut done = Vec::new();
                loop {
                    let start = cursor.fetch_add(SLICE, std::sync::atomic::Ordering::Relaxed);
                    if start >= subscribers.len() {
                        return Ok(done);
                    }
                    let slice = &subscribers[start..(start + SLICE).min(subscribers.len())];
                    done.push((start, rank_chunk(&candidates, slice, &blend, now)?));
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
    subscribers: &[DueSubscriber],
    blend: &Blend,
    now: DateTime<Utc>,
) -> Result<RankedPage, PlanError> {
    let mut out = RankedPage {
        plans: Vec::with_capacity(subscribers.len()),
        bad_rows: 0,
    };
    for due in subscribers {
        let picks = match candidates.rank_for(
            &due.subscriber,
            &due.profile,
            due.window_start,
            &due.known,
            blend,
        ) {
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
    let blend = Blend {
        min_score: app.settings.matching.min_score,
        trending_weight: app.settings.matching.trending_weight,
    };
    let started = std::time::Instant::now();
    let mut timings = PlanTimings::default();
    // Built when the first due subscriber turns up: a run with nobody due reads no papers.
    let mut candidates: Option<Arc<Candidates>> = None;
    let mut writing: Option<tokio::task::JoinHandle<Result<PlanReport, PlanError>>> = None;
    let mut next = read_page(app, 0, now, mode, oldest, &mut report).await?;
    while let Some((last, page)) = next {
        report.due += page.subscribers.len();
        if page.subscribers.is_empty() {
            next = read_page(app, last, now, mode, oldest, &mut report).await?;
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
            timed(&mut timings.rank, rank_page(index, page, blend, now)),
            timed(
                &mut timings.read,
                read_page(app, last, now, mode, oldest, &mut page_report)
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
