//! The `papers` table: upserts from sources, reads for planning and rendering; and
//! `paper_sources`, which source listed which paper.
//!
//! One row per paper whichever sources list it (keyed by arXiv id, else DOI, else link): a
//! known paper keeps its `first_seen_at`, so it is "new" for digests once, and merges what each
//! source adds (upvotes from Hugging Face, categories / DOI / comment / journal reference from
//! arXiv, links from anywhere).

use super::{Store, StoreError, from_ms, on_pool, to_ms};
use crate::model::{ArxivMeta, Paper, PaperId, PaperLinks};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// What one upsert batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UpsertCounts {
    /// Papers paperboy had never seen: they become candidates for digests.
    pub new: u64,
    /// Known papers whose metadata changed (upvotes, links, categories…).
    pub updated: u64,
    pub unchanged: u64,
    /// Updates (arXiv replacements) for papers paperboy never had: nothing to update, and a
    /// replacement never makes a paper new.
    pub ignored: u64,
}

/// What one source said in one batch: papers that may be new, papers that may only update a
/// known one, and arXiv announce types by key.
#[derive(Debug, Clone, Copy)]
pub struct SourceListing<'a> {
    pub source: &'a str,
    pub papers: &'a [Paper],
    pub updates: &'a [Paper],
    pub announce_types: &'a HashMap<String, String>,
}

/// One (paper, source) row of `paper_sources`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PaperSource {
    pub source: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub announce_type: Option<String>,
}

/// The sources whose papers arrive with arXiv's own metadata: their categories replace
/// whatever another source guessed.
fn is_arxiv_source(source: &str) -> bool {
    source == "arxiv" || source == "arxiv-api"
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
    doi: Option<String>,
    comment: Option<String>,
    journal_ref: Option<String>,
}

pub(super) const PAPER_COLUMNS: &str = "id, title, abstract, authors, categories, published_at, \
    first_seen_at, upvotes, abstract_url, pdf_url, hf_url, code_url, project_url, sources, \
    doi, comment, journal_ref";

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
                arxiv: ArxivMeta {
                    doi: self.doi,
                    comment: self.comment,
                    journal_ref: self.journal_ref,
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
    /// abstract; it takes the latest upvotes, and fills links, categories and an abstract it did
    /// not have (a paper that gets its abstract loses its stored vector, to be embedded again).
    pub async fn upsert_papers(
        &self,
        papers: &[Paper],
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        self.upsert_listing(
            SourceListing {
                source,
                papers,
                updates: &[],
                announce_types: &HashMap::new(),
            },
            now,
        )
        .await
    }

    /// As [`Store::upsert_papers`], with updates that never insert (arXiv replacements) and the
    /// announce types recorded in `paper_sources`. Papers from the arXiv listing or API bring
    /// arXiv's categories and metadata, which win over what another source said.
    pub async fn upsert_listing(
        &self,
        listing: SourceListing<'_>,
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        let source = listing.source;
        let mut counts = UpsertCounts::default();
        let items = listing
            .papers
            .iter()
            .map(|p| (p, false))
            .chain(listing.updates.iter().map(|p| (p, true)));
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (paper, update_only) in items.clone() {
                let existing: Option<PaperRow> = sqlx::query_as(&format!(
                    "SELECT {PAPER_COLUMNS} FROM papers WHERE id = $1"
                ))
                .bind(paper.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                match existing {
                    None if update_only => {
                        counts.ignored += 1;
                        continue;
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO papers (id, title, abstract, authors, categories, published_at,
                               first_seen_at, updated_at, upvotes, abstract_url, pdf_url, hf_url,
                               code_url, project_url, sources, doi, comment, journal_ref)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13, $14,
                               $15, $16, $17)",
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
                        .bind(&paper.arxiv.doi)
                        .bind(&paper.arxiv.comment)
                        .bind(&paper.arxiv.journal_ref)
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
                        if merged.categories.is_empty()
                            || (is_arxiv_source(source) && !paper.categories.is_empty())
                        {
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
                        merged.arxiv.update_from(&paper.arxiv);
                        let sources = merge_sources(&old.sources.join(","), source);
                        if merged == old.paper && sources == old.sources.join(",") {
                            counts.unchanged += 1;
                        } else {
                            sqlx::query(
                                "UPDATE papers SET abstract = $2, authors = $3, categories = $4,
                                   published_at = $5, upvotes = $6, abstract_url = $7, pdf_url = $8,
                                   hf_url = $9, code_url = $10, project_url = $11, sources = $12,
                                   updated_at = $13, doi = $14, comment = $15, journal_ref = $16
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
                            .bind(&merged.arxiv.doi)
                            .bind(&merged.arxiv.comment)
                            .bind(&merged.arxiv.journal_ref)
                            .execute(&mut *tx)
                            .await?;
                            if merged.abstract_text != old.paper.abstract_text {
                                // Its vector was made from the title alone (and there were no
                                // sentences): the embed job makes both again.
                                sqlx::query("DELETE FROM paper_vectors WHERE paper_id = $1")
                                    .bind(merged.id.as_str())
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            counts.updated += 1;
                        }
                    }
                }
                sqlx::query(
                    "INSERT INTO paper_sources (paper_id, source, first_seen_at, last_seen_at, announce_type)
                     VALUES ($1, $2, $3, $3, $4)
                     ON CONFLICT (paper_id, source) DO UPDATE SET
                       last_seen_at = excluded.last_seen_at,
                       announce_type = COALESCE(excluded.announce_type, paper_sources.announce_type)",
                )
                .bind(paper.id.as_str())
                .bind(source)
                .bind(to_ms(now))
                .bind(listing.announce_types.get(paper.id.as_str()))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(counts)
    }

    /// Papers first seen at or after `since` that `source` listed (any source when `None`),
    /// newest first.
    pub async fn papers_listed(
        &self,
        since: DateTime<Utc>,
        source: Option<&str>,
    ) -> Result<Vec<StoredPaper>, StoreError> {
        // `papers.sources` too: papers stored before `paper_sources` existed have only that.
        let filter = if source.is_some() {
            "AND (id IN (SELECT paper_id FROM paper_sources WHERE source = $2)
                  OR (',' || sources || ',') LIKE ('%,' || $2 || ',%'))"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {PAPER_COLUMNS} FROM papers WHERE first_seen_at >= $1 {filter}
             ORDER BY first_seen_at DESC, id"
        );
        let rows: Vec<PaperRow> = on_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(to_ms(since));
            if let Some(s) = source {
                q = q.bind(s);
            }
            q.fetch_all(p).await
        })?;
        Ok(rows.into_iter().map(PaperRow::into_stored).collect())
    }

    /// The `paper_sources` rows of these papers, by paper id, oldest sighting first.
    pub async fn paper_sources(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<PaperSource>>, StoreError> {
        type Row = (String, String, i64, i64, Option<String>);
        let mut out: HashMap<String, Vec<PaperSource>> = HashMap::new();
        for chunk in ids.chunks(super::IN_LIST_MAX) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT paper_id, source, first_seen_at, last_seen_at, announce_type
                 FROM paper_sources WHERE paper_id IN ({}) ORDER BY first_seen_at, source",
                placeholders.join(", ")
            );
            let rows: Vec<Row> = on_pool!(self, p => {
                let mut q = sqlx::query_as::<_, Row>(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await
            })?;
            for (id, source, first, last, announce_type) in rows {
                out.entry(id).or_default().push(PaperSource {
                    source,
                    first_seen_at: from_ms(first),
                    last_seen_at: from_ms(last),
                    announce_type,
                });
            }
        }
        Ok(out)
    }

    /// arXiv ids of papers first seen since `since` that have no arXiv categories yet (papers
    /// Hugging Face knows only by id): what the arXiv API is asked to enrich.
    pub async fn papers_without_categories(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT id FROM papers WHERE first_seen_at >= $1 AND categories = '[]'
               AND id NOT LIKE 'doi:%' AND id NOT LIKE 'url:%'
             ORDER BY id"
        )
        .bind(to_ms(since))
        .fetch_all(p)
        .await)?;
        Ok(ids)
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
        for chunk in ids.chunks(super::IN_LIST_MAX) {
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
