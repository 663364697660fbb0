//! `paperboy db copy`: every table of one database into another (SQLite → PostgreSQL, or any
//! other pair), for moving a deployment.
//!
//! What it is for: [`TABLES`] is the one list of what is copied, column by column, in an order
//! that satisfies the foreign keys; `store_tables_match_the_migrations` (below) fails when a
//! migration adds a table or column that is not on it. The source is read inside one read
//! transaction (a snapshot: SQLite's WAL read transaction, PostgreSQL's `REPEATABLE READ`), a
//! batch at a time in primary-key order; each batch is written in its own transaction.
//! After the copy PostgreSQL's identity sequences are moved past the copied ids.
//! What it is not for: merging two live databases (a non-empty target is refused unless
//! `--force`, which empties it first) or converting the schema (both sides are migrated to
//! this binary's schema first).

use super::{Backend, Store, StoreError, dialect};

/// How a column's values are read and bound (nulls are bound with the column's type, which
/// PostgreSQL insists on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Real,
    Text,
    Bytes,
}

/// One copied table.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnKind)],
    /// The primary key's columns (a prefix of `columns`): the order batches are read in.
    pub key: &'static [&'static str],
    /// The column backed by an identity sequence on PostgreSQL, reset after the copy.
    pub identity: Option<&'static str>,
}

use ColumnKind::{Bytes, Int, Real, Text};

/// Every table that holds data, parents before children. Not copied: `_sqlx_migrations` (each
/// side is migrated by this binary) and `leader_leases` (who leads is a fact about running
/// instances, not data: the target's instances take the lease afresh), and `data_migrations`
/// (the target ran those rewrites itself when it was migrated).
pub const TABLES: &[Table] = &[
    Table {
        name: "papers",
        columns: &[
            ("id", Text),
            ("title", Text),
            ("abstract", Text),
            ("authors", Text),
            ("categories", Text),
            ("published_at", Int),
            ("first_seen_at", Int),
            ("updated_at", Int),
            ("upvotes", Int),
            ("abstract_url", Text),
            ("pdf_url", Text),
            ("hf_url", Text),
            ("code_url", Text),
            ("project_url", Text),
            ("sources", Text),
            ("doi", Text),
            ("comment", Text),
            ("journal_ref", Text),
        ],
        key: &["id"],
        identity: None,
    },
    Table {
        name: "paper_sources",
        columns: &[
            ("paper_id", Text),
            ("source", Text),
            ("first_seen_at", Int),
            ("last_seen_at", Int),
            ("announce_type", Text),
        ],
        key: &["paper_id", "source"],
        identity: None,
    },
    Table {
        name: "subscribers",
        columns: &[
            ("id", Int),
            ("email", Text),
            ("status", Text),
            ("interests", Text),
            ("frequency", Text),
            ("send_time", Text),
            ("timezone", Text),
            ("max_papers", Int),
            ("token_version", Int),
            ("hard_bounces", Int),
            ("created_at", Int),
            ("confirmed_at", Int),
            ("updated_at", Int),
            ("confirm_nonce", Text),
            ("confirm_sent_at", Int),
            ("link_sent_at", Int),
            ("last_bounce_at", Int),
            ("last_bounce", Text),
        ],
        key: &["id"],
        identity: Some("id"),
    },
    Table {
        name: "subscriber_profiles",
        columns: &[
            ("subscriber_id", Int),
            ("authors", Text),
            ("categories", Text),
            ("category_mode", Text),
            ("examples", Text),
            ("updated_at", Int),
        ],
        key: &["subscriber_id"],
        identity: None,
    },
    Table {
        name: "deliveries",
        columns: &[
            ("id", Int),
            ("subscriber_id", Int),
            ("digest_date", Text),
            ("status", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("lease_owner", Text),
            ("lease_until", Int),
            ("message_id", Text),
            ("last_error", Text),
            ("planned_at", Int),
            ("sent_at", Int),
        ],
        key: &["id"],
        identity: Some("id"),
    },
    Table {
        name: "bounce_reports",
        columns: &[
            ("delivery_id", Int),
            ("subscriber_id", Int),
            ("kind", Text),
            ("status", Text),
            ("detail", Text),
            ("received_at", Int),
        ],
        key: &["delivery_id"],
        identity: None,
    },
    Table {
        name: "delivery_papers",
        columns: &[
            ("delivery_id", Int),
            ("paper_id", Text),
            ("subscriber_id", Int),
            ("rank", Int),
            ("score", Real),
            ("reason", Text),
        ],
        key: &["delivery_id", "paper_id"],
        identity: None,
    },
    Table {
        name: "feedback",
        columns: &[
            ("subscriber_id", Int),
            ("paper_id", Text),
            ("vote", Int),
            ("created_at", Int),
        ],
        key: &["subscriber_id", "paper_id"],
        identity: None,
    },
    Table {
        name: "source_state",
        columns: &[
            ("source", Text),
            ("checkpoint", Text),
            ("last_success_at", Int),
            ("last_error", Text),
            ("last_error_at", Int),
            ("etag", Text),
            ("last_modified", Text),
            ("first_run_at", Int),
            ("last_papers_at", Int),
            ("last_fetched", Int),
            ("last_skipped", Int),
        ],
        key: &["source"],
        identity: None,
    },
    Table {
        name: "address_collisions",
        columns: &[
            ("subscriber_id", Int),
            ("kept_id", Int),
            ("stored_email", Text),
            ("stored_status", Text),
            ("found_at", Int),
        ],
        key: &["subscriber_id"],
        identity: None,
    },
    // Vectors are copied, not recomputed: the target ranks by meaning from its first run.
    Table {
        name: "paper_vectors",
        columns: &[
            ("paper_id", Text),
            ("model", Text),
            ("vector", Bytes),
            ("created_at", Int),
            ("sentences", Bytes),
        ],
        key: &["paper_id"],
        identity: None,
    },
    Table {
        name: "interest_vectors",
        columns: &[
            ("interest", Text),
            ("model", Text),
            ("vector", Bytes),
            ("created_at", Int),
        ],
        key: &["interest"],
        identity: None,
    },
];

/// Tables of the schema that are deliberately not copied (see [`TABLES`]).
pub const NOT_COPIED: &[&str] = &["_sqlx_migrations", "leader_leases", "data_migrations"];

/// One value in flight between the two databases.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// Binds one [`Value`] with its column's type, also when it is null.
macro_rules! bind_value {
    ($q:expr, $v:expr) => {
        match $v {
            Value::Int(x) => $q.bind(*x),
            Value::Real(x) => $q.bind(*x),
            Value::Text(x) => $q.bind(x.clone()),
            Value::Bytes(x) => $q.bind(x.clone()),
        }
    };
}

/// Reads a row of `table` into [`Value`]s by the columns' kinds.
macro_rules! read_row {
    ($row:expr, $table:expr) => {{
        use sqlx::Row;
        $table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                Ok(match kind {
                    ColumnKind::Int => Value::Int($row.try_get::<Option<i64>, _>(i)?),
                    ColumnKind::Real => Value::Real($row.try_get::<Option<f64>, _>(i)?),
                    ColumnKind::Text => Value::Text($row.try_get::<Option<String>, _>(i)?),
                    ColumnKind::Bytes => Value::Bytes($row.try_get::<Option<Vec<u8>>, _>(i)?),
                })
            })
            .collect::<Result<Vec<Value>, sqlx::Error>>()
    }};
}

/// Rows read and written per batch; with at most 18 columns, far below either bind limit.
const BATCH_ROWS: usize = 500;

/// What a copy did, per table in [`TABLES`] order.
#[derive(Debug, Default)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
    /// A stop was asked for: the copy ended after a whole batch, before the tables after it.
    pub stopped: bool,
}

impl Store {
    /// Rows per copied table, for the progress bar and the emptiness check.
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut out = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            let n: i64 = super::on_pool!(self, p => sqlx::query_scalar(
                &format!("SELECT COUNT(*) FROM {}", t.name)
            )
            .fetch_one(p)
            .await)?;
            out.push((t.name, n as u64));
        }
        Ok(out)
    }

    /// Deletes every row of every copied table, children first (`db copy --force`).
    pub async fn empty_copied_tables(&self) -> Result<(), StoreError> {
        super::on_pool!(self, p => {
            let mut tx = p.begin().await?;
            for t in TABLES.iter().rev() {
                sqlx::query(&format!("DELETE FROM {}", t.name))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Copies every table of `self` into `target`, which must be migrated and empty (the
    /// caller checks). `progress` is told how many rows each written batch held. When `stop`
    /// is set the copy ends after the batch under way: every batch is its own transaction on
    /// the target and parents come before children, so what is there is consistent.
    pub async fn copy_into(
        &self,
        target: &Store,
        progress: &(dyn Fn(u64) + Sync),
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<CopyReport, StoreError> {
        let mut report = CopyReport::default();
        // Every table in keyset batches, inside the read transaction `$tx`. A macro because
        // the rows are a different type per database; the loop is the same.
        macro_rules! copy_tables {
            ($tx:ident) => {
                'tables: for table in TABLES {
                    let mut after: Option<Vec<Value>> = None;
                    let mut copied = 0u64;
                    loop {
                        if *stop.borrow() {
                            report.tables.push((table.name, copied));
                            report.stopped = true;
                            break 'tables;
                        }
                        let sql = select_batch(table, after.is_some());
                        let mut q = sqlx::query(&sql);
                        for v in after.iter().flatten() {
                            q = bind_value!(q, v);
                        }
                        let rows = q.fetch_all(&mut *$tx).await?;
                        let batch: Vec<Vec<Value>> = rows
                            .iter()
                            .map(|r| read_row!(r, table))
                            .collect::<Result<_, sqlx::Error>>()?;
                        if batch.is_empty() {
                            break;
                        }
                        after = Some(key_of(table, batch.last().expect("not empty")));
                        target.insert_batch(table, &batch).await?;
                        copied += batch.len() as u64;
                        progress(batch.len() as u64);
                    }
                    report.tables.push((table.name, copied));
                }
            };
        }
        match &self.backend {
            Backend::Sqlite(pool) => {
                // A deferred transaction's first read fixes the WAL snapshot every later read
                // in it sees: writers may go on, the copy does not see them.
                let mut tx = pool.begin().await?;
                copy_tables!(tx);
                tx.commit().await?;
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // One snapshot for every statement of the transaction.
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                copy_tables!(tx);
                tx.commit().await?;
            }
        }
        target.reset_identities().await?;
        Ok(report)
    }

    async fn insert_batch(&self, table: &Table, rows: &[Vec<Value>]) -> Result<(), StoreError> {
        let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            table.name,
            columns.join(", ")
        );
        let width = columns.len();
        for (i, _) in rows.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let marks: Vec<String> = (1..=width).map(|c| format!("${}", i * width + c)).collect();
            sql.push('(');
            sql.push_str(&marks.join(", "));
            sql.push(')');
        }
        super::on_pool!(self, p => {
            let mut q = sqlx::query(&sql);
            for v in rows.iter().flatten() {
                q = bind_value!(q, v);
            }
            q.execute(p).await?;
        });
        Ok(())
    }

    /// Moves each identity sequence past the largest id copied, so the next row inserted on
    /// the target does not collide (PostgreSQL only; SQLite takes max(id) + 1 by itself).
    async fn reset_identities(&self) -> Result<(), StoreError> {
        if let Backend::Postgres(p) = &self.backend {
            for t in TABLES {
                if let Some(column) = t.identity {
                    sqlx::query(&dialect::reset_identity(t.name, column))
                        .execute(p)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The data tables and their columns as the database has them (for checking [`TABLES`]).
    pub async fn schema_columns(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> = super::on_pool!(self, p => sqlx::query_as(
            dialect::list_columns(self.is_postgres())
        )
        .fetch_all(p)
        .await)?;
        Ok(rows)
    }
}

/// `SELECT` of the next batch of `table` in key order, after the key bound as `$1…` when
/// `after` (a row-value comparison, which both databases evaluate with the key's index).
fn select_batch(table: &Table, after: bool) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let key = table.key.join(", ");
    let filter = if after {
        let marks: Vec<String> = (1..=table.key.len()).map(|i| format!("${i}")).collect();
        format!("WHERE ({key}) > ({})", marks.join(", "))
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {} {filter} ORDER BY {key} LIMIT {BATCH_ROWS}",
        columns.join(", "),
        table.name
    )
}

/// The key columns' values of `row` (the key is a prefix of the columns).
fn key_of(table: &Table, row: &[Value]) -> Vec<Value> {
    row[..table.key.len()].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Fails when a migration adds a table or a column that `TABLES` does not copy (or
    /// `TABLES` names one the schema lacks): the list must follow the migrations.
    #[tokio::test]
    async fn store_tables_match_the_migrations() {
        let store = Store::open_and_migrate("sqlite::memory:", 1).await.unwrap();
        let in_schema: BTreeSet<(String, String)> = store
            .schema_columns()
            .await
            .unwrap()
            .into_iter()
            .filter(|(t, _)| !NOT_COPIED.contains(&t.as_str()))
            .collect();
        let listed: BTreeSet<(String, String)> = TABLES
            .iter()
            .flat_map(|t| {
                t.columns
                    .iter()
                    .map(|(c, _)| (t.name.to_string(), c.to_string()))
            })
            .collect();
        assert_eq!(
            in_schema.difference(&listed).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "in the schema but not copied (add them to TABLES)"
        );
        assert_eq!(
            listed.difference(&in_schema).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "copied but not in the schema"
        );
        for t in TABLES {
            let names: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
            assert_eq!(&names[..t.key.len()], t.key, "{}: key first", t.name);
        }
    }
}
