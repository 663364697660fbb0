//! One send run: claim due deliveries a batch at a time, read what they need, send each under
//! a bounded number of workers, and record each outcome as it comes.
//!
//! Not for: what a failure means (`retry`), when to stop for an outage (`breaker`), lease
//! upkeep (`leases`), or what a digest shows (`digest::DigestView`).

use super::leases::LEASE;
use super::retry::{AttemptError, Outcome, classify, next_attempt};
use super::{SendOptions, SendReport};
use crate::digest::DigestView;
use crate::jobs::App;
use crate::mail::{DigestMessage, FailureKind, MessageError, build_digest_message};
use crate::metrics::Settlement;
use crate::model::SubscriberStatus;
use crate::store::{ClaimedDelivery, DeliveryPaper, StoreError, StoredPaper, SubscriberRow};
use chrono::Duration;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::{Instrument, debug, error, info, info_span, warn};

/// Runs the pipeline until none is due, `stop` is set or the circuit breaker opens; returns
/// once every started delivery is recorded.
pub(super) async fn send_batches(
    app: &App,
    options: &SendOptions,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> Result<SendReport, StoreError> {
    let (marker, marker_task) = SentMarker::start(app.clone(), options.owner.clone());
    let result = run(app, options, &marker, concurrency, stop).await;
    // Every task has ended, so every sent delivery is recorded; let the marker finish.
    drop(marker);
    let _ = marker_task.await;
    result
}

async fn run(
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
                push_error(&mut self.errors, e.text);
            }
            Ok(Ok(Settled::Failed(e, suspended))) => {
                self.failed += 1;
                self.suspended += usize::from(suspended);
                push_error(&mut self.errors, e.text);
            }
            Ok(Ok(Settled::Released)) => self.released += 1,
            Ok(Ok(Settled::LeaseLost)) => {}
            Ok(Err(e)) => warn!(error = %e, "could not record a delivery's outcome"),
            Err(e) => warn!(error = %e, "a send task panicked"),
        }
    }
}

fn push_error(errors: &mut Vec<String>, e: String) {
    if errors.len() < 5 && !errors.contains(&e) {
        errors.push(e);
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

enum Settled {
    Sent,
    Retry(AttemptError),
    /// The error, and whether it suspended the address.
    Failed(AttemptError, bool),
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
            match next_attempt(delivery.attempts, delivery.planned_at, now, max_age, &e) {
                Ok(next) => {
                    warn!(error = %e.text, attempts = delivery.attempts, next_attempt = %next, "send failed; will retry");
                    (
                        app.store
                            .mark_retry(delivery.id, owner, next, &e.text)
                            .await?,
                        Settled::Retry(e),
                    )
                }
                Err(given_up) => {
                    warn!(error = %given_up.text, "send failed for good");
                    (
                        app.store
                            .mark_failed(delivery.id, owner, &given_up.text)
                            .await?,
                        Settled::Failed(given_up, false),
                    )
                }
            }
        }
        Outcome::Bounced(e) => {
            let kept = app.store.mark_failed(delivery.id, owner, &e.text).await?;
            let bounce = app
                .store
                .record_hard_bounce(delivery.subscriber_id, &e.text, mail.max_hard_bounces, now)
                .await?;
            if bounce.suspended {
                warn!(hard_bounces = bounce.hard_bounces, error = %e.text, "address suspended after hard bounces");
            } else {
                warn!(hard_bounces = bounce.hard_bounces, error = %e.text, "hard bounce recorded");
            }
            (kept, Settled::Failed(e, bounce.suspended))
        }
        Outcome::Failed(e) => {
            warn!(error = %e.text, "send failed permanently");
            (
                app.store.mark_failed(delivery.id, owner, &e.text).await?,
                Settled::Failed(e, false),
            )
        }
    };
    app.metrics.delivery_settled(match &settled {
        Settled::Sent => Settlement::Sent,
        Settled::Retry(e) => Settlement::Retried(e.smtp),
        Settled::Failed(e, _) => Settlement::Failed(e.smtp),
        Settled::Released | Settled::LeaseLost => Settlement::NotTried,
    });
    if !kept {
        warn!("the lease on this delivery expired before it was settled; another worker owns it");
        return Ok(Settled::LeaseLost);
    }
    Ok(settled)
}

async fn deliver(
    app: &App,
    options: &SendOptions,
    delivery: &ClaimedDelivery,
    data: &BatchData,
) -> Outcome {
    let prepared = match prepare(app, delivery, data).await {
        Ok(p) => p,
        Err(e) => return Outcome::Retry(AttemptError::other(e)),
    };
    let (message, file_name) = match prepared {
        Prepared::Message(m, name) => (m, name),
        Prepared::Cancelled(why) => return Outcome::Failed(AttemptError::other(why)),
    };
    let result = options.mailer.deliver(*message, &file_name).await;
    let pause = Duration::from_std(app.settings.mail.circuit_pause).unwrap_or(Duration::minutes(1));
    if let Err(f) = &result
        && f.is_configuration_fault()
    {
        // No message gets past a refused password or an untrusted certificate: pause now
        // rather than spend one attempt of every digest finding that out.
        if let Some(until) = options.breaker.trip(app.clock.now(), pause) {
            error!(until = %until, error = %f.detail, "the mail server cannot be used as configured; pausing all sending");
        }
        return classify(result);
    }
    // The breaker judges the server, not the recipient: only temporary trouble counts
    // against it, and a 5xx (the server is up and answering) counts as a sign of health.
    let failed_temporarily = matches!(&result, Err(f) if f.kind == FailureKind::Temporary);
    if let Some(until) = options
        .breaker
        .record(failed_temporarily, app.clock.now(), pause)
    {
        warn!(until = %until, "most recent messages failed temporarily; pausing all sending");
    }
    classify(result)
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
    let view = DigestView::of_picks(
        &app.signer,
        &app.settings.web.base_url,
        &subscriber,
        (delivery.id, delivery.digest_date),
        picks,
        &data.papers,
    );
    if view.papers.is_empty() {
        return Ok(Prepared::Cancelled("the digest has no papers".into()));
    }
    let rendered = app.renderer.render(&view).map_err(|e| e.to_string())?;
    let envelope_from = match &app.settings.mail.bounce_address {
        Some(bounce) => Some(crate::bounces::verp::envelope_sender(
            bounce,
            &app.signer,
            delivery.id,
        )?),
        None => None,
    };
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
            envelope_from,
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
