//! `paperboy run`: the scheduler, the send workers and the web server in one process.
//!
//! Fetch runs on the `schedule.fetch` cron; every minute the planner looks for subscribers whose
//! local send time has passed and the sender drains what is due. SIGTERM or Ctrl-C stops taking
//! new work, lets the SMTP transactions in flight finish (at most `daemon.shutdown_timeout_secs`),
//! hands back unsent leases and exits 0. SIGHUP re-reads the configuration (see `reload`).
//!
//! Under systemd (`Type=notify`) it says `READY=1` once the database is migrated (the caller
//! did that) and the web server is bound, `STOPPING=1` when asked to stop, and pings the
//! watchdog only while the plan/send loop's heartbeat is fresh (see `notify`).

use super::App;
use super::fetch;
use super::plan::{PlanMode, plan};
use super::send::{SendOptions, send_due};
use crate::metrics::SCHEDULER_STALE_AFTER;
use crate::notify::{self, Notifier};
use chrono::Utc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

/// How often the planner looks for subscribers whose time has come.
pub const PLAN_INTERVAL: Duration = Duration::from_secs(60);

/// SIGTERM, SIGINT and SIGHUP, caught from the moment [`Signals::install`] runs. Install them
/// before opening the database: a stop that arrives while migrations run is then honoured as
/// soon as the daemon starts (exit 0) instead of killing the process mid-migration.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate())
                .map_err(|e| anyhow::anyhow!("cannot install a SIGTERM handler: {e}"))?;
            let hup = signal(SignalKind::hangup())
                .map_err(|e| anyhow::anyhow!("cannot install a SIGHUP handler: {e}"))?;
            Ok(Signals { term, hup })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }
}

pub async fn run(app: App, signals: Signals) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
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
    let fetcher = tokio::spawn(fetch_loop(app.clone(), stop_rx.clone()));
    let sender = tokio::spawn(plan_send_loop(app.clone(), owner.clone(), stop_rx.clone()));
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
    let _ = stop_tx.send(true);
    let mut tasks = vec![("sender", sender), ("fetcher", fetcher), ("web", web)];
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

/// Waits for SIGTERM or Ctrl-C; meanwhile each SIGHUP reloads what can be reloaded.
async fn wait_for_stop(app: &App, notifier: &Notifier, signals: Signals) {
    #[cfg(unix)]
    {
        let Signals { mut term, mut hup } = signals;
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM received"); return; }
                _ = tokio::signal::ctrl_c() => { info!("interrupt received"); return; }
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
        let _ = (app, notifier, signals);
        let _ = tokio::signal::ctrl_c().await;
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

async fn fetch_loop(app: App, mut stop: watch::Receiver<bool>) {
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
        let today = app.clock.now().date_naive();
        let sources = match fetch::sources(&app, None) {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot set up the sources");
                continue;
            }
        };
        // Catch-up from each source's checkpoint (the day before, after downtime the days
        // missed), then the current listings.
        fetch::fetch_scheduled(&app, &sources, today)
            .instrument(info_span!("fetch_run", date = %today))
            .await;
    }
}

async fn plan_send_loop(app: App, owner: String, mut stop: watch::Receiver<bool>) {
    // One circuit breaker for the life of the process: an outage seen in one round pauses the next.
    let options = SendOptions::new(app.mailer.clone(), owner);
    loop {
        // The watchdog and /readyz trust this beat: it proves the loop came round again.
        app.metrics.scheduler.beat();
        let span = info_span!("plan_send", at = %Utc::now());
        async {
            match plan(&app, PlanMode::Scheduled).await {
                Ok(r) if r.due > 0 => {
                    app.metrics.digests_planned(r.planned);
                    info!(planned = r.planned, empty = r.empty, "planned")
                }
                Ok(_) => {}
                Err(e) => error!(error = %e, "planning failed; trying again next minute"),
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
                Err(e) => error!(error = %e, "sending failed; trying again next minute"),
            }
        }
        .instrument(span)
        .await;
        if !sleep_or_stop(PLAN_INTERVAL, &mut stop).await {
            return;
        }
    }
}

/// Names this process's leases: host, process id and a random part, so that two instances on
/// one host (or a restarted one reusing a pid) never share an owner.
pub fn worker_id() -> String {
    use rand::Rng;
    let host = hostname();
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::thread_rng().r#gen::<u32>()
    )
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
