//! The statements behind a subscriber's profile: followed authors, categories and example
//! papers (`subscriber_profiles`), and the text of the papers they voted on (`feedback`).
//!
//! What it is for: planning reads a profile and the liked / disliked texts for each due
//! subscriber; the CLI (and the manage page) write the profile. What it is not for: deciding
//! what a profile means for ranking — that is `matching`.

use super::{Store, StoreError, on_pool, to_ms};
use crate::model::{CategoryMode, SubscriberId};
use chrono::{DateTime, Utc};

/// A profile as stored: the domain type, parsed at the edge (`model::Profile`).
pub use crate::model::Profile as ProfileRow;

/// The texts a profile's liked and disliked papers stand for: title and abstract, one string a
/// paper.
#[derive(Debug, Clone, Default)]
pub struct ProfileTexts {
    pub liked: Vec<String>,
    pub disliked: Vec<String>,
}

fn list(json: &str) -> Vec<String> {
    // A hand-edited row that is not a JSON list counts as empty rather than stopping planning.
    serde_json::from_str(json).unwrap_or_default()
}

impl Store {
    /// The stored profile of `id`; an empty one (mode `boost`) when none was set.
    pub async fn profile(&self, id: SubscriberId) -> Result<ProfileRow, StoreError> {
        let row: Option<(String, String, String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT authors, categories, category_mode, examples
             FROM subscriber_profiles WHERE subscriber_id = $1",
        )
        .bind(id.0)
        .fetch_optional(p)
        .await)?;
        Ok(match row {
            Some((authors, categories, mode, examples)) => ProfileRow {
                authors: list(&authors),
                categories: list(&categories),
                category_mode: CategoryMode::from_stored(&mode),
                examples: list(&examples),
            },
            None => ProfileRow::default(),
        })
    }

    /// Replaces the profile of `id`.
    pub async fn set_profile(
        &self,
        id: SubscriberId,
        profile: &ProfileRow,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        on_pool!(self, p => sqlx::query(
            "INSERT INTO subscriber_profiles
               (subscriber_id, authors, categories, category_mode, examples, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (subscriber_id) DO UPDATE SET
               authors = excluded.authors, categories = excluded.categories,
               category_mode = excluded.category_mode, examples = excluded.examples,
               updated_at = excluded.updated_at",
        )
        .bind(id.0)
        .bind(json(&profile.authors))
        .bind(json(&profile.categories))
        .bind(profile.category_mode.as_str())
        .bind(json(&profile.examples))
        .bind(to_ms(now))
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Title and abstract of the papers `id` voted on (liked: +1, disliked: -1), plus those of
    /// the stored example papers (`examples`, as liked). Ids not in the store are skipped: an
    /// example paper counts from the day paperboy has fetched it.
    pub async fn profile_texts(
        &self,
        id: SubscriberId,
        examples: &[String],
    ) -> Result<ProfileTexts, StoreError> {
        let votes: Vec<(i64, String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT f.vote, p.title, p.abstract FROM feedback f
             JOIN papers p ON p.id = f.paper_id
             WHERE f.subscriber_id = $1 ORDER BY f.created_at DESC LIMIT 200",
        )
        .bind(id.0)
        .fetch_all(p)
        .await)?;
        let mut texts = ProfileTexts::default();
        for (vote, title, abs) in votes {
            let text = format!("{title}\n{abs}");
            if vote > 0 {
                texts.liked.push(text);
            } else {
                texts.disliked.push(text);
            }
        }
        if !examples.is_empty() {
            for paper in self.papers_by_ids(examples).await? {
                texts.liked.push(format!(
                    "{}\n{}",
                    paper.paper.title, paper.paper.abstract_text
                ));
            }
        }
        Ok(texts)
    }
}
