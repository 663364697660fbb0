//! A subscriber's profile as ranking reads it: [`ProfileSignals`] (what they stated and how they
//! voted, assembled in one place) and the [`RankingProfile`] built from those and their
//! interests against one day's candidate index.
//!
//! What it is for: the rule of what counts as liked, and parse once, rank once
//! ([`CandidateIndex::profile`], then `rank_profile`). What it is not for: reading or storing
//! profiles (`store`), or checking what a subscriber typed (`model::Profile`, the stated
//! profile).

use super::analysis::{STOP_WORDS, author_key};
use super::index::CandidateIndex;
use super::query::{InterestsSyntaxError, QueryTerms, TRENDING_ONLY};
use crate::model::{CategoryMode, Paper, Profile};
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
}

impl ProfileSignals {
    /// The one assembly from what a subscriber stated (`stated`) and did (`votes`: each paper
    /// they voted on, with the vote as stored, +1 for "more like this" and -1 for "less") to
    /// what ranking reads. Papers voted above 0 and the example papers count as liked, the rest
    /// of the votes as disliked. `examples` are the stated example papers the store has (one
    /// it has not fetched yet counts from the day it is).
    pub fn new<'a>(
        stated: Profile,
        votes: impl IntoIterator<Item = (i64, &'a str, &'a str)>,
        examples: impl IntoIterator<Item = &'a Paper>,
    ) -> ProfileSignals {
        let mut liked = Vec::new();
        let mut disliked = Vec::new();
        for (vote, title, abstract_text) in votes {
            let text = paper_text(title, abstract_text);
            if vote > 0 {
                liked.push(text);
            } else {
                disliked.push(text);
            }
        }
        liked.extend(
            examples
                .into_iter()
                .map(|p| paper_text(&p.title, &p.abstract_text)),
        );
        ProfileSignals {
            category_mode: stated.category_mode,
            authors: stated.authors,
            categories: stated.categories,
            liked,
            disliked,
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
}

impl RankingProfile {
    /// Whether anything in this profile can pick a paper.
    pub fn is_empty(&self) -> bool {
        self.interests.is_none()
            && !self.browse
            && self.followed.is_empty()
            && self.categories.is_empty()
            && self.liked.is_none()
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
