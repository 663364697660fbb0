//! A subscriber's profile as ranking reads it: [`ProfileSignals`] (what they stated and how they
//! voted, assembled in one place) and the [`RankingProfile`] built from those and their
//! interests against one day's candidate index.
//!
//! What it is for: the rule of what counts as liked, and parse once, rank once
//! ([`CandidateIndex::profile`], then `rank_profile`). What it is not for: reading or storing
//! profiles (`store`), or checking what a subscriber typed (`model::Profile`, the stated
//! profile).

use super::analysis::{STOP_WORDS, author_key};
use super::index::{CandidateIndex, ClauseTable};
use super::meaning::{MeaningProfile, hard_filters};
use super::query::{InterestsSyntaxError, QueryTerms, TRENDING_ONLY};
use crate::embed::Embedding;
use crate::model::{CategoryMode, Paper, Profile};
use std::sync::Arc;
use tantivy::query::{MoreLikeThisQuery, Query};
use tantivy::schema::OwnedValue;

/// More-like-this takes at most this many distinctive words from the liked papers.
const LIKE_TERMS: usize = 25;

/// What ranking reads of a subscriber beyond their interests: the signals of their stated
/// profile (followed authors, categories and how they count) and the papers they liked or
/// disliked, as text. Built from what the store holds by [`ProfileSignals::new`] on every path.
#[derive(Debug, Clone, Default)]
pub struct ProfileSignals {
    /// Followed authors' names as typed ("Yoshua Bengio"); a new paper by one is always picked.
    pub authors: Vec<String>,
    /// arXiv categories (`cs.LG`) or whole archives (`cs`).
    pub categories: Vec<String>,
    pub category_mode: CategoryMode,
    /// Title and abstract of each paper liked in a digest or given as an example.
    pub liked: Vec<String>,
    /// Title and abstract of each paper voted "less like this".
    pub disliked: Vec<String>,
    /// The vectors of their interests' clauses and of the papers above: what closeness in
    /// meaning is measured against. Empty when none is stored yet (words alone then).
    pub meaning: MeaningProfile,
}

impl ProfileSignals {
    /// The one assembly from what a subscriber stated (`stated`) and did (`votes`: each paper
    /// they voted on, with the vote as stored, +1 for "more like this" and -1 for "less") to
    /// what ranking reads. Papers voted above 0 and the example papers count as liked, the rest
    /// of the votes as disliked. `examples` are the stated example papers the store has (one
    /// it has not fetched yet counts from the day it is). Each paper comes with its stored
    /// vector, if it has one.
    pub fn new<'a>(
        stated: Profile,
        votes: impl IntoIterator<Item = (i64, &'a str, &'a str, Option<&'a Embedding>)>,
        examples: impl IntoIterator<Item = (&'a Paper, Option<&'a Embedding>)>,
    ) -> ProfileSignals {
        let mut liked = Vec::new();
        let mut disliked = Vec::new();
        let mut meaning = MeaningProfile::default();
        let examples = examples
            .into_iter()
            .map(|(p, v)| (1, p.title.as_str(), p.abstract_text.as_str(), v));
        for (vote, title, abstract_text, vector) in votes.into_iter().chain(examples) {
            let text = paper_text(title, abstract_text);
            if vote > 0 {
                liked.push(text);
                if let Some(v) = vector {
                    meaning.liked.push((title.to_string(), v.clone()));
                }
            } else {
                disliked.push(text);
                if let Some(v) = vector {
                    meaning.disliked.push(v.clone());
                }
            }
        }
        ProfileSignals {
            category_mode: stated.category_mode,
            authors: stated.authors,
            categories: stated.categories,
            liked,
            disliked,
            meaning,
        }
    }
}

/// A liked or disliked paper as more-like-this reads it.
fn paper_text(title: &str, abstract_text: &str) -> String {
    format!("{title}\n{abstract_text}")
}

/// One subscriber's interests and preferences, parsed against one candidate index: parse once,
/// rank once.
pub struct RankingProfile {
    pub(super) interests: Option<Box<dyn Query>>,
    pub(super) terms: QueryTerms,
    /// Interests were [`TRENDING_ONLY`], or absent: rank by upvotes, not by words.
    pub(super) browse: bool,
    pub(super) followed: Vec<String>,
    pub(super) categories: Vec<String>,
    pub(super) category_mode: CategoryMode,
    pub(super) liked: Option<Box<dyn Query>>,
    pub(super) disliked: Option<Box<dyn Query>>,
    /// What closeness in meaning is measured against (empty: words alone).
    pub(super) meaning: MeaningProfile,
    /// Papers the interests rule out (`NOT x`, `-x`): never picked, by meaning either.
    pub(super) excluded: Option<Box<dyn Query>>,
    /// The `title:` / `cat:` / `author:` terms, of which a paper picked by meaning must match one.
    pub(super) required: Option<Box<dyn Query>>,
    /// The meaning clauses already scored against the candidates, with other subscribers'
    /// ([`RankingProfile::with_scored_clauses`]); those not in it are scored at ranking.
    pub(super) scored: Option<Arc<ClauseTable>>,
}

impl RankingProfile {
    /// Ranks with clauses that [`CandidateIndex::score_clauses`] scored for many profiles at
    /// once (a slice of the planner's subscribers).
    pub fn with_scored_clauses(mut self, table: Arc<ClauseTable>) -> Self {
        self.scored = Some(table);
        self
    }

    /// Whether anything in this profile can pick a paper.
    pub fn is_empty(&self) -> bool {
        self.interests.is_none()
            && !self.browse
            && self.followed.is_empty()
            && self.categories.is_empty()
            && self.liked.is_none()
            && self.meaning.is_empty()
    }
}

impl CandidateIndex {
    /// Parses a subscriber's interests and profile signals once, for
    /// [`CandidateIndex::rank_profile`]. `interests` of `None` (or empty) means the signals alone
    /// decide; [`TRENDING_ONLY`] means the day's most-upvoted papers.
    pub fn profile(
        &self,
        interests: Option<&str>,
        input: &ProfileSignals,
    ) -> Result<RankingProfile, InterestsSyntaxError> {
        let interests = interests.map(str::trim).filter(|s| !s.is_empty());
        let browse_asked = interests == Some(TRENDING_ONLY);
        let query = match interests {
            Some(text) if !browse_asked => {
                Some(self.with_proximity(text, self.parse_interests(text)?))
            }
            _ => None,
        };
        let terms = query
            .as_deref()
            .map(|q| self.query_terms(q))
            .unwrap_or_default();
        let liked = self.more_like(&input.liked);
        let disliked = self.more_like(&input.disliked);
        let filters = hard_filters(interests.unwrap_or_default());
        let filter = |text: Option<String>| -> Result<_, InterestsSyntaxError> {
            text.map(|t| self.parse_interests(&t)).transpose()
        };
        let browse =
            browse_asked || (query.is_none() && liked.is_none() && !input.categories.is_empty());
        Ok(RankingProfile {
            interests: query,
            terms,
            browse,
            followed: input
                .authors
                .iter()
                .map(|a| author_key(a))
                .filter(|k| !k.is_empty())
                .collect(),
            categories: input
                .categories
                .iter()
                .map(|c| c.trim().to_lowercase())
                .filter(|c| !c.is_empty())
                .collect(),
            category_mode: input.category_mode,
            liked,
            disliked,
            meaning: if browse_asked {
                MeaningProfile::default()
            } else {
                input.meaning.clone()
            },
            excluded: filter(filters.excluded)?,
            required: filter(filters.required)?,
            scored: None,
        })
    }

    /// Tantivy's more-like-this query over the given texts: their most distinctive words, as
    /// this day's candidates weigh them. `None` when there is no text or nothing distinctive.
    fn more_like(&self, texts: &[String]) -> Option<Box<dyn Query>> {
        if texts.is_empty() || self.is_empty() {
            return None;
        }
        let values: Vec<OwnedValue> = texts.iter().map(|t| OwnedValue::Str(t.clone())).collect();
        // Words in more than a quarter of the day's papers say nothing about a topic.
        let common = (self.len() as u64 / 4).max(2);
        let query = MoreLikeThisQuery::builder()
            .with_min_doc_frequency(1)
            .with_max_doc_frequency(common)
            .with_min_term_frequency(1)
            .with_min_word_length(3)
            .with_max_query_terms(LIKE_TERMS)
            .with_stop_words(STOP_WORDS.iter().map(|w| w.to_string()).collect())
            .with_document_fields(vec![(self.fields.abstract_text, values)]);
        Some(Box::new(query))
    }
}
