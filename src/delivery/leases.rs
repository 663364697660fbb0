//! Leases on claimed deliveries: who holds them, keeping them alive, and taking back those of
//! workers that died on this host.
//!
//! A lease owner is named `host:pid:nonce` ([`worker_id`]); reaping reads that name back, so
//! both live here. Leases are short ([`LEASE`]) and renewed every quarter of it while a send
//! run lasts, so a dead worker's rows come back within minutes and a live worker never loses a
//! row to a slow server. Not for: claiming or marking rows (`store::deliveries`).

use crate::jobs::App;
use crate::store::StoreError;
use chrono::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// How long a claimed delivery stays ours without renewal. Renewed every quarter of it while
/// this worker runs; a crashed worker's deliveries are claimable again after at most this.
pub const LEASE: Duration = Duration::minutes(2);

/// Names this process's leases: host, process id and a random part, so that two instances on
/// one host (or a restarted one reusing a pid) never share an owner.
pub fn worker_id() -> String {
    use rand::Rng;
    format!(
        "{}:{}:{:08x}",
        host_name(),
        std::process::id(),
        rand::thread_rng().r#gen::<u32>()
    )
}

/// This machine's name, as lease owners carry it (and the daemon's default instance id).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The host and process of a [`worker_id`]; `None` for a name of another form.
fn owner_process(owner: &str) -> Option<(&str, u32)> {
    let mut parts = owner.rsplitn(3, ':');
    let (_nonce, pid, host) = (parts.next()?, parts.next()?, parts.next()?);
    Some((host, pid.parse().ok()?))
}

/// Keeps `owner`'s leases alive until `done`.
pub(super) async fn renew_leases(app: App, owner: String, mut done: watch::Receiver<bool>) {
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
pub(super) async fn reclaim_dead_local_leases(app: &App) -> Result<u64, StoreError> {
    let host = host_name();
    let mut reclaimed = 0;
    for owner in app.store.lease_owners().await? {
        let Some((owner_host, pid)) = owner_process(&owner) else {
            continue;
        };
        if owner_host != host {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_id_reads_back_as_this_host_and_process() {
        let id = worker_id();
        assert_eq!(
            owner_process(&id),
            Some((host_name().as_str(), std::process::id()))
        );
        // Host names may hold colons (an instance named after an address); the pid and nonce
        // are the last two parts.
        assert_eq!(owner_process("fe80::1:42:0badcafe"), Some(("fe80::1", 42)));
        assert_eq!(owner_process("no-pid-here"), None);
        assert_eq!(owner_process("host:notapid:0badcafe"), None);
    }
}
