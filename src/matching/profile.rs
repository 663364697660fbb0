//! A subscriber's profile for ranking: their followed authors, categories, and the papers they
//! liked or disliked, parsed against one day's candidate index together with their interests.
//!
//! What it is for: parse once, rank once ([`CandidateIndex::profile`], then `rank`). What it is
//! not for: reading or storing profiles (`store`), or checking what a subscriber typed
//! (`model::Profile`).

use super::CategoryMode;
use super::analysis::{STOP_WORDS, author_key};
use super::index::CandidateIndex;
use super::query::{InterestsSyntaxError, QueryTerms, TRENDING_ONLY};
use tantivy::query::{MoreLikeThisQuery, Query};
use tantivy::schema::OwnedValue;

/// More-like-this takes at most this many distinctive words from the liked papers.
const LIKE_TERMS: usize = 25;

/// A subscriber's profile beyond the interests query, as the store holds it.
#[derive(Debug, Clone, Default)]
pub struct ProfileInput {
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

/// One subscriber's profile, parsed against one candidate index: parse once, rank once.
pub struct Profile {
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

impl Profile {
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
    /// Parses a subscriber's interests and profile once, for [`CandidateIndex::rank_profile`].
    /// `interests` of `None` (or empty) means the profile alone decides; [`TRENDING_ONLY`] means
    /// the day's most-upvoted papers.
    pub fn profile(
        &self,
        interests: Option<&str>,
        input: &ProfileInput,
    ) -> Result<Profile, InterestsSyntaxError> {
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
        Ok(Profile {
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
