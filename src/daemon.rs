//! `paperboy run`: the scheduler, the send workers and the web server in one process.
//!
//! Fetch runs on the `schedule.fetch` cron; every minute the planner looks for subscribers whose
//! local send time has passed and the sender drains what is due. SIGTERM or Ctrl-C stops taking
//! new work, lets the SMTP transactions in flight finish (at most `daemon.shutdown_timeout_secs`),
//! hands back unsent leases and exits 0 (`shutdown`, shared with the long commands). SIGHUP re-reads the configuration (see `reload`).
//!
//! Several instances may share one database. Every instance sends (deliveries are claimed row
//! by row under their own leases); fetch and plan run only on the holder of the leader lease
//! (`store::leader`), which [`lead_loop`] takes, renews every third of
//! `daemon.leader_lease_secs` and gives back on a clean stop. Planning writes check the
//! lease's generation in each transaction, so an instance that lost the lease stops planning.
//! Database errors (a restart, a full pool) are logged and the loops try again shortly.
//!
//! Under systemd (`Type=notify`) it says `READY=1` once the database is migrated (the caller
//! did that) and the web server is bound, `STOPPING=1` when asked to stop, and pings the
//! watchdog only while the plan/send loop's heartbeat is fresh (see `notify`).
//!
//! This is the process around the jobs: it decides when each runs and on which instance, not
//! what they do (`jobs`, `delivery`, `web`); nothing below it imports it.

use crate::delivery::{SendOptions, host_name, send_due, worker_id};
use crate::jobs::App;
use crate::jobs::plan::{PlanMode, plan_as_leader};
use crate::jobs::{embed, fetch};
use crate::metrics::SCHEDULER_STALE_AFTER;
use crate::notify::{self, Notifier};
use crate::shutdown::Shutdown;
use crate::store::LeaderFence;
use chrono::Utc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

/// How often the planner looks for subscribers whose time has come.
pub const PLAN_INTERVAL: Duration = Duration::from_secs(60);

/// After a failed turn (typically the database was unreachable) the plan/send loop tries again
/// this soon instead of a whole [`PLAN_INTERVAL`] later.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// How often an instance that does not lead looks for due deliveries. It cannot know when the
/// leader plans, and waiting a whole [`PLAN_INTERVAL`] would leave it idle for most of the first
/// minute of a large run; one claim query every few seconds costs next to nothing.
pub const FOLLOWER_POLL: Duration = Duration::from_secs(5);

/// The name of the lease whose holder runs fetch and plan.
pub const LEADER_LEASE: &str = "scheduler";

/// This process's view of the leader lease, kept by [`lead_loop`]: `Some` while it leads.
#[derive(Clone)]
struct Leadership {
    holder: String,
    current: watch::Receiver<Option<LeaderFence>>,
}

impl Leadership {
    /// The fence to work under if this instance leads right now. Renews the lease first, so a
    /// job never starts on a lease that another instance has already taken over.
    async fn confirm(&self, app: &App) -> Option<LeaderFence> {
        let fence = self.current.borrow().clone()?;
        let ttl = app.settings.daemon.leader_lease;
        match app
            .store
            .renew_leader_lease(&fence, &self.holder, Utc::now(), ttl)
            .await
        {
            Ok(true) => Some(fence),
            Ok(false) => {
                warn!(
                    generation = fence.generation,
                    "the leader lease was taken over; not leading"
                );
                None
            }
            Err(e) => {
                warn!(error = %e, "cannot renew the leader lease; skipping this turn's leader work");
                None
            }
        }
    }
}

/// The name this instance holds the leader lease under: `daemon.instance_id`, or the host name
/// and `web.bind` (two instances on one host cannot bind the same port, unless it is 0).
pub fn instance_id(settings: &crate::config::Settings) -> String {
    if settings.daemon.instance_id.is_empty() {
        format!("{}:{}", host_name(), settings.web.bind)
    } else {
        settings.daemon.instance_id.clone()
    }
}

/// What the daemon listens to: the stop signals every long command shares
/// ([`Shutdown`](crate::shutdown::Shutdown): SIGTERM and SIGINT) and SIGHUP. Install them
/// before opening the database: a stop that arrives while migrations run is then honoured as
/// soon as the daemon starts (exit 0) instead of killing the process mid-migration.
pub struct Signals {
    shutdown: Shutdown,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Signals> {
        let shutdown = Shutdown::install()?;
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let hup = signal(SignalKind::hangup())
                .map_err(|e| anyhow::anyhow!("cannot install a SIGHUP handler: {e}"))?;
            Ok(Signals { shutdown, hup })
        }
        #[cfg(not(unix))]
        Ok(Signals { shutdown })
    }
}

pub async fn run(app: App, signals: Signals) -> anyhow::Result<()> {
    // Every task watches the shared stop flag; the first SIGTERM or Ctrl-C sets it.
    let stop_rx = signals.shutdown.receiver();
    let notifier = Notifier::from_env();
    // One lease owner for the whole process, so that a stop that times out can hand back
    // exactly what this process still holds.
    let owner = worker_id();

    let listener = tokio::net::TcpListener::bind(app.settings.web.bind)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (config key `web.bind`): {e}",
                app.settings.web.bind
            )
        })?;
    let local = listener.local_addr()?;
    info!(address = %local, "web server listening");

    let web = tokio::spawn({
        let app = app.clone();
        let mut stop = stop_rx.clone();
        async move {
            let router = crate::web::router(app);
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            // The peer address is what the web forms' per-client rate limits count by.
            let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
            {
                error!(error = %e, "web server failed");
            }
        }
    });
    // The embedding model loads in about a second: once now, in the background, rather than
    // inside the first live preview's time budget.
    tokio::task::spawn_blocking(|| {
        if let Err(e) = crate::embed::Embedder::shared() {
            error!(error = %e, "matching by meaning is off; digests are matched by words alone");
        }
    });
    let holder = instance_id(&app.settings);
    // Try for the lease before the loops start, so that the first plan turn already knows
    // whether this instance leads (it would otherwise wait a turn).
    let first = take_lease(&app, &holder).await;
    let (lease_tx, lease_rx) = watch::channel(first);
    let leadership = Leadership {
        holder: holder.clone(),
        current: lease_rx,
    };
    let leader = tokio::spawn(
        lead_loop(app.clone(), holder.clone(), lease_tx, stop_rx.clone())
            .instrument(info_span!("leader", holder = %holder)),
    );
    // Planning waits for the fetch at start (if there is one): planned before the papers
    // arrive, a fresh deployment's first digests would all be empty. Whether there is one is
    // decided here, before either loop runs: decided inside the fetcher, the first plan turn
    // could run before the decision, skip planning and then send everything already due before
    // it looked again.
    let start_fetch = fetch_due_at_start(&app).await;
    let (fetched_tx, fetched_rx) = watch::channel(start_fetch.is_none());
    let fetcher = tokio::spawn(fetch_loop(
        app.clone(),
        leadership.clone(),
        start_fetch,
        fetched_tx,
        stop_rx.clone(),
    ));
    let bounces = tokio::spawn(bounce_loop(
        app.clone(),
        leadership.clone(),
        stop_rx.clone(),
    ));
    let sender = tokio::spawn(plan_send_loop(
        app.clone(),
        owner.clone(),
        leadership,
        fetched_rx,
        stop_rx.clone(),
    ));
    // READY before the first watchdog ping: systemd expects them in that order.
    notifier.ready(&format!("serving on {local}; plan and send every minute"));
    let watchdog = notify::watchdog_period().map(|period| {
        info!(
            period_ms = period.as_millis() as u64,
            "systemd watchdog enabled"
        );
        tokio::spawn(notify::run_watchdog(
            notifier.clone(),
            app.metrics.scheduler.clone(),
            SCHEDULER_STALE_AFTER,
            period,
            stop_rx.clone(),
        ))
    });

    wait_for_stop(&app, &notifier, signals).await;
    let timeout = app.settings.daemon.shutdown_timeout;
    notifier.stopping(&format!(
        "finishing messages in flight (at most {} s)",
        timeout.as_secs()
    ));
    info!(
        shutdown_timeout_secs = timeout.as_secs(),
        "stopping: no new work is taken; messages in flight are finished"
    );
    let mut tasks = vec![
        ("sender", sender),
        ("fetcher", fetcher),
        ("bounces", bounces),
        ("leader", leader),
        ("web", web),
    ];
    tasks.extend(watchdog.map(|w| ("watchdog", w)));
    let aborts: Vec<_> = tasks.iter().map(|(_, t)| t.abort_handle()).collect();
    let drained = tokio::time::timeout(timeout, async {
        for (name, task) in tasks {
            if let Err(e) = task.await {
                warn!(task = name, error = %e, "task ended abnormally");
            }
        }
    })
    .await;
    if drained.is_err() {
        // What was cut off may or may not have reached the server; its delivery goes back to
        // the queue and is sent again with the same Message-ID (a recognisable duplicate
        // rather than a lost digest).
        warn!(
            shutdown_timeout_secs = timeout.as_secs(),
            "work in flight did not finish within daemon.shutdown_timeout_secs; cutting it off"
        );
        for a in aborts {
            a.abort();
        }
        match app.store.release_leases(&owner).await {
            Ok(n) => info!(released = n, "handed unsent deliveries back"),
            Err(e) => {
                error!(error = %e, "could not hand deliveries back; their leases expire on their own")
            }
        }
    }
    app.store.close().await;
    info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or Ctrl-C (the shared stop flag); meanwhile each SIGHUP reloads what can
/// be reloaded.
async fn wait_for_stop(app: &App, notifier: &Notifier, signals: Signals) {
    #[cfg(unix)]
    {
        let Signals { shutdown, mut hup } = signals;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = hup.recv() => {
                    notifier.reloading();
                    match crate::reload::reload(&app.settings, &app.live) {
                        Ok(outcome) => {
                            info!(applied = ?outcome.applied, "SIGHUP: configuration re-read");
                            if !outcome.needs_restart.is_empty() {
                                warn!(
                                    changed = ?outcome.needs_restart,
                                    "SIGHUP: these settings changed but apply only after a restart \
                                     (systemctl restart paperboy)"
                                );
                            }
                        }
                        Err(e) => error!(error = %e, "SIGHUP: reload failed"),
                    }
                    notifier.ready("serving; configuration re-read");
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (app, notifier);
        signals.shutdown.wait().await;
    }
}

/// Sleeps for `d` unless asked to stop first. Returns false when stopping.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    !*stop.borrow()
}

/// Takes the leader lease when it is free (or expired, or this instance's own from before a
/// restart), renews it every third of its length while held, publishes the fence to the fetch
/// and plan loops, and gives it back on stop.
async fn lead_loop(
    app: App,
    holder: String,
    current: watch::Sender<Option<LeaderFence>>,
    mut stop: watch::Receiver<bool>,
) {
    let ttl = app.settings.daemon.leader_lease;
    let period = ttl / 3;
    loop {
        let held = current.borrow().clone();
        let now = Utc::now();
        match held {
            Some(fence) => match app
                .store
                .renew_leader_lease(&fence, &holder, now, ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    warn!(
                        generation = fence.generation,
                        "another instance took the leader lease over"
                    );
                    current.send_replace(None);
                }
                // Still ours until it expires; a renewal that keeps failing lets it lapse,
                // and the fence stops our writes once someone else takes it.
                Err(e) => warn!(error = %e, "cannot renew the leader lease; trying again"),
            },
            None => {
                if let Some(fence) = take_lease(&app, &holder).await {
                    current.send_replace(Some(fence));
                }
            }
        }
        if !sleep_or_stop(period, &mut stop).await {
            break;
        }
    }
    let held = current.send_replace(None);
    if let Some(fence) = held {
        match app.store.release_leader_lease(&fence, &holder).await {
            Ok(_) => info!("gave the leader lease back"),
            Err(e) => {
                warn!(error = %e, "could not give the leader lease back; it expires on its own")
            }
        }
    }
}

/// One attempt at the leader lease; logs the outcome that matters.
async fn take_lease(app: &App, holder: &str) -> Option<LeaderFence> {
    let ttl = app.settings.daemon.leader_lease;
    match app
        .store
        .take_leader_lease(LEADER_LEASE, holder, Utc::now(), ttl)
        .await
    {
        Ok(Some(fence)) => {
            info!(
                holder,
                generation = fence.generation,
                "took the leader lease: this instance fetches and plans"
            );
            Some(fence)
        }
        Ok(None) => None,
        Err(e) => {
            warn!(error = %e, "cannot read the leader lease; trying again");
            None
        }
    }
}

/// The scheduled fetches, after the fetch at start when one is due (`start_fetch`, its reason);
/// `started` is set once that first fetch is over (its papers and interests embedded; the
/// abstracts' sentences follow, since planning does not need them).
async fn fetch_loop(
    app: App,
    leadership: Leadership,
    start_fetch: Option<String>,
    started: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    // On a fresh database, or after downtime across a tick, fetch now: waiting for the next
    // tick (up to a whole period) would leave a new deployment's preview empty meanwhile.
    if let Some(reason) = start_fetch {
        match leadership.confirm(&app).await {
            Some(fence) => {
                info!(
                    reason,
                    generation = fence.generation,
                    "fetch at start: leading, fetching"
                );
                run_fetch(&app, &fence).await;
                started.send_replace(true);
                embed_highlights(&app).await;
            }
            None => info!(
                reason,
                "fetch at start: not the leader, another instance fetches"
            ),
        }
    }
    started.send_replace(true);
    loop {
        // Read at every turn: a SIGHUP may have changed the schedule (see `reload`).
        let schedule = app.live.get().fetch_schedule.clone();
        let now = app.clock.now();
        let Some(next) = schedule.after(&now).next() else {
            warn!("schedule.fetch never fires again; the fetcher stops");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        if !sleep_or_stop(wait, &mut stop).await {
            return;
        }
        // One fetch per tick across all instances: only the leader's.
        let Some(fence) = leadership.confirm(&app).await else {
            info!(tick = %next.to_rfc3339(), "scheduled fetch: not the leader, another instance fetches");
            continue;
        };
        info!(tick = %next.to_rfc3339(), generation = fence.generation, "scheduled fetch: leading, fetching");
        run_fetch(&app, &fence).await;
        embed_highlights(&app).await;
    }
}

/// Reads the bounce mailbox every `mail.bounce_check_secs`, when one is configured; only the
/// leader, so that instances do not read the same messages at once (a report would still
/// count once: `bounce_reports` holds one per delivery).
async fn bounce_loop(app: App, leadership: Leadership, mut stop: watch::Receiver<bool>) {
    if app.settings.mail.bounce_mailbox.is_none() {
        return;
    }
    let every = app.settings.mail.bounce_check_every;
    loop {
        if !sleep_or_stop(every, &mut stop).await {
            return;
        }
        if leadership.confirm(&app).await.is_none() {
            continue;
        }
        let span = info_span!("bounces");
        match crate::bounces::read_mailbox(&app).instrument(span.clone()).await {
            Ok(Some(s)) if s.read > 0 => span.in_scope(|| s.log("the bounce mailbox")),
            Ok(_) => {}
            Err(e) => span.in_scope(|| {
                warn!(error = %e, "cannot read the bounce mailbox; trying again at the next check")
            }),
        }
    }
}

/// One fetch run as the leader: catch-up from each source's checkpoint (the day before, after
/// downtime the days missed), then the current listings.
async fn run_fetch(app: &App, fence: &LeaderFence) {
    let today = app.clock.now().date_naive();
    let sources = match fetch::sources(app, None) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot set up the sources");
            return;
        }
    };
    let span = info_span!("fetch_run", date = %today, generation = fence.generation);
    async {
        fetch::fetch_scheduled(app, &sources, today).await;
        // The new papers' vectors, and any interest clause a failed embedding left without
        // one: before the next planning run reads them.
        if let Err(e) = embed::embed_papers(app, &embed::Quiet).await {
            error!(error = %e, "could not embed the new papers; they are matched by words alone");
        }
        if let Err(e) = embed::embed_all_interests(app, &embed::Quiet).await {
            error!(error = %e, "could not embed interests; those are matched by words alone");
        }
    }
    .instrument(span)
    .await;
}

/// The new papers' abstract sentences, after a fetch run and outside it: planning needs only
/// the papers' and interests' vectors, so the first planning after a start does not wait for
/// these (about one and a half times the papers' embedding).
async fn embed_highlights(app: &App) {
    if let Err(e) = embed::embed_sentences(app, &embed::Quiet)
        .instrument(info_span!("embed_sentences"))
        .await
    {
        warn!(error = %e, "could not embed abstract sentences; papers picked by meaning show their opening");
    }
}

/// Why the daemon should fetch as it starts, if it should: an enabled source that has never
/// fetched successfully, or whose last success is older than the `schedule.fetch` tick that
/// followed it (see [`missed_tick`]).
async fn fetch_due_at_start(app: &App) -> Option<String> {
    let schedule = app.live.get().fetch_schedule.clone();
    let sources = fetch::sources(app, None).ok()?;
    let statuses = match app.store.source_statuses().await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot read the sources' state; fetching at the next tick");
            return None;
        }
    };
    let now = app.clock.now();
    sources.iter().find_map(|source| {
        let last = statuses
            .iter()
            .find(|s| s.source == source.name())
            .and_then(|s| s.last_success_at);
        missed_tick(&schedule, last, now).then(|| match last {
            None => format!("source {} has never been fetched", source.name()),
            Some(at) => format!(
                "source {} last fetched at {}, before a scheduled fetch that did not run",
                source.name(),
                at.to_rfc3339()
            ),
        })
    })
}

/// True when `schedule` fired between `last_success` and `now`, or there never was a success:
/// that fetch was missed (no instance ran, or it failed). For an hourly schedule that is a
/// last fetch older than an hour, or one from before the hour turned. Comparing with the
/// tick rather than with the period also catches a daily schedule whose tick passed an hour
/// after a manual fetch.
pub fn missed_tick(
    schedule: &cron::Schedule,
    last_success: Option<chrono::DateTime<Utc>>,
    now: chrono::DateTime<Utc>,
) -> bool {
    match last_success {
        None => true,
        Some(at) => schedule.after(&at).next().is_some_and(|tick| tick <= now),
    }
}

async fn plan_send_loop(
    app: App,
    owner: String,
    leadership: Leadership,
    mut start_fetched: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    // One circuit breaker for the life of the process: an outage seen in one round pauses the next.
    let options = SendOptions::new(app.mailer.clone(), owner);
    let mut fetched = false;
    loop {
        // The watchdog and /readyz trust this beat: it proves the loop came round again.
        app.metrics.scheduler.beat();
        // A fetcher that is gone (it never is, short of a panic) is waited for no longer.
        fetched = fetched || *start_fetched.borrow() || start_fetched.has_changed().is_err();
        let span = info_span!("plan_send", at = %Utc::now());
        let (failed, leading) = async {
            let mut failed = false;
            let fence = leadership.confirm(&app).await;
            let leading = fence.is_some();
            if !fetched && leading {
                info!("planning waits for the fetch at start to finish; sending goes on");
            } else if let Some(fence) = fence {
                match plan_as_leader(&app, PlanMode::Scheduled, fence).await {
                    Ok(r) if r.due > 0 => {
                        app.metrics.digests_planned(r.planned);
                        info!(planned = r.planned, empty = r.empty, "planned")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failed = true;
                        error!(error = %e, "planning failed; trying again shortly")
                    }
                }
            }
            match send_due(
                &app,
                &options,
                app.settings.mail.max_connections as usize,
                stop.clone(),
            )
            .await
            {
                Ok(r) if r.sent + r.retrying + r.failed + r.released > 0 || r.circuit_open => {
                    info!(
                        sent = r.sent,
                        retrying = r.retrying,
                        failed = r.failed,
                        suspended = r.suspended,
                        released = r.released,
                        circuit_open = r.circuit_open,
                        "sent"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    failed = true;
                    error!(error = %e, "sending failed; trying again shortly")
                }
            }
            (failed, leading)
        }
        .instrument(span)
        .await;
        let pause = if failed {
            RETRY_AFTER_ERROR
        } else if leading {
            PLAN_INTERVAL
        } else {
            FOLLOWER_POLL
        };
        let go_on = tokio::select! {
            go_on = sleep_or_stop(pause, &mut stop) => go_on,
            // Plan as soon as the fetch at start is over rather than a whole pause later.
            _ = start_fetched.wait_for(|done| *done), if leading && !fetched => true,
        };
        if !go_on {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::str::FromStr;

    fn at(h: u32, m: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 10, 25, h, m, 0).unwrap()
    }

    #[test]
    fn a_fetch_is_due_at_start_only_when_a_tick_passed_since_the_last_success() {
        let hourly = cron::Schedule::from_str("0 0 * * * *").unwrap();
        assert!(missed_tick(&hourly, None, at(9, 0)), "never fetched");
        assert!(
            !missed_tick(&hourly, Some(at(9, 1)), at(9, 2)),
            "a restart right after a fetch"
        );
        assert!(
            !missed_tick(&hourly, Some(at(9, 0)), at(9, 59)),
            "the 09:00 fetch ran; the next is at 10:00"
        );
        assert!(
            missed_tick(&hourly, Some(at(9, 30)), at(10, 5)),
            "the 10:00 tick passed without a fetch"
        );
        let daily = cron::Schedule::from_str("0 0 6 * * *").unwrap();
        assert!(
            missed_tick(&daily, Some(at(5, 0)), at(7, 0)),
            "a manual fetch at 05:00 does not stand in for the 06:00 one"
        );
        assert!(!missed_tick(&daily, Some(at(6, 0)), at(23, 0)));
        let never = cron::Schedule::from_str("0 0 0 1 1 * 2020").unwrap();
        assert!(
            !missed_tick(&never, Some(at(6, 0)), at(7, 0)),
            "a schedule that never fires again asks for nothing"
        );
    }
}
