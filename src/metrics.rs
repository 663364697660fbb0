//! Observability for operators: `/metrics` (Prometheus / OpenMetrics text), `/readyz`, and the
//! scheduler heartbeat that both `/readyz` and the systemd watchdog trust.
//!
//! For: counting what this process did (papers fetched and source errors per source, digests
//! planned / sent / retried / failed, send latency, SMTP errors by `mail::FailureClass`) in a
//! registry held by `jobs::App`, and deriving at scrape time what the database knows (queue
//! depth by status, last successful fetch per source, last successful send), so that several
//! instances sharing one database agree on those. Not for: logs or tracing (see `main`/`cli`),
//! nor business decisions — nothing here changes what is sent. It is handed the store and the
//! live settings it reads; it does not know `App` (which holds it).

use crate::mail::FailureClass;
use crate::reload::Live;
use crate::store::Store;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The scheduler is taken for hung when it has not beaten for this long. The plan/send loop
/// beats at every turn (at least once a minute when idle) and after every settled delivery, so
/// a live loop never comes near this, even while it sends for hours.
pub const SCHEDULER_STALE_AFTER: Duration = Duration::from_secs(300);

/// A source's fetches are stale when this many scheduled fetches have come and gone since its
/// last success (or since the process started): one failed run is normal (a source is down
/// for an hour), two in a row are worth a look, and the third slot passing is the signal.
pub const STALE_AFTER_FETCHES: usize = 3;

/// The OpenMetrics text format, which Prometheus negotiates and parses natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// When a loop last proved it was making progress. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds after `origin` of the last beat, plus one; 0 means never.
    last: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new()
    }
}

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    /// "Still alive and working."
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64 + 1;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// How long ago the last beat was; `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.origin
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1)),
            ),
        }
    }

    /// Beaten within `limit`.
    pub fn is_fresh(&self, limit: Duration) -> bool {
        self.age().is_some_and(|a| a <= limit)
    }
}

/// How a delivery ended, as the send job reports it to [`Metrics::delivery_settled`]. A failure
/// carries the SMTP failure class when the mail transport failed, `None` when something else
/// did (the subscriber left, the digest could not be rendered).
#[derive(Debug, Clone, Copy)]
pub enum Settlement {
    Sent,
    /// A temporary failure; the delivery will be tried again.
    Retried(Option<FailureClass>),
    /// Given up for good.
    Failed(Option<FailureClass>),
    /// Handed back untried (sending paused or shutting down).
    NotTried,
}

/// The `class` label of `paperboy_smtp_errors_total`.
fn class_label(class: FailureClass) -> &'static str {
    match class {
        FailureClass::Transient => "transient",
        FailureClass::Permanent => "permanent",
        FailureClass::Connection => "connection",
        FailureClass::Timeout => "timeout",
        FailureClass::Tls => "tls",
        FailureClass::Auth => "auth",
        FailureClass::Other => "other",
    }
}

type Labels = Vec<(String, String)>;

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_string(), value.to_string())]
}

/// This process's counters. Held in `jobs::App`; cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    papers_fetched: Family<Labels, Counter>,
    source_errors: Family<Labels, Counter>,
    digests_planned: Counter,
    digests_sent: Counter,
    digests_retried: Counter,
    digests_failed: Counter,
    send_seconds: Histogram,
    smtp_errors: Family<Labels, Counter>,
    bounce_reports: Family<Labels, Counter>,
    confirmations_withheld: Counter,
    /// The plan/send loop's liveness (the watchdog and `/readyz` read it).
    pub scheduler: Heartbeat,
    /// When this process started, on the app's clock: the reference for "no fetch yet".
    pub started_at: DateTime<Utc>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(started_at: DateTime<Utc>) -> Metrics {
        let mut registry = Registry::default();
        let papers_fetched = Family::<Labels, Counter>::default();
        registry.register(
            "paperboy_papers_fetched",
            "Papers a source returned (new and already known), by source",
            papers_fetched.clone(),
        );
        let source_errors = Family::<Labels, Counter>::default();
        registry.register(
            "paperboy_source_errors",
            "Fetches of one day from one source that failed, by source",
            source_errors.clone(),
        );
        let digests_planned = Counter::default();
        registry.register(
            "paperboy_digests_planned",
            "Digests planned by this process (with at least one paper)",
            digests_planned.clone(),
        );
        let digests_sent = Counter::default();
        registry.register(
            "paperboy_digests_sent",
            "Digests the SMTP server accepted (or written to files)",
            digests_sent.clone(),
        );
        let digests_retried = Counter::default();
        registry.register(
            "paperboy_digests_retried",
            "Send attempts that failed temporarily; the digest is tried again later",
            digests_retried.clone(),
        );
        let digests_failed = Counter::default();
        registry.register(
            "paperboy_digests_failed",
            "Digests given up for good (permanent SMTP refusal, too many attempts, cancelled)",
            digests_failed.clone(),
        );
        // 10 ms to ~20 s: a local relay answers in milliseconds, a slow remote in seconds.
        let send_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register_with_unit(
            "paperboy_send_duration",
            "Time to render and hand one digest to the transport, whatever the outcome",
            Unit::Seconds,
            send_seconds.clone(),
        );
        let smtp_errors = Family::<Labels, Counter>::default();
        registry.register(
            "paperboy_smtp_errors",
            "SMTP failures by class: transient (4xx), permanent (5xx), connection, timeout, tls, auth, other",
            smtp_errors.clone(),
        );
        let bounce_reports = Family::<Labels, Counter>::default();
        registry.register(
            "paperboy_bounce_reports",
            "Reports that arrived after sending (bounce mailbox, webhooks), by outcome: hard, soft, complaint (unsubscribed), forged (a tag or link we did not sign), ignored",
            bounce_reports.clone(),
        );
        let confirmations_withheld = Counter::default();
        registry.register(
            "paperboy_confirmations_withheld",
            "Sign-ups recorded without their confirmation email: web.confirmation_emails_per_hour was reached",
            confirmations_withheld.clone(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&label("version", env!("CARGO_PKG_VERSION")))
            .set(1);
        registry.register(
            "paperboy_build_info",
            "Always 1; the version label says which paperboy runs",
            build_info,
        );
        Metrics {
            registry,
            papers_fetched,
            source_errors,
            digests_planned,
            digests_sent,
            digests_retried,
            digests_failed,
            send_seconds,
            smtp_errors,
            bounce_reports,
            confirmations_withheld,
            scheduler: Heartbeat::new(),
            started_at,
        }
    }

    /// A source returned `count` papers for one day.
    pub fn source_fetched(&self, source: &str, count: usize) {
        self.papers_fetched
            .get_or_create(&label("source", source))
            .inc_by(count as u64);
        // Make the error series exist at 0, so `rate()` and alerts see it before a first error.
        let _ = self.source_errors.get_or_create(&label("source", source));
    }

    /// A source failed for one day.
    pub fn source_failed(&self, source: &str) {
        self.source_errors
            .get_or_create(&label("source", source))
            .inc();
        let _ = self.papers_fetched.get_or_create(&label("source", source));
    }

    /// The planner wrote `count` digests with papers.
    pub fn digests_planned(&self, count: usize) {
        self.digests_planned.inc_by(count as u64);
    }

    /// Runs one delivery attempt and records how long it took.
    pub async fn time_send<F: Future>(&self, attempt: F) -> F::Output {
        let started = Instant::now();
        let out = attempt.await;
        self.send_seconds.observe(started.elapsed().as_secs_f64());
        out
    }

    /// A delivery was settled. Also a scheduler heartbeat: settling proves the send loop moves,
    /// however long the queue it is working through.
    pub fn delivery_settled(&self, how: Settlement) {
        self.scheduler.beat();
        let class = match how {
            Settlement::Sent => {
                self.digests_sent.inc();
                return;
            }
            Settlement::Retried(class) => {
                self.digests_retried.inc();
                class
            }
            Settlement::Failed(class) => {
                self.digests_failed.inc();
                class
            }
            Settlement::NotTried => return,
        };
        if let Some(class) = class {
            self.smtp_errors
                .get_or_create(&label("class", class_label(class)))
                .inc();
        }
    }

    /// Reports that arrived after sending, by outcome (`hard`, `soft`, `complaint`,
    /// `forged`, `ignored`).
    pub fn bounce_reports(&self, counts: &[(&str, usize)]) {
        for (outcome, n) in counts {
            self.bounce_reports
                .get_or_create(&label("outcome", outcome))
                .inc_by(*n as u64);
        }
    }

    /// The confirmation cap held back one confirmation email.
    pub fn confirmation_withheld(&self) {
        self.confirmations_withheld.inc();
    }

    /// The current values of this process's counters, without the database-derived ones.
    pub fn counter(&self, name: &str) -> Option<u64> {
        match name {
            "digests_planned" => Some(self.digests_planned.get()),
            "digests_sent" => Some(self.digests_sent.get()),
            "digests_retried" => Some(self.digests_retried.get()),
            "digests_failed" => Some(self.digests_failed.get()),
            "confirmations_withheld" => Some(self.confirmations_withheld.get()),
            _ => None,
        }
    }
}

/// Names of the sources that are enabled, as `source_state` knows them.
fn enabled_sources(live: &Live) -> Vec<&'static str> {
    let s = &live.sources;
    let mut out = Vec::new();
    if s.hf.enabled {
        out.push("hf");
    }
    if s.arxiv.enabled {
        out.push("arxiv");
    }
    out
}

impl Metrics {
    /// The whole exposition: this process's counters, then what the database says at `now`.
    pub async fn render(&self, store: &Store, live: &Live, now: DateTime<Utc>) -> String {
        let mut scrape = Registry::default();
        let database_up = Gauge::<i64>::default();
        scrape.register(
            "paperboy_database_up",
            "1 when the database answered this scrape, else 0",
            database_up.clone(),
        );
        let heartbeat_age = Gauge::<f64, AtomicU64>::default();
        heartbeat_age.set(
            self.scheduler
                .age()
                .map(|a| a.as_secs_f64())
                .unwrap_or(-1.0),
        );
        scrape.register(
            "paperboy_scheduler_heartbeat_age_seconds",
            "Seconds since the plan/send loop last made progress; -1 before its first turn",
            heartbeat_age,
        );

        let counts = store.delivery_status_counts().await;
        let due = store.count_due(now).await;
        let last_sent = store.last_sent_at().await;
        let sources = store.source_states().await;
        database_up.set(i64::from(
            counts.is_ok() && due.is_ok() && last_sent.is_ok() && sources.is_ok(),
        ));

        if let Ok(counts) = counts {
            let depth = Family::<Labels, Gauge>::default();
            for status in ["planned", "sending", "retry", "sent", "failed", "empty"] {
                let _ = depth.get_or_create(&label("status", status));
            }
            for (status, n) in counts {
                depth.get_or_create(&label("status", &status)).set(n);
            }
            scrape.register(
            "paperboy_deliveries",
            "Deliveries in the database by status (all instances): planned and retry are the queue",
            depth,
        );
        }
        if let Ok(due) = due {
            let g = Gauge::<i64>::default();
            g.set(due as i64);
            scrape.register(
            "paperboy_deliveries_due",
            "Deliveries that could be sent right now (planned or retry whose time has come, or with an expired lease)",
            g,
        );
        }
        if let Ok(last_sent) = last_sent {
            let g = Gauge::<i64>::default();
            g.set(last_sent.map(|t| t.timestamp()).unwrap_or(0));
            scrape.register(
                "paperboy_last_send_success_timestamp_seconds",
                "Unix time of the most recent digest sent by any instance; 0 when none yet",
                g,
            );
        }
        if let Ok(states) = sources {
            let success = Family::<Labels, Gauge>::default();
            let failure = Family::<Labels, Gauge>::default();
            for name in enabled_sources(live) {
                let _ = success.get_or_create(&label("source", name));
            }
            for st in states {
                if let Some(t) = st.last_success_at {
                    success
                        .get_or_create(&label("source", &st.source))
                        .set(t.timestamp());
                }
                if let Some(t) = st.last_error_at {
                    failure
                        .get_or_create(&label("source", &st.source))
                        .set(t.timestamp());
                }
            }
            scrape.register(
                "paperboy_last_fetch_success_timestamp_seconds",
                "Unix time of each source's last successful fetch (any instance); 0 when none yet",
                success,
            );
            scrape.register(
                "paperboy_last_fetch_error_timestamp_seconds",
                "Unix time of each source's last failed fetch (any instance)",
                failure,
            );
        }

        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric name.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &scrape);
        let _ = encode_eof(&mut out);
        out
    }

    /// The `GET /metrics` response.
    pub async fn metrics_response(
        &self,
        store: &Store,
        live: &Live,
        now: DateTime<Utc>,
    ) -> Response {
        let body = self.render(store, live, now).await;
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
    }

    /// What `/readyz` checks: the database answers, the scheduler loop is alive, and no enabled
    /// source has let [`STALE_AFTER_FETCHES`] scheduled fetches pass without success. Returns the
    /// problems, each with what to look at; empty when ready.
    pub async fn readiness_problems(
        &self,
        store: &Store,
        live: &Live,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = store.ping().await {
            problems.push(format!(
                "database unreachable: {e} (config key `database.url`)"
            ));
            return problems;
        }
        match self.scheduler.age() {
        None => problems.push("scheduler: has not completed a first turn yet".into()),
        Some(age) if age > SCHEDULER_STALE_AFTER => problems.push(format!(
            "scheduler: no progress for {} s (limit {} s); see the log for a stuck plan or send",
            age.as_secs(),
            SCHEDULER_STALE_AFTER.as_secs()
        )),
        Some(_) => {}
    }
        match store.source_states().await {
            Err(e) => problems.push(format!("source state unreadable: {e}")),
            Ok(states) => {
                for name in enabled_sources(live) {
                    let state = states.iter().find(|s| s.source == name);
                    let since = state
                        .and_then(|s| s.last_success_at)
                        .map(|t| t.max(self.started_at))
                        .unwrap_or(self.started_at);
                    let Some(deadline) = live
                        .fetch_schedule
                        .after(&since)
                        .nth(STALE_AFTER_FETCHES - 1)
                    else {
                        continue;
                    };
                    if now > deadline {
                        let last = state
                            .and_then(|s| s.last_success_at)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "never".into());
                        let error = state
                            .and_then(|s| s.last_error.clone())
                            .unwrap_or_else(|| "no error recorded".into());
                        problems.push(format!(
                            "source {name}: no successful fetch in {STALE_AFTER_FETCHES} scheduled \
                         runs (last success: {last}); last error: {error} (check \
                         `sources.{name}.base_url` and the network)"
                        ));
                    }
                }
            }
        }
        problems
    }

    /// The `GET /readyz` response: 200 `ready`, or 503 with one line per problem.
    pub async fn readyz_response(
        &self,
        store: &Store,
        live: &Live,
        now: DateTime<Utc>,
    ) -> (StatusCode, String) {
        let problems = self.readiness_problems(store, live, now).await;
        if problems.is_empty() {
            (StatusCode::OK, "ready\n".into())
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready\n{}\n", problems.join("\n")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_ages() {
        let h = Heartbeat::new();
        assert_eq!(h.age(), None);
        assert!(!h.is_fresh(Duration::from_secs(3600)));
        h.beat();
        assert!(h.is_fresh(Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!h.is_fresh(Duration::from_millis(10)));
        assert!(h.age().unwrap() >= Duration::from_millis(30));
    }

    #[test]
    fn settlements_move_the_counters_and_the_heartbeat() {
        let m = Metrics::new(Utc::now());
        m.delivery_settled(Settlement::Sent);
        m.delivery_settled(Settlement::Retried(Some(FailureClass::Transient)));
        // Not the mail server's doing (the subscriber was deleted): no SMTP error counted.
        m.delivery_settled(Settlement::Failed(None));
        assert_eq!(m.counter("digests_sent"), Some(1));
        assert_eq!(m.counter("digests_retried"), Some(1));
        assert_eq!(m.counter("digests_failed"), Some(1));
        assert!(m.scheduler.is_fresh(Duration::from_secs(5)));
        let mut out = String::new();
        encode_registry(&mut out, &m.registry).unwrap();
        assert!(
            out.contains("paperboy_smtp_errors_total{class=\"transient\"} 1"),
            "{out}"
        );
        assert!(!out.contains("class=\"other\""), "{out}");
    }
}
