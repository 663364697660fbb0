//! The statements whose SQL differs between SQLite and PostgreSQL. Everything else is shared.

/// Claims due deliveries under a lease. PostgreSQL needs `FOR UPDATE SKIP LOCKED` so that
/// several instances claim disjoint rows without waiting on each other; SQLite has one writer at
/// a time, so the plain sub-select is already atomic there (and SQLite has no `FOR UPDATE`).
pub(super) fn claim_due(postgres: bool) -> String {
    let lock = if postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    format!(
        "UPDATE deliveries
            SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1
          WHERE id IN (
                SELECT id FROM deliveries
                 WHERE (status IN ('planned', 'retry') AND next_attempt_at <= $3)
                    OR (status = 'sending' AND lease_until < $4)
                 ORDER BY next_attempt_at, id
                 LIMIT $5
                 {lock})
        RETURNING id, subscriber_id, digest_date, attempts, message_id, planned_at"
    )
}
