//! The send job: claim due deliveries under a lease, render, send, record the outcome.
//!
//! What for: getting every planned digest out exactly once as far as paperboy can tell, and
//! never losing one. Not for: planning (`plan`) or SMTP details (`mail`).
//!
//! The rules, and why:
//! - A delivery is marked `sent` only after the SMTP server answered 2xx to the end of DATA.
//!   A crash between that answer and the `UPDATE` leaves the row `sending`; its lease runs out
//!   and it is sent again, with the same Message-ID so receivers can drop the duplicate. Only
//!   messages in flight at a crash can be duplicated; none is ever lost.
//! - Leases are short ([`LEASE`]) and renewed while we work ([`LEASE`] / 4), so a dead worker's
//!   rows come back within minutes, and a live worker never loses a row to a slow server. On
//!   start, leases of workers on this host whose process is gone are ended at once.
//! - A temporary failure (4xx, timeout, dropped connection) goes to `retry` with exponential
//!   backoff and jitter; past `mail.retry_max_hours` after planning it is `failed`.
//! - A 5xx at RCPT is a hard bounce: `failed`, counted on the subscriber, who is suspended
//!   after `mail.max_hard_bounces`. Any other 5xx is `failed` for this delivery only.
//! - A stored address that cannot be mailed (it no longer parses as an `EmailAddress`, or
//!   lettre refuses it) is `failed` at once: it would fail the same way at every retry.
//! - When most recent attempts fail temporarily (the server is down or throttling), the
//!   circuit breaker opens: nobody is tried for `mail.circuit_pause_secs` (doubling while it
//!   keeps failing), so an outage costs a few deliveries one retry instead of all of them all.
//! - On shutdown no new message is started; the ones in flight finish and are recorded; the
//!   rest of the claimed rows are handed back at once.

use crate::digest::{DigestPaper, DigestView, SnippetPart};
use crate::jobs::App;
use crate::links::{Claims, Purpose};
use crate::mail::{
    DigestMessage, Failure, FailureKind, FailureStage, MessageError, build_digest_message,
};
use crate::matching::Explanation;
use crate::model::{Subscriber, SubscriberStatus};
use crate::store::{ClaimedDelivery, DeliveryPaper, StoreError, StoredPaper, SubscriberRow};
use chrono::{DateTime, Duration, Utc};
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};

/// How long a claimed delivery stays ours without renewal. Renewed every quarter of it while
/// this worker runs; a crashed worker's deliveries are claimable again after at most this.
pub const LEASE: Duration = Duration::minutes(2);
/// The first retry waits this long; each further one doubles it.
pub const RETRY_BASE: Duration = Duration::minutes(2);
const RETRY_MAX: Duration = Duration::hours(6);

/// The circuit breaker looks at this many recent attempts...
const BREAKER_WINDOW: usize = 20;
/// ...needs at least this many before judging...
const BREAKER_MIN_SAMPLES: usize = 10;
/// ...and opens when at least this share of them failed temporarily.
const BREAKER_RATIO: f64 = 0.8;
/// The longest pause, however long the outage.
const BREAKER_MAX_PAUSE: Duration = Duration::hours(1);

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SendReport {
    pub sent: usize,
    /// Temporarily failed; will be tried again.
    pub retrying: usize,
    pub failed: usize,
    /// Addresses suspended for hard bounces in this run.
    pub suspended: usize,
    /// Claimed, not tried, handed back (shutdown or an open circuit).
    pub released: usize,
    /// True when the circuit breaker stopped this run early.
    pub circuit_open: bool,
    /// Temporary errors seen, newest last (a few, for the operator).
    pub errors: Vec<String>,
}

/// Where sent messages go and whether anything is recorded.
#[derive(Clone)]
pub struct SendOptions {
    pub mailer: crate::mail::Mailer,
    /// Identifies this worker's leases.
    pub owner: String,
    /// Called after each delivery is settled, for progress bars.
    pub on_progress: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Shared across runs, so an outage seen by one run pauses the next.
    pub breaker: Arc<Breaker>,
}

impl SendOptions {
    pub fn new(mailer: crate::mail::Mailer, owner: String) -> Self {
        SendOptions {
            mailer,
            owner,
            on_progress: None,
            breaker: Arc::new(Breaker::default()),
        }
    }
}

/// The circuit breaker: a window of recent outcomes and, when open, until when.
#[derive(Default)]
pub struct Breaker {
    state: Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    /// true = failed temporarily.
    recent: VecDeque<bool>,
    open_until: Option<DateTime<Utc>>,
    /// Consecutive trips without a success in between: each doubles the pause.
    trips: u32,
}

impl Breaker {
    /// Until when sending is paused, if it is at `now`.
    pub fn open_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let state = self.state.lock().expect("breaker lock");
        state.open_until.filter(|until| *until > now)
    }

    /// Records one attempt; returns the pause end when this one opened the circuit.
    fn record(
        &self,
        failed_temporarily: bool,
        now: DateTime<Utc>,
        pause: Duration,
    ) -> Option<DateTime<Utc>> {
        let mut state = self.state.lock().expect("breaker lock");
        if !failed_temporarily {
            state.trips = 0;
        }
        state.recent.push_back(failed_temporarily);
        if state.recent.len() > BREAKER_WINDOW {
            state.recent.pop_front();
        }
        if state.open_until.is_some_and(|u| u > now) || state.recent.len() < BREAKER_MIN_SAMPLES {
            return None;
        }
        let failures = state.recent.iter().filter(|f| **f).count();
        if (failures as f64) < BREAKER_RATIO * state.recent.len() as f64 {
            return None;
        }
        let factor = 2i32.saturating_pow(state.trips.min(10));
        let until = now + (pause * factor).min(BREAKER_MAX_PAUSE);
        state.trips += 1;
        // Judge the next period afresh.
        state.recent.clear();
        state.open_until = Some(until);
        Some(until)
    }
}

/// The outcome of one delivery attempt.
enum Outcome {
    Sent,
    Retry(String),
    /// A 5xx at RCPT: the address does not take mail.
    Bounced(String),
    Failed(String),
    /// Not tried after all (the circuit opened while it waited): hand it back.
    NotTried,
}

/// Sends every due delivery, `concurrency` at a time, until none is due, `stop` is set or the
/// circuit breaker opens.
pub async fn send_due(
    app: &App,
    options: &SendOptions,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> Result<SendReport, StoreError> {
    reclaim_dead_local_leases(app).await?;
    // Renew our leases while this run lasts, however long one batch takes.
    let (done_tx, done_rx) = watch::channel(false);
    let renewer = tokio::spawn(renew_leases(app.clone(), options.owner.clone(), done_rx));
    let (marker, marker_task) = SentMarker::start(app.clone(), options.owner.clone());
    let result = send_batches(app, options, &marker, concurrency, stop).await;
    // Every task has ended, so every sent delivery is recorded; let the marker finish.
    drop(marker);
    let _ = marker_task.await;
    let _ = done_tx.send(true);
    let _ = renewer.await;
    // Whatever happened, nothing stays leased to us once we stop.
    let released = app.store.release_leases(&options.owner).await?;
    let mut report = result?;
    if released > 0 {
        info!(released, "handed unsent deliveries back");
        report.released += released as usize;
    }
    Ok(report)
}

async fn send_batches(
    app: &App,
    options: &SendOptions,
    marker: &SentMarker,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) -> Result<SendReport, StoreError> {
    let mut report = SendReport::default();
    let limiter = Arc::new(Semaphore::new(concurrency.max(1)));
    // The next batch is claimed and read while this one is being sent. Before, each batch was
    // claimed, read, sent and waited for in turn: every batch ended with its slowest message
    // while the other connections stood idle, and then waited for the database.
    let (batches, mut next_batch) = mpsc::channel(1);
    let feeder = tokio::spawn(feed_batches(
        app.clone(),
        options.clone(),
        (concurrency * 4) as u32,
        stop.clone(),
        batches,
    ));
    let mut tasks = tokio::task::JoinSet::new();
    let mut failure = None;
    while let Some(next) = next_batch.recv().await {
        let (batch, data): (Vec<ClaimedDelivery>, Arc<BatchData>) = match next {
            Ok(next) => next,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let mut untried = Vec::new();
        for delivery in batch {
            let permit = if *stop.borrow_and_update() {
                None
            } else {
                // Wait for a free sender, unless asked to stop meanwhile.
                tokio::select! {
                    p = limiter.clone().acquire_owned() => Some(p.expect("semaphore is never closed")),
                    _ = stop.wait_for(|s| *s) => None,
                }
            };
            let Some(permit) = permit else {
                // Shutting down: hand it back instead of letting its lease run out.
                untried.push(delivery.id);
                continue;
            };
            let app = app.clone();
            let options = options.clone();
            let data = data.clone();
            let marker = marker.clone();
            let span = info_span!("delivery", delivery = delivery.id, subscriber = %delivery.subscriber_id, date = %delivery.digest_date);
            tasks.spawn(
                async move {
                    let outcome = if options.breaker.open_until(app.clock.now()).is_some() {
                        Outcome::NotTried
                    } else {
                        app.metrics
                            .time_send(deliver(&app, &options, &delivery, &data))
                            .await
                    };
                    let settled = settle(&app, &marker, &options.owner, &delivery, outcome).await;
                    drop(permit);
                    if let Some(f) = &options.on_progress {
                        f();
                    }
                    settled
                }
                .instrument(span),
            );
            // Tally what has finished, so the set holds only what is in flight.
            while let Some(joined) = tasks.try_join_next() {
                report.add(joined);
            }
        }
        // A database error here must not return at once: that would drop the tasks still
        // sending, and their deliveries, accepted but not marked, would go out again.
        for id in untried {
            match app.store.release_lease(id, &options.owner).await {
                Ok(released) => report.released += usize::from(released),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if failure.is_some() {
            break;
        }
    }
    // Dropping the receiver stops the feeder; a batch it claimed and could not hand over is
    // released with the rest of our leases when the run ends (`send_due`).
    drop(next_batch);
    report.circuit_open = feeder.await.unwrap_or(false);
    while let Some(joined) = tasks.join_next().await {
        report.add(joined);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

type ClaimedBatch = Result<(Vec<ClaimedDelivery>, Arc<BatchData>), StoreError>;

/// Claims due deliveries `batch_size` at a time and reads what they need, one batch ahead of
/// the senders, until none is due, `stop` is set, the receiver is gone or the circuit breaker
/// opens. Returns whether the breaker stopped it.
async fn feed_batches(
    app: App,
    options: SendOptions,
    batch_size: u32,
    stop: watch::Receiver<bool>,
    batches: mpsc::Sender<ClaimedBatch>,
) -> bool {
    let mut papers = PaperCache::default();
    loop {
        if *stop.borrow() {
            return false;
        }
        let now = app.clock.now();
        if let Some(until) = options.breaker.open_until(now) {
            info!(until = %until, "the SMTP server refuses most messages; sending is paused");
            return true;
        }
        let claimed = app
            .store
            .claim_due(&options.owner, now, now, now + LEASE, batch_size)
            .await;
        let next = match claimed {
            Ok(batch) if batch.is_empty() => return false,
            Ok(batch) => BatchData::load(&app, &batch, &mut papers)
                .await
                .map(|data| (batch, Arc::new(data))),
            Err(e) => Err(e),
        };
        let failed = next.is_err();
        if batches.send(next).await.is_err() || failed {
            return false;
        }
    }
}

impl SendReport {
    fn add(&mut self, joined: Result<Result<Settled, StoreError>, tokio::task::JoinError>) {
        match joined {
            Ok(Ok(Settled::Sent)) => self.sent += 1,
            Ok(Ok(Settled::Retry(e))) => {
                self.retrying += 1;
                push_error(&mut self.errors, e);
            }
            Ok(Ok(Settled::Failed(e, suspended))) => {
                self.failed += 1;
                self.suspended += usize::from(suspended);
                push_error(&mut self.errors, e);
            }
            Ok(Ok(Settled::Released)) => self.released += 1,
            Ok(Ok(Settled::LeaseLost)) => {}
            Ok(Err(e)) => warn!(error = %e, "could not record a delivery's outcome"),
            Err(e) => warn!(error = %e, "a send task panicked"),
        }
    }
}

/// Marks sent deliveries in groups: each task hands its id over and waits for the answer,
/// so a delivery is still recorded before its task ends (and before shutdown completes), but
/// the messages that finish while one `UPDATE` runs share the next one. One statement per
/// message was the largest database cost of sending.
#[derive(Clone)]
struct SentMarker {
    tx: mpsc::UnboundedSender<(i64, oneshot::Sender<Result<bool, String>>)>,
}

impl SentMarker {
    fn start(app: App, owner: String) -> (SentMarker, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) =
            mpsc::unbounded_channel::<(i64, oneshot::Sender<Result<bool, String>>)>();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < 256 {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let ids: Vec<i64> = group.iter().map(|(id, _)| *id).collect();
                match app
                    .store
                    .mark_sent_many(&ids, &owner, app.clock.now())
                    .await
                {
                    Ok(kept) => {
                        for (id, ack) in group {
                            let _ = ack.send(Ok(kept.contains(&id)));
                        }
                    }
                    Err(e) => {
                        let e = e.to_string();
                        for (_, ack) in group {
                            let _ = ack.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        (SentMarker { tx }, task)
    }

    /// Records one delivery as sent; `false` when its lease was lost meanwhile.
    async fn mark(&self, id: i64) -> Result<bool, StoreError> {
        let (ack, answer) = oneshot::channel();
        let stopped = || StoreError::Conflict("the task recording sent deliveries stopped".into());
        self.tx.send((id, ack)).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| StoreError::Conflict(format!("cannot record a sent delivery: {e}")))
    }
}

/// Keeps this worker's leases alive until `done`.
async fn renew_leases(app: App, owner: String, mut done: watch::Receiver<bool>) {
    let every = (LEASE / 4)
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.wait_for(|d| *d) => return,
        }
        if let Err(e) = app
            .store
            .renew_leases(&owner, app.clock.now() + LEASE)
            .await
        {
            warn!(error = %e, "could not renew leases; they may be taken over");
        }
    }
}

/// Ends, at once, the leases held by paperboy processes on this host that no longer run
/// (killed, crashed), instead of waiting up to [`LEASE`] for them. Owners on other hosts,
/// and live processes, are left alone: their leases expire or are renewed as usual.
pub async fn reclaim_dead_local_leases(app: &App) -> Result<u64, StoreError> {
    let host = crate::daemon::hostname();
    let mut reclaimed = 0;
    for owner in app.store.lease_owners().await? {
        let mut parts = owner.rsplitn(3, ':');
        let (_nonce, pid, owner_host) = (parts.next(), parts.next(), parts.next());
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if owner_host != Some(host.as_str()) {
            continue;
        }
        // Our own pid under another owner name is an earlier life of this pid: dead too.
        let dead =
            pid == std::process::id() || !std::path::Path::new(&format!("/proc/{pid}")).exists();
        if dead {
            let n = app.store.expire_leases_of(&owner).await?;
            if n > 0 {
                info!(owner = %owner, deliveries = n, "took back the leases of a dead worker");
            }
            reclaimed += n;
        }
    }
    Ok(reclaimed)
}

fn push_error(errors: &mut Vec<String>, e: String) {
    if errors.len() < 5 && !errors.contains(&e) {
        errors.push(e);
    }
}

enum Settled {
    Sent,
    Retry(String),
    /// The error, and whether it suspended the address.
    Failed(String, bool),
    Released,
    LeaseLost,
}

async fn settle(
    app: &App,
    marker: &SentMarker,
    owner: &str,
    delivery: &ClaimedDelivery,
    outcome: Outcome,
) -> Result<Settled, StoreError> {
    let now = app.clock.now();
    let mail = &app.settings.mail;
    let max_age = Duration::from_std(mail.retry_max_age).unwrap_or(Duration::hours(24));
    let (kept, settled) = match outcome {
        Outcome::Sent => {
            info!("digest sent");
            (marker.mark(delivery.id).await?, Settled::Sent)
        }
        Outcome::NotTried => (
            app.store.release_lease(delivery.id, owner).await?,
            Settled::Released,
        ),
        Outcome::Retry(e) => {
            let next = now + retry_delay(delivery.attempts);
            if next <= delivery.planned_at + max_age {
                warn!(error = %e, attempts = delivery.attempts, next_attempt = %next, "send failed; will retry");
                (
                    app.store.mark_retry(delivery.id, owner, next, &e).await?,
                    Settled::Retry(e),
                )
            } else {
                let e = format!(
                    "gave up after {} attempts over {} hours (mail.retry_max_hours): {e}",
                    delivery.attempts,
                    max_age.num_hours()
                );
                warn!(error = %e, "send failed for good");
                (
                    app.store.mark_failed(delivery.id, owner, &e).await?,
                    Settled::Failed(e, false),
                )
            }
        }
        Outcome::Bounced(e) => {
            let kept = app.store.mark_failed(delivery.id, owner, &e).await?;
            let bounce = app
                .store
                .record_hard_bounce(delivery.subscriber_id, &e, mail.max_hard_bounces, now)
                .await?;
            if bounce.suspended {
                warn!(hard_bounces = bounce.hard_bounces, error = %e, "address suspended after hard bounces");
            } else {
                warn!(hard_bounces = bounce.hard_bounces, error = %e, "hard bounce recorded");
            }
            (kept, Settled::Failed(e, bounce.suspended))
        }
        Outcome::Failed(e) => {
            warn!(error = %e, "send failed permanently");
            (
                app.store.mark_failed(delivery.id, owner, &e).await?,
                Settled::Failed(e, false),
            )
        }
    };
    app.metrics.delivery_settled(match &settled {
        Settled::Sent => crate::metrics::Settlement::Sent,
        Settled::Retry(e) => crate::metrics::Settlement::Retried(e),
        Settled::Failed(e, _) => crate::metrics::Settlement::Failed(e),
        _ => crate::metrics::Settlement::NotTried,
    });
    if !kept {
        warn!("the lease on this delivery expired before it was settled; another worker owns it");
        return Ok(Settled::LeaseLost);
    }
    Ok(settled)
}

/// Exponential backoff with up to 25% random jitter, so retries of many deliveries spread out.
fn retry_delay(attempts: i64) -> Duration {
    use rand::Rng;
    let exp = attempts.clamp(1, 20) as i32 - 1;
    let base = (RETRY_BASE * 2i32.saturating_pow(exp as u32)).min(RETRY_MAX);
    let jitter_ms = rand::thread_rng().gen_range(0..=base.num_milliseconds() / 4);
    base + Duration::milliseconds(jitter_ms)
}

async fn deliver(
    app: &App,
    options: &SendOptions,
    delivery: &ClaimedDelivery,
    data: &BatchData,
) -> Outcome {
    let prepared = match prepare(app, delivery, data).await {
        Ok(p) => p,
        Err(e) => return Outcome::Retry(e),
    };
    let (message, file_name) = match prepared {
        Prepared::Message(m, name) => (m, name),
        Prepared::Cancelled(why) => return Outcome::Failed(why),
    };
    let result = options.mailer.deliver(*message, &file_name).await;
    // The breaker judges the server, not the recipient: only temporary trouble counts
    // against it, and a 5xx (the server is up and answering) counts as a sign of health.
    let failed_temporarily = matches!(&result, Err(f) if f.kind == FailureKind::Temporary);
    let pause = Duration::from_std(app.settings.mail.circuit_pause).unwrap_or(Duration::minutes(1));
    if let Some(until) = options
        .breaker
        .record(failed_temporarily, app.clock.now(), pause)
    {
        warn!(until = %until, "most recent messages failed temporarily; pausing all sending");
    }
    classify(result)
}

fn classify(result: Result<(), Failure>) -> Outcome {
    match result {
        Ok(()) => Outcome::Sent,
        Err(f) if f.is_bad_recipient() => Outcome::Bounced(f.to_string()),
        Err(f) if f.kind == FailureKind::Permanent && f.stage != FailureStage::Connect => {
            Outcome::Failed(f.to_string())
        }
        // A 5xx while connecting (e.g. AUTH refused) is the operator's to fix, not the
        // subscriber's: keep the digest and try again later.
        Err(f) => Outcome::Retry(f.to_string()),
    }
}

enum Prepared {
    Message(Box<lettre::Message>, String),
    /// Not to be sent, now or later: the subscriber left since it was planned, or their
    /// stored address cannot be mailed (it no longer parses, or lettre refuses it).
    Cancelled(String),
}

/// What a claimed batch needs from the database, read with three queries for the whole batch
/// rather than three per message: at hundreds of messages a second, round trips to the
/// database were a third of the send job's CPU time.
pub struct BatchData {
    subscribers: HashMap<i64, SubscriberRow>,
    picks: HashMap<i64, Vec<DeliveryPaper>>,
    papers: HashMap<String, Arc<StoredPaper>>,
}

/// The papers read so far in one send run. A day's digests share a few thousand papers at
/// most, and each batch's digests name hundreds of them: reading each once per run instead of
/// once per batch took most of the reads off the database. A paper edited during the run is
/// shown as it was when first read, as it would have been had the run been faster.
#[derive(Default)]
struct PaperCache {
    papers: HashMap<String, Arc<StoredPaper>>,
}

impl PaperCache {
    /// Far above one run's candidates; past it the cache starts afresh, which bounds memory.
    const MAX: usize = 20_000;
}

impl BatchData {
    async fn load(
        app: &App,
        batch: &[ClaimedDelivery],
        cache: &mut PaperCache,
    ) -> Result<BatchData, StoreError> {
        let mut subscriber_ids: Vec<i64> = batch.iter().map(|d| d.subscriber_id.0).collect();
        subscriber_ids.sort_unstable();
        subscriber_ids.dedup();
        let subscribers = app
            .store
            .subscribers_by_ids(&subscriber_ids)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let delivery_ids: Vec<i64> = batch.iter().map(|d| d.id).collect();
        let picks = app.store.delivery_papers_of(&delivery_ids).await?;
        let mut paper_ids: Vec<String> = picks
            .values()
            .flatten()
            .map(|p| p.paper_id.clone())
            .collect();
        paper_ids.sort_unstable();
        paper_ids.dedup();
        let mut missing: Vec<String> = paper_ids
            .iter()
            .filter(|id| !cache.papers.contains_key(*id))
            .cloned()
            .collect();
        if cache.papers.len() + missing.len() > PaperCache::MAX {
            cache.papers.clear();
            missing = paper_ids.clone();
        }
        if !missing.is_empty() {
            for paper in app.store.papers_by_ids(&missing).await? {
                cache
                    .papers
                    .insert(paper.paper.id.to_string(), Arc::new(paper));
            }
        }
        let papers = paper_ids
            .into_iter()
            .filter_map(|id| cache.papers.get(&id).map(|p| (id, p.clone())))
            .collect();
        Ok(BatchData {
            subscribers,
            picks,
            papers,
        })
    }
}

async fn prepare(
    app: &App,
    delivery: &ClaimedDelivery,
    data: &BatchData,
) -> Result<Prepared, String> {
    let Some(row) = data.subscribers.get(&delivery.subscriber_id.0).cloned() else {
        return Ok(Prepared::Cancelled("the subscriber was deleted".into()));
    };
    let subscriber = match row.parse() {
        Ok(s) => s,
        Err(e) => return Ok(Prepared::Cancelled(e)),
    };
    // Invariant 3: whatever was planned, only an active subscriber is mailed.
    if subscriber.status != SubscriberStatus::Active {
        return Ok(Prepared::Cancelled(format!(
            "the subscriber is {} now",
            subscriber.status.as_str()
        )));
    }
    let picks = data
        .picks
        .get(&delivery.id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let view = view_from_picks(
        app,
        &subscriber,
        delivery.id,
        delivery.digest_date,
        picks,
        &data.papers,
    );
    if view.papers.is_empty() {
        return Ok(Prepared::Cancelled("the digest has no papers".into()));
    }
    let rendered = app.renderer.render(&view).map_err(|e| e.to_string())?;
    let message = match build_digest_message(
        &app.settings.mail.from,
        &DigestMessage {
            to: subscriber.email.clone(),
            message_key: delivery.message_id.clone(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            unsubscribe_url: view.unsubscribe_url.clone(),
            date: app.clock.now(),
        },
    ) {
        Ok(m) => m,
        // An address lettre refuses is refused at every attempt: retrying cannot help.
        Err(e @ MessageError::Recipient(..)) => return Ok(Prepared::Cancelled(e.to_string())),
        Err(e) => return Err(e.to_string()),
    };
    debug!(to = %subscriber.email, "message built");
    Ok(Prepared::Message(
        Box::new(message),
        delivery.message_id.clone(),
    ))
}

/// The digest as the email (and the browser view) shows it, from what was planned.
pub async fn digest_view(
    app: &App,
    subscriber: &Subscriber,
    delivery_id: i64,
    date: chrono::NaiveDate,
) -> Result<DigestView, String> {
    let picks = app
        .store
        .delivery_papers(delivery_id)
        .await
        .map_err(|e| e.to_string())?;
    let ids: Vec<String> = picks.iter().map(|p| p.paper_id.clone()).collect();
    let papers: HashMap<String, _> = app
        .store
        .papers_by_ids(&ids)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| (p.paper.id.to_string(), p))
        .collect();
    Ok(view_from_picks(
        app,
        subscriber,
        delivery_id,
        date,
        &picks,
        &papers,
    ))
}

/// The view of one planned delivery, from its picks and the papers they name.
fn view_from_picks(
    app: &App,
    subscriber: &Subscriber,
    delivery_id: i64,
    date: chrono::NaiveDate,
    picks: &[DeliveryPaper],
    papers: &HashMap<String, impl Borrow<StoredPaper>>,
) -> DigestView {
    let mut out = Vec::with_capacity(picks.len());
    for pick in picks {
        let Some(stored) = papers.get(&pick.paper_id).map(|p| p.borrow()) else {
            continue;
        };
        let explanation = Explanation::from_stored_json(&pick.reason, &stored.paper.abstract_text);
        out.push(digest_paper(
            &stored.paper,
            pick.rank as u32,
            pick.score as f32,
            explanation,
        ));
    }
    build_view(app, subscriber, date, out, Some(delivery_id))
}

pub fn digest_paper(
    paper: &crate::model::Paper,
    rank: u32,
    score: f32,
    explanation: Explanation,
) -> DigestPaper {
    DigestPaper {
        rank,
        id: paper.id.to_string(),
        title: paper.title.clone(),
        authors: paper.authors.clone(),
        snippet: explanation
            .snippet
            .into_iter()
            .map(|f| SnippetPart {
                text: f.text,
                highlighted: f.highlighted,
            })
            .collect(),
        upvotes: paper.upvotes,
        categories: paper.categories.clone(),
        doi: paper.arxiv.doi.clone(),
        journal_ref: paper.arxiv.journal_ref.clone(),
        abstract_url: paper.links.abstract_url.clone(),
        pdf_url: paper.links.pdf_url.clone(),
        hf_url: paper.links.hf_url.clone(),
        code_url: paper.links.code_url.clone(),
        project_url: paper.links.project_url.clone(),
        more_url: None,
        less_url: None,
        reasons: explanation.reasons,
        score,
    }
}

pub fn build_view(
    app: &App,
    subscriber: &Subscriber,
    date: chrono::NaiveDate,
    papers: Vec<DigestPaper>,
    delivery_id: Option<i64>,
) -> DigestView {
    let base = &app.settings.web.base_url;
    let claims = |purpose, extra: Option<String>| Claims {
        purpose,
        subscriber_id: subscriber.id.0,
        token_version: subscriber.token_version,
        expires_at: None,
        extra,
    };
    // One feedback token per paper (it names the subscriber and the paper); the vote is the
    // button pressed on the page the link opens, pre-selected by `?vote=`.
    let papers = papers
        .into_iter()
        .map(|mut p| {
            let url = app
                .signer
                .url(base, &claims(Purpose::Feedback, Some(p.id.clone())));
            p.more_url = Some(format!("{url}?vote=more"));
            p.less_url = Some(format!("{url}?vote=less"));
            p
        })
        .collect();
    DigestView {
        date,
        recipient: subscriber.email.to_string(),
        interests: subscriber.interests.as_str().to_string(),
        papers,
        manage_url: app.signer.url(base, &claims(Purpose::Manage, None)),
        unsubscribe_url: app.signer.url(base, &claims(Purpose::Unsubscribe, None)),
        view_url: delivery_id.map(|id| {
            app.signer
                .url(base, &claims(Purpose::Digest, Some(id.to_string())))
        }),
        site_url: base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let first = retry_delay(1);
        assert!(
            first >= RETRY_BASE && first <= RETRY_BASE + RETRY_BASE / 4,
            "{first}"
        );
        let third = retry_delay(3);
        assert!(third >= RETRY_BASE * 4, "{third}");
        let late = retry_delay(30);
        assert!(late <= RETRY_MAX + RETRY_MAX / 4, "{late}");
    }

    #[test]
    fn breaker_opens_on_mostly_temporary_failures_and_backs_off() {
        let b = Breaker::default();
        let t0 = Utc::now();
        let pause = Duration::seconds(60);
        // Healthy traffic with the odd failure never opens it.
        for i in 0..50 {
            assert_eq!(b.record(i % 5 == 0, t0, pause), None);
        }
        // A run of failures opens it once they are most of the window...
        let mut opened = None;
        for _ in 0..BREAKER_WINDOW {
            opened = opened.or(b.record(true, t0, pause));
        }
        let until = opened.expect("the breaker opened");
        assert_eq!(until, t0 + pause);
        assert_eq!(b.open_until(t0), Some(until));
        assert_eq!(b.open_until(until), None, "closed again after the pause");
        // Failing again right after: twice the pause.
        let t1 = until;
        let mut again = None;
        for _ in 0..BREAKER_MIN_SAMPLES {
            again = again.or(b.record(true, t1, pause));
        }
        assert_eq!(again, Some(t1 + pause * 2));
    }

    #[test]
    fn failures_are_classified_by_stage() {
        use crate::mail::{FailureKind as K, FailureStage as S};
        let f = |stage, kind| Err(Failure::new(stage, kind, "x"));
        assert!(matches!(
            classify(f(S::Rcpt, K::Permanent)),
            Outcome::Bounced(_)
        ));
        assert!(matches!(
            classify(f(S::EndOfData, K::Permanent)),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            classify(f(S::Rcpt, K::Temporary)),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(f(S::Connect, K::Permanent)),
            Outcome::Retry(_)
        ));
        assert!(matches!(classify(Ok(())), Outcome::Sent));
    }
}
