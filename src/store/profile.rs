//! The statements behind a subscriber's profile: followed authors, categories and example
//! papers (`subscriber_profiles`), and the text of the papers they voted on (`feedback`).
//!
//! What it is for: the manage page and the data export read one subscriber's profile; the CLI,
//! the manage page and imports write it. (Planning reads a page of profiles and votes at once,
//! `planning.rs`.) What it is not for: deciding what a profile means for ranking — that is
//! `matching::ProfileSignals`.

use super::{Store, StoreError, on_pool, to_ms};
use crate::model::{CategoryMode, Profile, SubscriberId};
use chrono::{DateTime, Utc};

/// A `subscriber_profiles` row's columns as the profile they hold. A hand-edited list that is
/// not a JSON list counts as empty rather than stopping planning.
pub(super) fn from_columns(
    authors: &str,
    categories: &str,
    category_mode: &str,
    examples: &str,
) -> Profile {
    let list = |json: &str| -> Vec<String> { serde_json::from_str(json).unwrap_or_default() };
    Profile {
        authors: list(authors),
        categories: list(categories),
        category_mode: CategoryMode::from_stored(category_mode),
        examples: list(examples),
    }
}

impl Store {
    /// The stored profile of `id`; an empty one (mode `boost`) when none was set.
    pub async fn profile(&self, id: SubscriberId) -> Result<Profile, StoreError> {
        let row: Option<(String, String, String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT authors, categories, category_mode, examples
             FROM subscriber_profiles WHERE subscriber_id = $1",
        )
        .bind(id.0)
        .fetch_optional(p)
        .await)?;
        Ok(match row {
            Some((authors, categories, mode, examples)) => {
                from_columns(&authors, &categories, &mode, &examples)
            }
            None => Profile::default(),
        })
    }

    /// Replaces the profile of `id`.
    pub async fn set_profile(
        &self,
        id: SubscriberId,
        profile: &Profile,
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
}
