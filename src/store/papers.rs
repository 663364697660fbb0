//! The `papers` table: upserts from sources, reads for planning and rendering.

use super::{Store, StoreError, from_ms, on_pool, to_ms};
use crate::model::{Paper, PaperId, PaperLinks};
use chrono::{DateTime, Utc};

/// What one upsert batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UpsertCounts {
    /// Papers paperboy had never seen: they become candidates for digests.
    pub new: u64,
    /// Known papers whose metadata changed (upvotes, links, categories…).
    pub updated: u64,
    pub unchanged: u64,
}

/// A paper as stored, with when paperboy first saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredPaper {
    #[serde(flatten)]
    pub paper: Paper,
    pub first_seen_at: DateTime<Utc>,
    pub sources: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct PaperRow {
    id: String,
    title: String,
    #[sqlx(rename = "abstract")]
    abstract_text: String,
    authors: String,
    categories: String,
    published_at: Option<i64>,
    first_seen_at: i64,
    upvotes: Option<i64>,
    abstract_url: Option<String>,
    pdf_url: Option<String>,
    hf_url: Option<String>,
    code_url: Option<String>,
    project_url: Option<String>,
    sources: String,
}

pub(super) const PAPER_COLUMNS: &str = "id, title, abstract, authors, categories, published_at, \
    first_seen_at, upvotes, abstract_url, pdf_url, hf_url, code_url, project_url, sources";

impl PaperRow {
    fn into_stored(self) -> StoredPaper {
        StoredPaper {
            paper: Paper {
                id: PaperId::from_stored(self.id),
                title: self.title,
                abstract_text: self.abstract_text,
                // Written by this program as JSON arrays; an unreadable value degrades to empty
                // rather than hiding the paper.
                authors: serde_json::from_str(&self.authors).unwrap_or_default(),
                categories: serde_json::from_str(&self.categories).unwrap_or_default(),
                published_at: self.published_at.map(from_ms),
                upvotes: self.upvotes,
                links: PaperLinks {
                    abstract_url: self.abstract_url,
                    pdf_url: self.pdf_url,
                    hf_url: self.hf_url,
                    code_url: self.code_url,
                    project_url: self.project_url,
                },
            },
            first_seen_at: from_ms(self.first_seen_at),
            sources: self
                .sources
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

fn merge_sources(existing: &str, source: &str) -> String {
    let mut names: Vec<&str> = existing.split(',').filter(|s| !s.is_empty()).collect();
    if !names.contains(&source) {
        names.push(source);
    }
    names.join(",")
}

impl Store {
    /// Inserts new papers and merges what `source` says about known ones, in one transaction.
    ///
    /// A known paper keeps its `first_seen_at` (so it is "new" for digests once), its title and
    /// abstract; it takes the latest upvotes, and fills links and categories it did not have.
    pub async fn upsert_papers(
        &self,
        papers: &[Paper],
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        let mut counts = UpsertCounts::default();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for paper in papers {
                let existing: Option<PaperRow> = sqlx::query_as(&format!(
                    "SELECT {PAPER_COLUMNS} FROM papers WHERE id = $1"
                ))
                .bind(paper.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                match existing {
                    None => {
                        sqlx::query(
                            "INSERT INTO papers (id, title, abstract, authors, categories, published_at,
                               first_seen_at, updated_at, upvotes, abstract_url, pdf_url, hf_url,
                               code_url, project_url, sources)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13, $14)",
                        )
                        .bind(paper.id.as_str())
                        .bind(&paper.title)
                        .bind(&paper.abstract_text)
                        .bind(serde_json::to_string(&paper.authors).unwrap_or_else(|_| "[]".into()))
                        .bind(serde_json::to_string(&paper.categories).unwrap_or_else(|_| "[]".into()))
                        .bind(paper.published_at.map(to_ms))
                        .bind(to_ms(now))
                        .bind(paper.upvotes)
                        .bind(&paper.links.abstract_url)
                        .bind(&paper.links.pdf_url)
                        .bind(&paper.links.hf_url)
                        .bind(&paper.links.code_url)
                        .bind(&paper.links.project_url)
                        .bind(source)
                        .execute(&mut *tx)
                        .await?;
                        counts.new += 1;
                    }
                    Some(row) => {
                        let old = row.into_stored();
                        let mut merged = old.paper.clone();
                        if paper.upvotes.is_some() {
                            merged.upvotes = paper.upvotes;
                        }
                        merged.links.merge_from(&paper.links);
                        if merged.categories.is_empty() {
                            merged.categories.clone_from(&paper.categories);
                        }
                        if merged.authors.is_empty() {
                            merged.authors.clone_from(&paper.authors);
                        }
                        if merged.abstract_text.is_empty() {
                            merged.abstract_text.clone_from(&paper.abstract_text);
                        }
                        if merged.published_at.is_none() {
                            merged.published_at = paper.published_at;
                        }
                        let sources = merge_sources(&old.sources.join(","), source);
                        if merged == old.paper && sources == old.sources.join(",") {
                            counts.unchanged += 1;
                            continue;
                        }
                        sqlx::query(
                            "UPDATE papers SET abstract = $2, authors = $3, categories = $4,
                               published_at = $5, upvotes = $6, abstract_url = $7, pdf_url = $8,
                               hf_url = $9, code_url = $10, project_url = $11, sources = $12,
                               updated_at = $13
                             WHERE id = $1",
                        )
                        .bind(merged.id.as_str())
                        .bind(&merged.abstract_text)
                        .bind(serde_json::to_string(&merged.authors).unwrap_or_else(|_| "[]".into()))
                        .bind(serde_json::to_string(&merged.categories).unwrap_or_else(|_| "[]".into()))
                        .bind(merged.published_at.map(to_ms))
                        .bind(merged.upvotes)
                        .bind(&merged.links.abstract_url)
                        .bind(&merged.links.pdf_url)
                        .bind(&merged.links.hf_url)
                        .bind(&merged.links.code_url)
                        .bind(&merged.links.project_url)
                        .bind(&sources)
                        .bind(to_ms(now))
                        .execute(&mut *tx)
                        .await?;
                        counts.updated += 1;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(counts)
    }

    /// Papers first seen at or after `since`, newest first.
    pub async fn papers_first_seen_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<StoredPaper>, StoreError> {
        let rows: Vec<PaperRow> = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PAPER_COLUMNS} FROM papers WHERE first_seen_at >= $1
             ORDER BY first_seen_at DESC, id"
        ))
        .bind(to_ms(since))
        .fetch_all(p)
        .await)?;
        Ok(rows.into_iter().map(PaperRow::into_stored).collect())
    }

    pub async fn paper(&self, id: &str) -> Result<Option<StoredPaper>, StoreError> {
        let row: Option<PaperRow> = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PAPER_COLUMNS} FROM papers WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(p)
        .await)?;
        Ok(row.map(PaperRow::into_stored))
    }

    /// The papers with these ids (missing ids are left out), in no particular order.
    pub async fn papers_by_ids(&self, ids: &[String]) -> Result<Vec<StoredPaper>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        // Bounded chunks keep under SQLite's and PostgreSQL's bind-parameter limits.
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {PAPER_COLUMNS} FROM papers WHERE id IN ({})",
                placeholders.join(", ")
            );
            let rows: Vec<PaperRow> = on_pool!(self, p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await
            })?;
            out.extend(rows.into_iter().map(PaperRow::into_stored));
        }
        Ok(out)
    }
}
