//! Stored addresses brought to today's normal form, once per database.
//!
//! What for: `EmailAddress::parse` now stores a domain in its ASCII (punycode) form, so rows
//! written before (`ann@exÄmple.org`, `ann@exämple.org`) would not be found under the address
//! their owner types today, and two rows could be one mailbox. After the SQL migrations,
//! [`Store::normalise_addresses`] re-parses every stored address and rewrites the ones whose
//! normal form differs. It runs once: the row it adds to `data_migrations` is taken first, in
//! the same transaction, so a second instance starting at the same time waits and then skips.
//!
//! When several rows share one normal form (a collision), one is kept ([`keep_first`]: active
//! first, then the most recently confirmed, then the oldest) and takes the normal form. The
//! others lose no data: each is recorded in `address_collisions` with its address and status as
//! they were, keeps its address (see the migration for the one exception), and is paused if it
//! was active or pending, so that one mailbox gets one digest. Rows whose address no longer
//! parses at all (quoted local parts, invisible characters) are left as they are and logged by
//! id; their digests fail with the reason (`delivery`).

use super::{Store, StoreError, on_pool, to_ms};
use crate::model::EmailAddress;
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::HashMap;
use tracing::{info, warn};

/// The name of this rewrite in `data_migrations`.
const NAME: &str = "addresses-ascii-domain";

/// One stored subscriber, as the rewrite needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct StoredAddress {
    pub id: i64,
    pub email: String,
    pub status: String,
    pub confirmed_at: Option<i64>,
}

/// What to write.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AddressPlan {
    /// (id, normal form) of kept rows whose stored form differs.
    pub rewrites: Vec<(i64, String)>,
    /// Rows that collide with a kept one.
    pub collisions: Vec<Collision>,
    /// (id, what is wrong) of rows that do not parse any more.
    pub unreadable: Vec<(i64, &'static str)>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Collision {
    pub row: StoredAddress,
    pub kept_id: i64,
    /// The row holds the normal form itself, which the kept row takes: its address must move.
    pub holds_normal_form: bool,
}

/// The order in which rows sharing one normal form are kept: an active row before any other
/// (its owner is reading the digests), then the most recent confirmation, then the oldest row.
fn keep_first(row: &StoredAddress) -> (bool, Reverse<Option<i64>>, i64) {
    (row.status != "active", Reverse(row.confirmed_at), row.id)
}

/// Decides the rewrite from the stored rows. Pure, so that the rule is tested on its own.
pub(crate) fn plan(rows: Vec<StoredAddress>) -> AddressPlan {
    let mut out = AddressPlan::default();
    let mut groups: HashMap<String, Vec<StoredAddress>> = HashMap::new();
    for row in rows {
        match EmailAddress::parse(&row.email) {
            Ok(normal) => groups
                .entry(normal.as_str().to_string())
                .or_default()
                .push(row),
            Err(e) => out.unreadable.push((row.id, e.problem())),
        }
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|(_, rows)| rows.iter().map(|r| r.id).min());
    for (normal, mut rows) in groups {
        rows.sort_by_key(keep_first);
        let mut rows = rows.into_iter();
        let kept = rows.next().expect("a group has a row");
        for row in rows {
            out.collisions.push(Collision {
                holds_normal_form: row.email == normal,
                kept_id: kept.id,
                row,
            });
        }
        if kept.email != normal {
            out.rewrites.push((kept.id, normal));
        }
    }
    out.collisions.sort_by_key(|c| c.row.id);
    out.unreadable.sort_unstable();
    out
}

impl Store {
    /// Rewrites stored addresses to their normal form, once per database (see the module
    /// documentation for the rule). Returns what was done; `None` when it had been done before.
    pub(crate) async fn normalise_addresses(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<AddressPlan>, StoreError> {
        let now = to_ms(now);
        let plan = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let first: Option<String> = sqlx::query_scalar(
                "INSERT INTO data_migrations (name, applied_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING RETURNING name",
            )
            .bind(NAME)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if first.is_none() {
                return Ok(None);
            }
            let rows: Vec<StoredAddress> = sqlx::query_as(
                "SELECT id, email, status, confirmed_at FROM subscribers ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?;
            let plan = plan(rows);
            // First free the normal forms that colliding rows hold, then pause and record
            // the colliding rows, then give the kept rows their normal form.
            for c in &plan.collisions {
                if c.holds_normal_form {
                    sqlx::query("UPDATE subscribers SET email = $1, updated_at = $2 WHERE id = $3")
                        .bind(format!("{} (duplicate of subscriber {})", c.row.email, c.kept_id))
                        .bind(now)
                        .bind(c.row.id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO address_collisions
                       (subscriber_id, kept_id, stored_email, stored_status, found_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(c.row.id)
                .bind(c.kept_id)
                .bind(&c.row.email)
                .bind(&c.row.status)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE subscribers SET status = 'paused', updated_at = $1
                     WHERE id = $2 AND status IN ('active', 'pending')",
                )
                .bind(now)
                .bind(c.row.id)
                .execute(&mut *tx)
                .await?;
            }
            for (id, normal) in &plan.rewrites {
                sqlx::query("UPDATE subscribers SET email = $1, updated_at = $2 WHERE id = $3")
                    .bind(normal)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            plan
        });
        // Ids only: addresses are personal data and stay out of logs.
        for c in &plan.collisions {
            warn!(
                subscriber = c.row.id,
                kept = c.kept_id,
                was = %c.row.status,
                "two subscribers had one address in different forms; this one was paused and \
                 recorded in address_collisions (deploy/README.md, \"Addresses\")"
            );
        }
        for (id, problem) in &plan.unreadable {
            warn!(
                subscriber = id,
                problem,
                "a stored address cannot be mailed and was left as it is; its digests will \
                 fail until it is corrected or the subscriber removed"
            );
        }
        if !plan.rewrites.is_empty() || !plan.collisions.is_empty() {
            info!(
                rewritten = plan.rewrites.len(),
                collisions = plan.collisions.len(),
                "stored addresses brought to their normal form (ASCII domain)"
            );
        }
        Ok(Some(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, email: &str, status: &str, confirmed_at: Option<i64>) -> StoredAddress {
        StoredAddress {
            id,
            email: email.into(),
            status: status.into(),
            confirmed_at,
        }
    }

    #[test]
    fn normal_forms_are_left_alone_and_old_forms_rewritten() {
        let plan = plan(vec![
            row(1, "ada@example.org", "active", Some(1)),
            row(2, "ann@exÄmple.org", "active", Some(1)),
            row(3, "bob@bücher.example", "paused", None),
        ]);
        assert_eq!(
            plan.rewrites,
            [
                (2, "ann@xn--exmple-cua.org".to_string()),
                (3, "bob@xn--bcher-kva.example".to_string())
            ]
        );
        assert!(plan.collisions.is_empty());
        assert!(plan.unreadable.is_empty());
    }

    #[test]
    fn the_normal_form_is_its_own_normal_form() {
        for a in [
            "Ann@EXÄMPLE.org",
            "José@Bücher.example",
            "x+y@Sub.Example.ORG",
        ] {
            let once = EmailAddress::parse(a).unwrap();
            assert_eq!(EmailAddress::parse(once.as_str()).unwrap(), once, "{a}");
        }
    }

    #[test]
    fn in_a_collision_the_active_then_most_recently_confirmed_row_is_kept() {
        let plan = plan(vec![
            row(1, "ann@xn--exmple-cua.org", "unsubscribed", Some(50)),
            row(2, "ann@exÄmple.org", "active", Some(10)),
            row(3, "ann@exämple.org", "active", Some(20)),
        ]);
        // Row 3: active and confirmed last. It takes the normal form that row 1 holds.
        assert_eq!(plan.rewrites, [(3, "ann@xn--exmple-cua.org".to_string())]);
        let lost: Vec<(i64, i64, bool)> = plan
            .collisions
            .iter()
            .map(|c| (c.row.id, c.kept_id, c.holds_normal_form))
            .collect();
        assert_eq!(lost, [(1, 3, true), (2, 3, false)]);

        // Nobody active: the most recent confirmation wins, then the oldest row.
        let plan = super::plan(vec![
            row(4, "bo@exÄmple.org", "paused", Some(5)),
            row(5, "bo@exämple.org", "pending", None),
            row(6, "bo@EXÄMPLE.org", "paused", Some(9)),
        ]);
        assert_eq!(plan.rewrites, [(6, "bo@xn--exmple-cua.org".to_string())]);
        assert_eq!(plan.collisions.len(), 2);
    }

    #[test]
    fn rows_that_no_longer_parse_are_reported_not_rewritten() {
        let plan = plan(vec![
            row(7, "\"john doe\"@example.org", "active", Some(1)),
            row(8, "ann\u{200B}@example.org", "active", Some(1)),
        ]);
        assert!(plan.rewrites.is_empty());
        assert_eq!(
            plan.unreadable,
            [(7, "quoted local part"), (8, "a zero-width character")]
        );
    }
}
