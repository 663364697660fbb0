//! The statements whose SQL differs between SQLite and PostgreSQL. Everything else is shared.

/// Claims due deliveries under a lease. PostgreSQL needs `FOR UPDATE SKIP LOCKED` so that
/// several instances claim disjoint rows without waiting on each other; SQLite has one writer at
/// a time, so the plain sub-select is already atomic there (and SQLite has no `FOR UPDATE`).
pub(super) fn claim_due(postgres: bool) -> String {
    // One arm per way a row can be due, each an ordered range of the index on
    // (status, next_attempt_at, id), so each reads at most $5 rows. Why not one `WHERE … OR …`:
    // neither database can walk one index in that order for an OR of statuses, so each claim
    // read and sorted every due row, and a send run of N digests cost O(N²) (the send rate fell
    // from 1,129 to 678 messages a second between 10,000 and 300,000 subscribers).
    let arms = [
        "status = 'planned' AND next_attempt_at <= $3",
        "status = 'retry' AND next_attempt_at <= $3",
        "status = 'sending' AND lease_until < $4",
    ];
    let returning = "RETURNING id, subscriber_id, digest_date, attempts, message_id, planned_at";
    let update = "UPDATE deliveries
            SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1";
    if postgres {
        // A locking clause is not allowed inside UNION, so each arm locks in its own CTE;
        // SKIP LOCKED lets several instances claim at once without waiting on each other.
        let ctes: Vec<String> = arms
            .iter()
            .enumerate()
            .map(|(i, arm)| {
                format!(
                    "arm{i} AS (SELECT id, next_attempt_at FROM deliveries WHERE {arm}
                     ORDER BY next_attempt_at, id LIMIT $5 FOR UPDATE SKIP LOCKED)"
                )
            })
            .collect();
        format!(
            "WITH {}
             {update}
              WHERE id IN (SELECT id FROM (SELECT * FROM arm0 UNION ALL SELECT * FROM arm1
                                           UNION ALL SELECT * FROM arm2) due
                            ORDER BY next_attempt_at, id LIMIT $5)
             {returning}",
            ctes.join(",\n")
        )
    } else {
        let union: Vec<String> = arms
            .iter()
            .map(|arm| {
                format!(
                    "SELECT * FROM (SELECT id, next_attempt_at FROM deliveries WHERE {arm}
                                    ORDER BY next_attempt_at, id LIMIT $5)"
                )
            })
            .collect();
        format!(
            "{update}
              WHERE id IN (SELECT id FROM ({}) ORDER BY next_attempt_at, id LIMIT $5)
             {returning}",
            union.join(" UNION ALL ")
        )
    }
}

/// Moves the identity sequence of `table.column` past the largest value in it (after rows were
/// inserted with explicit ids, as `db copy` does). PostgreSQL only: SQLite has no sequence to
/// move, its next rowid is always max + 1.
pub(super) fn reset_identity(table: &str, column: &str) -> String {
    format!(
        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                       COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
    )
}

/// Every (table, column) of the schema: from `sqlite_master` and `pragma_table_info` on
/// SQLite, from `information_schema` (this connection's schema) on PostgreSQL.
pub(super) fn list_columns(postgres: bool) -> &'static str {
    if postgres {
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = current_schema()"
    } else {
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
          WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'"
    }
}

/// `rows` groups of `columns` parameters, `(…), (…)`, for a multi-row `VALUES`.
///
/// SQLite gets anonymous `?`s. Why: while binding, sqlx asks SQLite for each parameter's name,
/// and SQLite finds it by scanning the statement's list of named parameters, so a statement
/// with N parameters written `$1 … $N` cost time quadratic in N to bind (it was the hottest
/// function of planning); anonymous parameters have no name and the answer is immediate.
/// PostgreSQL needs `$1 … $N`. Either way the values are bound in the order they appear.
pub(super) fn value_rows(postgres: bool, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if postgres {
                sql.push('$');
                sql.push_str(&n.to_string());
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::value_rows;

    #[test]
    fn value_rows_are_numbered_for_postgres_and_anonymous_for_sqlite() {
        assert_eq!(value_rows(true, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(value_rows(false, 2, 2), "(?, ?), (?, ?)");
    }
}
