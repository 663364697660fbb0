//! The explanation a delivery stores: words and reasons as JSON, the snippet as byte ranges of
//! the abstract, read back when the digest is sent.
//!
//! What it is for: the codec, and reading rows written before spans. What it is not for: making
//! explanations (`explain`).

use super::explain::{Explanation, Fragment, fragments_in, opening};
use serde::{Deserialize, Serialize};

/// A snippet as byte ranges of the paper's abstract.
///
/// Why: a delivery keeps each pick's explanation until the digest is sent, and a day's picks
/// number in the hundreds of thousands; repeating 300 characters of an abstract in each made
/// most of what planning wrote to the database. The abstract is in the papers table already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetSpan {
    /// Byte length of the abstract the ranges point into: an abstract that changed length
    /// since planning (a new version) gets its opening instead of misplaced highlights.
    pub(super) len: u32,
    /// The passage shown.
    pub(super) cut: [u32; 2],
    /// The highlighted words in it, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) marks: Vec<[u32; 2]>,
}

/// An explanation as a delivery stores it ([`Explanation::to_stored_json`]).
#[derive(Deserialize, Default)]
struct StoredExplanation {
    #[serde(default)]
    pub(super) matched: Vec<String>,
    #[serde(default)]
    pub(super) reasons: Vec<String>,
    /// Rows planned before spans existed hold the snippet's text.
    #[serde(default)]
    pub(super) snippet: Vec<Fragment>,
    #[serde(default)]
    pub(super) span: Option<SnippetSpan>,
}

#[derive(Serialize)]
struct StoredExplanationRef<'a> {
    pub(super) matched: &'a [String],
    pub(super) reasons: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) span: Option<&'a SnippetSpan>,
}

impl Explanation {
    /// The JSON a delivery stores: words and reasons, and the snippet as a [`SnippetSpan`].
    pub fn to_stored_json(&self) -> String {
        serde_json::to_string(&StoredExplanationRef {
            matched: &self.matched,
            reasons: &self.reasons,
            span: self.span.as_ref(),
        })
        .unwrap_or_default()
    }

    /// The explanation a delivery stored, its snippet cut from `abstract_text` (the paper's
    /// abstract now). Unreadable JSON gives an explanation with the opening and no reasons;
    /// a span that no longer fits the abstract gives the opening.
    pub fn from_stored_json(json: &str, abstract_text: &str) -> Explanation {
        let stored: StoredExplanation = serde_json::from_str(json).unwrap_or_default();
        if !stored.snippet.is_empty() {
            return Explanation {
                matched: stored.matched,
                reasons: stored.reasons,
                snippet: stored.snippet,
                span: None,
            };
        }
        // A span that no longer fits is dropped with its snippet: `span` always describes
        // the snippet shown.
        let fitting = stored
            .span
            .and_then(|span| fragments_in(abstract_text, &span).map(|parts| (span, parts)));
        let (span, snippet) = match fitting {
            Some((span, parts)) => (Some(span), parts),
            None => (None, opening(abstract_text)),
        };
        Explanation {
            matched: stored.matched,
            reasons: stored.reasons,
            snippet,
            span,
        }
    }
}
