//! Ranking papers for a subscriber, and saying why each was picked.
//!
//! What it is for: the candidates of one planning run (papers first seen recently) go into an
//! in-memory tantivy index, built once per run. Each subscriber's interests are parsed once with
//! tantivy's query parser (words, "phrases", AND / OR / NOT, `-word`, parentheses, and the fields
//! `title:`, `abstract:`, `author:`, `cat:`) and scored with tantivy's BM25 over title and
//! abstract (English stemming, case and accent folding). The rest of a subscriber's profile is
//! blended in: followed authors (always included), categories (a filter or a boost), papers they
//! liked or gave as examples (tantivy's more-like-this query over their text, pulling similar
//! papers up; disliked ones push down), and Hugging Face upvotes as a bounded trending boost.
//! Beside the words, closeness in meaning (`meaning`: the cosine between the paper's vector
//! and the vectors of the interests, liked and disliked papers) is fused with BM25, so a
//! paraphrase finds a paper that shares no word with it. A relevance floor for each signal
//! keeps weak matches out however empty the day; at most `max` papers are picked. Each pick carries its reasons and an abstract snippet with the matched words marked
//! (the passage tantivy's snippet generator would show), computed for the picks only.
//!
//! What it is not for: I/O. It gets papers (and the texts of liked papers) and returns picks;
//! loading profiles and votes is `store`'s job, choosing who is due is `jobs::plan`'s.
//!
//! The parts: `analysis` (analyzers, tokens kept from indexing, the snippet fragments), `index`
//! (the candidate index), `query` (the interests' language and its errors), `meaning` (which
//! clauses are embedded, closeness, the hard filters meaning obeys), `profile` (a
//! subscriber's profile parsed against the index), `rank` (scores, signals, floor, trending),
//! `explain` (reasons and snippets), `stored` (the explanation a delivery keeps).

mod analysis;
mod explain;
mod index;
mod meaning;
mod profile;
mod query;
mod rank;
mod stored;
#[cfg(test)]
mod tests;

pub use explain::{Explanation, Fragment, SNIPPET_CHARS};
pub use index::{CandidateIndex, ClauseTable};
pub use meaning::{
    Closeness, MAX_MEANING_CLAUSES, MEANING_FLOOR, MEANING_STANDOUT, MeaningProfile, closeness,
    meaning_clauses,
};
pub use profile::{ProfileSignals, RankingProfile};
pub use query::{InterestsSyntaxError, TRENDING_ONLY, check_interests};
pub use rank::{Blend, Fusion, Pick};
pub use stored::SnippetSpan;

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("the search index could not be built: {0}")]
    Index(#[from] tantivy::TantivyError),
}
