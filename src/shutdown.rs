//! Being asked to stop: SIGTERM (systemd, `kill`) and SIGINT (Ctrl-C), for the daemon and for
//! every long command (`send`, `fetch`, `subscriber import`, `db copy`).
//!
//! What it is for: one place that turns those signals into a flag the work checks between its
//! units (a message, a day, a batch), so that every command stops the same way: nothing new is
//! started, what is under way finishes and is recorded, and the process exits 0. A second
//! Ctrl-C means "now": the process exits 130 at once (what was committed stays committed; the
//! outbox's leases and the unique keys make the next run pick up from there).
//! What it is not for: deciding what a unit of work is (the callers do) or SIGHUP (`reload`,
//! which only the daemon listens to).

use tokio::sync::watch;
use tracing::{info, warn};

/// The exit status of a process stopped by a second Ctrl-C: 128 + SIGINT, what a shell reports
/// for a program killed by Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The stop flag, set once by the first SIGTERM or SIGINT. Cheap to clone; every clone sees the
/// same flag.
#[derive(Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the handlers and starts listening. From this moment the signals no longer kill
    /// the process, so call it before the work starts (before opening the database: a stop that
    /// arrives while migrations run is honoured once they are done, instead of cutting them off).
    /// Needs a tokio runtime.
    pub fn install() -> anyhow::Result<Shutdown> {
        let (tx, rx) = watch::channel(false);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())
                .map_err(|e| anyhow::anyhow!("cannot install a SIGTERM handler: {e}"))?;
            let mut int = signal(SignalKind::interrupt())
                .map_err(|e| anyhow::anyhow!("cannot install a SIGINT handler: {e}"))?;
            tokio::spawn(async move {
                loop {
                    let interrupt = tokio::select! {
                        _ = term.recv() => false,
                        _ = int.recv() => true,
                    };
                    note(&tx, interrupt);
                }
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                note(&tx, true);
            }
        });
        Ok(Shutdown { requested: rx })
    }

    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Returns when a stop is asked for (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.requested.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// The flag as a watch receiver, for jobs that take one (`delivery::send_due`).
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.requested.clone()
    }
}

/// One signal arrived: the first sets the flag; a second Ctrl-C exits at once.
fn note(tx: &watch::Sender<bool>, interrupt: bool) {
    let name = if interrupt { "interrupt" } else { "SIGTERM" };
    if !*tx.borrow() {
        info!(
            "{name} received; stopping once the work under way is done (Ctrl-C again to stop at once)"
        );
        tx.send_replace(true);
    } else if interrupt {
        // stderr directly: the log may be a file the person at the terminal does not see.
        eprintln!("second interrupt: stopping at once");
        std::process::exit(EXIT_INTERRUPTED);
    } else {
        warn!("SIGTERM received again; still finishing the work under way");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_signal_sets_the_flag_and_later_sigterms_leave_it_set() {
        let (tx, rx) = watch::channel(false);
        let shutdown = Shutdown { requested: rx };
        assert!(!shutdown.requested());
        note(&tx, false);
        assert!(shutdown.requested());
        shutdown.wait().await;
        note(&tx, false);
        assert!(
            shutdown.requested(),
            "a second SIGTERM neither clears nor exits"
        );
    }
}
