//! The leader lease: which instance runs fetch and plan when several share one database.
//!
//! What it is for: a row per job family in `leader_leases` (name, holder, generation,
//! expires_at). An instance takes the lease when it is free, expired or already its own, and
//! renews it while it works. Each take increments `generation`, the fencing token: a write
//! guarded by the lease ([`Store::plan_deliveries`] with a [`LeaderFence`]) first checks, inside
//! its own transaction, that the generation it holds is still the current one. The check is an
//! `UPDATE` of the lease row, so on PostgreSQL it holds the row lock until the batch commits and
//! a takeover waits for it (or the batch sees the new generation and writes nothing); on SQLite
//! it takes the single write lock. A paused-then-resumed old leader therefore cannot write.
//! What it is not for: deciding when to take or renew (`daemon`), or claiming deliveries
//! to send (every instance sends; that is `claim_due`'s per-row lease).

use super::{Store, StoreError, on_pool, to_ms};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The lease a planning run writes under: the lease's name and the generation taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderFence {
    pub name: String,
    pub generation: i64,
}

impl Store {
    /// Takes the lease `name` for `holder` until `now + ttl` when nobody holds it, it expired,
    /// or `holder` already holds it (an instance restarted under the same name need not wait).
    /// Every take starts a new generation, which fences off any earlier holder, including an
    /// earlier life of this same holder. `None` when another holder's lease is still running.
    pub async fn take_leader_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<LeaderFence>, StoreError> {
        let until = to_ms(now) + ttl.as_millis() as i64;
        // One statement, so that two instances racing for a free lease cannot both win: on
        // PostgreSQL the conflicting row is locked and the WHERE re-read, on SQLite writes are
        // serial.
        let generation: Option<i64> = on_pool!(self, p => sqlx::query_scalar(
            "INSERT INTO leader_leases (name, holder, generation, expires_at)
             VALUES ($1, $2, 1, $3)
             ON CONFLICT (name) DO UPDATE
                SET holder = excluded.holder,
                    generation = leader_leases.generation + 1,
                    expires_at = excluded.expires_at
              WHERE leader_leases.holder = excluded.holder OR leader_leases.expires_at <= $4
             RETURNING generation",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(to_ms(now))
        .fetch_optional(p)
        .await)?;
        Ok(generation.map(|generation| LeaderFence {
            name: name.to_string(),
            generation,
        }))
    }

    /// Extends the lease held under `fence` to `now + ttl`. False when it was taken over (the
    /// caller is no longer the leader and must stop leading).
    pub async fn renew_leader_lease(
        &self,
        fence: &LeaderFence,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let until = to_ms(now) + ttl.as_millis() as i64;
        let done = on_pool!(self, p => sqlx::query(
            "UPDATE leader_leases SET expires_at = $1
              WHERE name = $2 AND holder = $3 AND generation = $4",
        )
        .bind(until)
        .bind(&fence.name)
        .bind(holder)
        .bind(fence.generation)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Gives the lease up (on a clean stop), so another instance need not wait for it to expire.
    pub async fn release_leader_lease(
        &self,
        fence: &LeaderFence,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => sqlx::query(
            "UPDATE leader_leases SET expires_at = 0
              WHERE name = $1 AND holder = $2 AND generation = $3",
        )
        .bind(&fence.name)
        .bind(holder)
        .bind(fence.generation)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }
}

/// Checks the fence inside the caller's transaction `tx`: the lease `fence.name` must still be
/// at `fence.generation`. The `UPDATE` (which changes nothing) locks the lease row until the
/// transaction ends, so no takeover can commit between this check and the caller's commit.
macro_rules! check_fence {
    ($tx:expr, $fence:expr) => {{
        let fence: &$crate::store::LeaderFence = $fence;
        let held = sqlx::query(
            "UPDATE leader_leases SET generation = generation
              WHERE name = $1 AND generation = $2",
        )
        .bind(&fence.name)
        .bind(fence.generation)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if held != 1 {
            return Err($crate::store::StoreError::Fenced {
                name: fence.name.clone(),
                generation: fence.generation,
            });
        }
    }};
}
pub(crate) use check_fence;
