//! `paperboy run`: the scheduler, the send workers and the web server in one process.
//!
//! Fetch runs on the `schedule.fetch` cron; every minute the planner looks for subscribers whose
//! local send time has passed and the sender drains what is due. SIGTERM or Ctrl-C stops taking
//! new work, lets the SMTP transactions in flight finish, hands back unsent leases and exits.

use super::App;
use super::fetch;
use super::plan::{PlanMode, plan};
use super::send::{SendOptions, send_due};
use chrono::Utc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

/// How often the planner looks for subscribers whose time has come.
pub const PLAN_INTERVAL: Duration = Duration::from_secs(60);

pub async fn run(app: App) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);

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
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                error!(error = %e, "web server failed");
            }
        }
    });
    let fetcher = tokio::spawn(fetch_loop(app.clone(), stop_rx.clone()));
    let sender = tokio::spawn(plan_send_loop(app.clone(), stop_rx.clone()));

    wait_for_signal().await;
    info!("stopping: no new work is taken; messages in flight are finished");
    let _ = stop_tx.send(true);
    for (name, task) in [("sender", sender), ("fetcher", fetcher), ("web", web)] {
        if let Err(e) = task.await {
            warn!(task = name, error = %e, "task ended abnormally");
        }
    }
    app.store.close().await;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("interrupt received"),
        }
    }
    #[cfg(not(unix))]
    {
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
    let schedule = app.settings.schedule.fetch.clone();
    loop {
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
        // Yesterday too: papers listed late in a UTC day would otherwise be missed.
        for date in [today - chrono::Duration::days(1), today] {
            fetch::fetch_day(&app, &sources, date)
                .instrument(info_span!("fetch_run", %date))
                .await;
        }
    }
}

async fn plan_send_loop(app: App, mut stop: watch::Receiver<bool>) {
    // One circuit breaker for the life of the process: an outage seen in one round pauses the next.
    let options = SendOptions::new(app.mailer.clone(), worker_id());
    loop {
        let span = info_span!("plan_send", at = %Utc::now());
        async {
            match plan(&app, PlanMode::Scheduled).await {
                Ok(r) if r.due > 0 => info!(planned = r.planned, empty = r.empty, "planned"),
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
