//! The send job: claim due deliveries under a lease, render, send, record the outcome.
//!
//! What for: getting every planned digest out exactly once as far as paperboy can tell, and
//! never losing one. Not for: planning (`jobs::plan`), what a digest shows (`digest`), or SMTP
//! details (`mail`).
//!
//! The rules, and why:
//! - A delivery is marked `sent` only after the SMTP server answered 2xx to the end of DATA.
//!   A crash between that answer and the `UPDATE` leaves the row `sending`; its lease runs out
//!   and it is sent again, with the same Message-ID so receivers can drop the duplicate. Only
//!   messages in flight at a crash can be duplicated; none is ever lost.
//! - Leases are short and renewed while we work; on start, leases of workers on this host whose
//!   process is gone are ended at once (`leases`).
//! - A temporary failure is retried with backoff until `mail.retry_max_hours`; a 5xx at RCPT is
//!   a hard bounce, counted on the subscriber, who is suspended after `mail.max_hard_bounces`;
//!   any other 5xx fails this delivery only (`retry`).
//! - A stored address that cannot be mailed (it no longer parses as an `EmailAddress`, or
//!   lettre refuses it) is `failed` at once: it would fail the same way at every retry.
//! - When most recent attempts fail temporarily, nobody is tried for a while (`breaker`).
//! - On shutdown no new message is started; the ones in flight finish and are recorded; the
//!   rest of the claimed rows are handed back at once.
//!
//! `pipeline` is the run itself: a feeder claims and reads the next batch while this one is
//! sent, and the outcomes are recorded as they come.

mod breaker;
mod leases;
mod pipeline;
mod retry;

pub use breaker::Breaker;
pub use leases::{host_name, worker_id};

use crate::jobs::App;
use crate::store::StoreError;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::info;

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
    /// Identifies this worker's leases ([`worker_id`]).
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

/// Sends every due delivery, `concurrency` at a time, until none is due, `stop` is set or the
/// circuit breaker opens.
pub async fn send_due(
    app: &App,
    options: &SendOptions,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> Result<SendReport, StoreError> {
    leases::reclaim_dead_local_leases(app).await?;
    // Renew our leases while this run lasts, however long one batch takes.
    let (done_tx, done_rx) = watch::channel(false);
    let renewer = tokio::spawn(leases::renew_leases(
        app.clone(),
        options.owner.clone(),
        done_rx,
    ));
    let result = pipeline::send_batches(app, options, concurrency, stop).await;
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
