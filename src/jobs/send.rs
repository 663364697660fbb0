//! The send job: claim due deliveries under a lease, render, send, record the outcome.
//!
//! A delivery is marked sent only after the SMTP server accepted it. A temporary failure goes
//! back to `retry` with exponential backoff and jitter; a permanent one (5xx) or too many
//! attempts end in `failed` with the error kept for `paperboy deliveries`. A worker that dies
//! mid-send leaves its lease to expire, and the delivery is claimed again — with the same
//! Message-ID, so the rare duplicate is recognisable as one.

use super::App;
use crate::digest::{DigestPaper, DigestView, SnippetPart};
use crate::links::{Claims, Purpose};
use crate::mail::{DigestMessage, Mailer, SendError, build_digest_message};
use crate::matching::Explanation;
use crate::model::{Subscriber, SubscriberStatus};
use crate::store::{ClaimedDelivery, StoreError};
use chrono::Duration;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, watch};
use tracing::{Instrument, debug, info, info_span, warn};

/// How long a claimed delivery stays ours. Far longer than one SMTP transaction
/// (`mail.timeout_secs` per command), so a live worker never loses a lease it is using.
pub const LEASE: Duration = Duration::minutes(10);
/// After this many attempts a delivery that keeps failing temporarily is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// The first retry waits this long; each further one doubles it.
pub const RETRY_BASE: Duration = Duration::minutes(2);
const RETRY_MAX: Duration = Duration::hours(6);

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SendReport {
    pub sent: usize,
    /// Temporarily failed; will be tried again.
    pub retrying: usize,
    pub failed: usize,
    /// Temporary errors seen, newest last (a few, for the operator).
    pub errors: Vec<String>,
}

/// Where sent messages go and whether anything is recorded.
#[derive(Clone)]
pub struct SendOptions {
    pub mailer: Mailer,
    /// Identifies this worker's leases.
    pub owner: String,
    /// Called after each delivery is settled, for progress bars.
    pub on_progress: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// The outcome of one delivery.
enum Outcome {
    Sent,
    Retry(String),
    Failed(String),
}

/// Sends every due delivery, `concurrency` at a time, until none is due or `stop` is set.
pub async fn send_due(
    app: &App,
    options: &SendOptions,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) -> Result<SendReport, StoreError> {
    let mut report = SendReport::default();
    let limiter = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        if *stop.borrow() {
            break;
        }
        let now = app.clock.now();
        let batch = app
            .store
            .claim_due(
                &options.owner,
                now,
                now,
                now + LEASE,
                (concurrency * 4) as u32,
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for delivery in batch {
            let permit = limiter
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            if *stop.borrow_and_update() {
                drop(permit);
                // Shutting down: hand the rest back instead of waiting for their leases.
                break;
            }
            let app = app.clone();
            let options = options.clone();
            let span = info_span!("delivery", delivery = delivery.id, subscriber = %delivery.subscriber_id, date = %delivery.digest_date);
            tasks.spawn(
                async move {
                    let outcome = deliver(&app, &options.mailer, &delivery).await;
                    let settled = settle(&app, &options.owner, &delivery, outcome).await;
                    drop(permit);
                    if let Some(f) = &options.on_progress {
                        f();
                    }
                    settled
                }
                .instrument(span),
            );
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(Settled::Sent)) => report.sent += 1,
                Ok(Ok(Settled::Retry(e))) => {
                    report.retrying += 1;
                    push_error(&mut report.errors, e);
                }
                Ok(Ok(Settled::Failed(e))) => {
                    report.failed += 1;
                    push_error(&mut report.errors, e);
                }
                Ok(Ok(Settled::LeaseLost)) => {}
                Ok(Err(e)) => warn!(error = %e, "could not record a delivery's outcome"),
                Err(e) => warn!(error = %e, "a send task panicked"),
            }
        }
        let released = app.store.release_leases(&options.owner).await?;
        if released > 0 {
            info!(released, "handed unsent deliveries back");
        }
    }
    Ok(report)
}

fn push_error(errors: &mut Vec<String>, e: String) {
    if errors.len() < 5 && !errors.contains(&e) {
        errors.push(e);
    }
}

enum Settled {
    Sent,
    Retry(String),
    Failed(String),
    LeaseLost,
}

async fn settle(
    app: &App,
    owner: &str,
    delivery: &ClaimedDelivery,
    outcome: Outcome,
) -> Result<Settled, StoreError> {
    let now = app.clock.now();
    let (kept, settled) = match outcome {
        Outcome::Sent => {
            info!("digest sent");
            (
                app.store.mark_sent(delivery.id, owner, now).await?,
                Settled::Sent,
            )
        }
        Outcome::Retry(e) if delivery.attempts < MAX_ATTEMPTS => {
            let next = now + retry_delay(delivery.attempts);
            warn!(error = %e, attempts = delivery.attempts, next_attempt = %next, "send failed; will retry");
            (
                app.store.mark_retry(delivery.id, owner, next, &e).await?,
                Settled::Retry(e),
            )
        }
        Outcome::Retry(e) => {
            let e = format!("gave up after {} attempts: {e}", delivery.attempts);
            warn!(error = %e, "send failed for good");
            (
                app.store.mark_failed(delivery.id, owner, &e).await?,
                Settled::Failed(e),
            )
        }
        Outcome::Failed(e) => {
            warn!(error = %e, "send failed permanently");
            (
                app.store.mark_failed(delivery.id, owner, &e).await?,
                Settled::Failed(e),
            )
        }
    };
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

async fn deliver(app: &App, mailer: &Mailer, delivery: &ClaimedDelivery) -> Outcome {
    match prepare(app, delivery).await {
        Ok(Prepared::Message(msg, file_name)) => match mailer.send(&msg, &file_name).await {
            Ok(()) => Outcome::Sent,
            Err(SendError::Temporary(e)) => Outcome::Retry(e),
            Err(SendError::Permanent(e)) => Outcome::Failed(e),
        },
        Ok(Prepared::Cancelled(why)) => Outcome::Failed(why),
        Err(e) => Outcome::Retry(e),
    }
}

enum Prepared {
    Message(Box<lettre::Message>, String),
    /// Not to be sent (the subscriber left since it was planned).
    Cancelled(String),
}

async fn prepare(app: &App, delivery: &ClaimedDelivery) -> Result<Prepared, String> {
    let row = app
        .store
        .subscriber_by_id(delivery.subscriber_id)
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = row else {
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
    let view = digest_view(app, &subscriber, delivery.id, delivery.digest_date).await?;
    if view.papers.is_empty() {
        return Ok(Prepared::Cancelled("the digest has no papers".into()));
    }
    let rendered = app.renderer.render(&view).map_err(|e| e.to_string())?;
    let message = build_digest_message(
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
    )
    .map_err(|e| e.to_string())?;
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
    let mut out = Vec::with_capacity(picks.len());
    for pick in picks {
        let Some(stored) = papers.get(&pick.paper_id) else {
            continue;
        };
        let explanation: Explanation = serde_json::from_str(&pick.reason).unwrap_or_default();
        out.push(digest_paper(
            &stored.paper,
            pick.rank as u32,
            pick.score as f32,
            explanation,
        ));
    }
    Ok(build_view(app, subscriber, date, out, Some(delivery_id)))
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
        abstract_url: paper.links.abstract_url.clone(),
        pdf_url: paper.links.pdf_url.clone(),
        hf_url: paper.links.hf_url.clone(),
        code_url: paper.links.code_url.clone(),
        project_url: paper.links.project_url.clone(),
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
}
