//! Sentence vectors of papers and of interests (`paper_vectors`, `interest_vectors`).
//!
//! What it is for: reading and writing the stored form (`embed::Embedding::to_stored`), only
//! for the model this binary runs ([`crate::embed::MODEL_NAME`]): a vector another model made
//! reads as missing. What it is not for: computing vectors (`embed`, `jobs::embed`) or
//! deciding which interests need one (`matching::meaning_clauses`).

use super::{Store, StoreError, dialect, on_pool, to_ms};
use crate::embed::{
    Embedding, MODEL_NAME, SentenceVector, StoredVectorError, sentences_from_stored,
    sentences_to_stored,
};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use tracing::warn;

/// Vectors written per statement (four values each).
const INSERT_ROWS: usize = 100;

/// A paper that has no vector of this model yet.
#[derive(Debug, Clone)]
pub struct PaperToEmbed {
    pub id: String,
    pub title: String,
    pub abstract_text: String,
}

impl Store {
    /// Up to `limit` papers with no vector of this model, oldest id first after `after` (a
    /// keyset: callers page through with the last id they got).
    pub async fn papers_to_embed(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<PaperToEmbed>, StoreError> {
        self.papers_page(
            "LEFT JOIN paper_vectors v ON v.paper_id = p.id AND v.model = $1
             WHERE v.paper_id IS NULL",
            after,
            limit,
        )
        .await
    }

    /// Up to `limit` papers that have a vector of this model but no sentence vectors yet, in
    /// id order after `after`.
    pub async fn papers_without_sentences(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<PaperToEmbed>, StoreError> {
        self.papers_page(
            "JOIN paper_vectors v ON v.paper_id = p.id AND v.model = $1
             WHERE v.sentences IS NULL",
            after,
            limit,
        )
        .await
    }

    /// A keyset page of the papers that `which` (a join on `paper_vectors v` for this model,
    /// `$1`, and a `WHERE`) selects.
    async fn papers_page(
        &self,
        which: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<PaperToEmbed>, StoreError> {
        let sql = format!(
            "SELECT p.id, p.title, p.abstract FROM papers p {which}
             AND p.id > $2 ORDER BY p.id LIMIT $3"
        );
        let rows: Vec<(String, String, String)> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(MODEL_NAME)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(id, title, abstract_text)| PaperToEmbed {
                id,
                title,
                abstract_text,
            })
            .collect())
    }

    /// How many papers have no vector of this model.
    pub async fn papers_without_vectors(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM papers p
             LEFT JOIN paper_vectors v ON v.paper_id = p.id AND v.model = $1
             WHERE v.paper_id IS NULL",
        )
        .bind(MODEL_NAME)
        .fetch_one(p)
        .await)?;
        Ok(n as u64)
    }

    /// Stores papers' vectors (replacing another model's).
    pub async fn save_paper_vectors(
        &self,
        vectors: &[(String, Embedding)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.save_vectors("paper_vectors", "paper_id", vectors, now)
            .await
    }

    /// Stores interest clauses' vectors (keys in `embed::interest_key` form).
    pub async fn save_interest_vectors(
        &self,
        vectors: &[(String, Embedding)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.save_vectors("interest_vectors", "interest", vectors, now)
            .await
    }

    /// Writes vectors; a paper's sentence vectors are dropped with the vector they went with
    /// (the embed job computes them again).
    async fn save_vectors(
        &self,
        table: &str,
        key: &str,
        vectors: &[(String, Embedding)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let postgres = self.is_postgres();
        let forget_sentences = if table == "paper_vectors" {
            ", sentences = NULL"
        } else {
            ""
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in vectors.chunks(INSERT_ROWS) {
                let sql = format!(
                    "INSERT INTO {table} ({key}, model, vector, created_at) VALUES {}
                     ON CONFLICT ({key}) DO UPDATE SET model = excluded.model,
                       vector = excluded.vector, created_at = excluded.created_at{forget_sentences}",
                    dialect::value_rows(postgres, chunk.len(), 4)
                );
                let mut q = sqlx::query(&sql);
                for (id, v) in chunk {
                    q = q.bind(id).bind(MODEL_NAME).bind(v.to_stored()).bind(to_ms(now));
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// How many papers with a vector of this model have no sentence vectors yet.
    pub async fn papers_without_sentences_count(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM paper_vectors WHERE model = $1 AND sentences IS NULL",
        )
        .bind(MODEL_NAME)
        .fetch_one(p)
        .await)?;
        Ok(n as u64)
    }

    /// Stores papers' sentence vectors beside their vectors (an empty list for an abstract
    /// with no sentence: nothing left to compute).
    pub async fn save_paper_sentences(
        &self,
        sentences: &[(String, Vec<SentenceVector>)],
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (id, list) in sentences {
                sqlx::query(
                    "UPDATE paper_vectors SET sentences = $1 WHERE paper_id = $2 AND model = $3",
                )
                .bind(sentences_to_stored(list))
                .bind(id)
                .bind(MODEL_NAME)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The sentence vectors of these papers' abstracts that exist for this model, by paper id
    /// (none for a paper embedded before they were kept).
    pub async fn paper_sentences(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<SentenceVector>>, StoreError> {
        self.read_stored(
            "paper_vectors",
            "paper_id",
            "sentences",
            ids,
            sentences_from_stored,
        )
        .await
    }

    /// The vectors of these papers that exist for this model, by paper id.
    pub async fn paper_vectors(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Embedding>, StoreError> {
        self.read_stored(
            "paper_vectors",
            "paper_id",
            "vector",
            ids,
            Embedding::from_stored,
        )
        .await
    }

    /// The vectors of these interest clauses that exist for this model, by clause.
    pub async fn interest_vectors(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Embedding>, StoreError> {
        self.read_stored(
            "interest_vectors",
            "interest",
            "vector",
            keys,
            Embedding::from_stored,
        )
        .await
    }

    /// The stored `column` of these keys' rows of this model, read back by `decode`; a row
    /// with none (NULL) or one that does not decode is left out.
    async fn read_stored<T>(
        &self,
        table: &str,
        key: &str,
        column: &str,
        ids: &[String],
        decode: impl Fn(&[u8]) -> Result<T, StoredVectorError>,
    ) -> Result<HashMap<String, T>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(super::IN_LIST_MAX) {
            let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {key}, {column} FROM {table}
                 WHERE model = $1 AND {column} IS NOT NULL AND {key} IN ({})",
                marks.join(", ")
            );
            let rows: Vec<(String, Vec<u8>)> = on_pool!(self, p => {
                let mut q = sqlx::query_as(&sql).bind(MODEL_NAME);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await
            })?;
            for (id, bytes) in rows {
                match decode(&bytes) {
                    Ok(v) => {
                        out.insert(id, v);
                    }
                    // Read as missing: ranking falls back to words for a vector (and the next
                    // embedding run writes it again), a highlight to the abstract's opening.
                    Err(e) => {
                        warn!(table, column, key = %id, error = %e, "ignoring a stored vector")
                    }
                }
            }
        }
        Ok(out)
    }

    /// Of these interest clauses, the ones with no vector of this model yet.
    pub async fn interests_without_vectors(
        &self,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut have: HashSet<String> = HashSet::with_capacity(keys.len());
        for chunk in keys.chunks(super::IN_LIST_MAX) {
            let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT interest FROM interest_vectors WHERE model = $1 AND interest IN ({})",
                marks.join(", ")
            );
            let rows: Vec<String> = on_pool!(self, p => {
                let mut q = sqlx::query_scalar(&sql).bind(MODEL_NAME);
                for k in chunk {
                    q = q.bind(k);
                }
                q.fetch_all(p).await
            })?;
            have.extend(rows);
        }
        Ok(keys
            .iter()
            .filter(|k| !have.contains(*k))
            .cloned()
            .collect())
    }

    /// The distinct interests of every subscriber who may still get a digest (not
    /// unsubscribed), a page of `limit` after `after` in text order.
    pub async fn interests_after(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT DISTINCT interests FROM subscribers
             WHERE status <> 'unsubscribed' AND interests > $1
             ORDER BY interests LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?)
    }

    /// Forgets every stored vector (`paperboy db embed --again`), so the next embedding run
    /// computes them all.
    pub async fn forget_vectors(&self) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query("DELETE FROM paper_vectors").execute(p).await?;
            sqlx::query("DELETE FROM interest_vectors").execute(p).await?;
        });
        Ok(())
    }
}
