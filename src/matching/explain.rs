//! Why a paper was picked: the matched words, the reasons in words, and the abstract snippet with
//! the matched words marked (the passage tantivy's snippet generator would choose, found from
//! the tokens kept at indexing), or, for a paper picked by meaning alone, the sentence closest
//! in meaning to the interest.
//!
//! What it is for: explanations, computed for the picks only. What it is not for: choosing the
//! picks (`rank`) or storing explanations (`stored`).

use super::MatchError;
use super::analysis::{Token, category_keys, is_stop_word};
use super::index::{CandidateIndex, PaperFacts};
use super::profile::RankingProfile;
use super::stored::SnippetSpan;
use serde::{Deserialize, Serialize};
use tantivy::Term;
use tantivy::query::Query;
use tantivy::schema::Field;
use tantivy::tokenizer::TextAnalyzer;

/// How much of the abstract the digest shows around the matched words.
pub const SNIPPET_CHARS: usize = 320;

/// Upvotes (relative, log scale) above which "trending" is named as a reason: with 64 upvotes
/// for the day's best, about 23 or more.
const TRENDING_REASON: f32 = 0.75;

/// A part of a snippet, highlighted when it is a matched word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    pub text: String,
    pub highlighted: bool,
}

/// What the digest shows for one pick: the words that matched, the reasons in words, and the
/// abstract snippet with the matched words marked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Explanation {
    pub matched: Vec<String>,
    pub reasons: Vec<String>,
    pub snippet: Vec<Fragment>,
    /// Where `snippet` lies in the abstract, when it is a matched passage (`None`: the
    /// abstract's opening). What a delivery stores instead of the snippet's text.
    #[serde(skip)]
    pub span: Option<SnippetSpan>,
}

/// What made one paper a pick, beyond its words.
pub(super) struct Signals {
    pub(super) followed: bool,
    pub(super) in_category: bool,
    pub(super) liked: bool,
    pub(super) trending: f32,
    pub(super) browse: bool,
    /// The interest clause a paper is close to in meaning, when meaning picked it.
    pub(super) meaning: Option<String>,
    /// The liked paper (its title) this one is closest to, when close enough to say.
    pub(super) liked_title: Option<String>,
}

/// Builds the explanations of one subscriber's picks; the snippet terms' weights are read
/// once, and only when there are picks to explain.
pub(super) struct Explainer<'a> {
    pub(super) index: &'a CandidateIndex,
    pub(super) profile: &'a RankingProfile,
    /// The weight of each query term a snippet highlights, by vocabulary id (`None`: the
    /// interests have no such term, and the snippet is the abstract's opening).
    pub(super) snippet_weights: Option<Vec<(u32, f32)>>,
    pub(super) analyzer: TextAnalyzer,
}

impl<'a> Explainer<'a> {
    pub(super) fn new(
        index: &'a CandidateIndex,
        profile: &'a RankingProfile,
    ) -> Result<Self, MatchError> {
        let snippet_weights = match &profile.interests {
            Some(q) if !profile.terms.text.is_empty() => Some(index.snippet_weights(q.as_ref())?),
            _ => None,
        };
        Ok(Explainer {
            index,
            profile,
            snippet_weights,
            analyzer: index.stemmed.clone(),
        })
    }

    pub(super) fn explain(&mut self, i: usize, signals: &Signals) -> Explanation {
        let paper = &self.index.papers[i];
        let terms = &self.profile.terms;
        let mut matched = Vec::new();
        if !terms.text.is_empty() {
            matched.extend(matched_phrases(
                &paper.title,
                &paper.title_tokens,
                &paper.title_by_term,
                &terms.text,
            ));
            matched.extend(matched_phrases(
                &paper.abstract_text,
                &paper.abstract_tokens,
                &paper.abstract_by_term,
                &terms.text,
            ));
            matched = without_repeats(matched, &mut self.analyzer);
        }
        let mut reasons = Vec::new();
        if signals.followed {
            let names =
                self.authors_where(paper, |key| self.profile.followed.iter().any(|f| f == key));
            reasons.push(format!(
                "new paper by {}, whom you follow",
                names.join(", ")
            ));
        }
        if !matched.is_empty() {
            reasons.push(format!("matches your interests: {}", matched.join(", ")));
        }
        if !terms.author.is_empty() {
            let names = self.authors_where(paper, |key| {
                let words: Vec<&str> = key.split(' ').collect();
                terms.author.iter().all(|t| words.contains(&t.as_str()))
            });
            if !names.is_empty() {
                reasons.push(format!("by {}, an author you asked for", names.join(", ")));
            }
        }
        let asked: Vec<&String> = paper
            .categories
            .iter()
            .filter(|c| {
                category_keys(c)
                    .iter()
                    .any(|k| terms.category.contains(k) || self.profile.categories.contains(k))
            })
            .collect();
        if !asked.is_empty() && (signals.in_category || !terms.category.is_empty()) {
            let names: Vec<&str> = asked.iter().map(|c| c.as_str()).collect();
            reasons.push(format!("in {}, a category you follow", names.join(", ")));
        }
        if let Some(clause) = &signals.meaning {
            reasons.push(format!("close in meaning to your interest “{clause}”"));
        }
        if let Some(title) = &signals.liked_title {
            reasons.push(format!("like “{title}”, which you liked"));
        } else if signals.liked {
            reasons.push("like papers you liked".to_string());
        }
        // Trending is a reason when it decided the pick (browse) or the paper is among the
        // day's most upvoted.
        if paper.upvotes > 0 && (signals.browse || signals.trending >= TRENDING_REASON) {
            reasons.push(format!(
                "trending: {} upvote{} on Hugging Face",
                paper.upvotes,
                if paper.upvotes == 1 { "" } else { "s" }
            ));
        }
        let span = self
            .snippet_weights
            .as_ref()
            .and_then(|weights| snippet_span(paper, weights));
        // Picked by meaning with no word to mark: the sentence closest to the interest.
        let span = match (&span, &signals.meaning) {
            (Some(s), _) if !s.marks.is_empty() => span,
            (_, Some(clause)) => self.closest_sentence(i, clause).or(span),
            _ => span,
        };
        let snippet = span
            .as_ref()
            .and_then(|span| fragments_in(&paper.abstract_text, span))
            .unwrap_or_else(|| opening(&paper.abstract_text));
        Explanation {
            matched,
            reasons,
            snippet,
            span,
        }
    }

    /// The sentence of candidate `i`'s abstract closest in meaning to the interest `clause`, as
    /// a snippet that marks it; `None` when the paper has no sentence vectors.
    fn closest_sentence(&self, i: usize, clause: &str) -> Option<SnippetSpan> {
        let (_, target) = self
            .profile
            .meaning
            .clauses
            .iter()
            .find(|(c, _)| c == clause)?;
        let best = self
            .index
            .sentences
            .get(i)?
            .iter()
            .max_by(|a, b| a.vector.cosine(target).total_cmp(&b.vector.cosine(target)))?;
        let text = &self.index.papers[i].abstract_text;
        let start = best.start as usize;
        let sentence = text.get(start..best.end as usize)?;
        // A sentence longer than a snippet is cut at a word, as the opening is.
        let end = (start + word_cut(sentence, SNIPPET_CHARS)) as u32;
        Some(SnippetSpan {
            len: text.len() as u32,
            cut: [best.start, end],
            marks: vec![[best.start, end]],
        })
    }

    /// The paper's author names whose lookup key passes `keep`, as the paper spells them.
    fn authors_where(&self, paper: &PaperFacts, keep: impl Fn(&str) -> bool) -> Vec<String> {
        paper
            .authors
            .iter()
            .zip(&paper.author_keys)
            .filter(|(_, key)| keep(key))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl CandidateIndex {
    /// What a snippet for `query` highlights: the field whose terms it reads, and those of
    /// its terms that some candidate has, each with its weight.
    ///
    /// Plain words are terms of the `text` field; `abstract:` ones of the abstract field. A
    /// snippet highlights one field's terms: take the field the query uses (both share one
    /// analyzer, so either reads the abstract right). The weights are the ones
    /// `SnippetGenerator::create` gives (rarer words weigh more).
    pub(super) fn snippet_terms(
        &self,
        query: &dyn Query,
    ) -> Result<(Field, Vec<(Term, f32)>), MatchError> {
        let field = if query_uses(query, self.fields.text) {
            self.fields.text
        } else {
            self.fields.abstract_text
        };
        let mut terms = Vec::new();
        query.query_terms(&mut |t, _| {
            if t.field() == field {
                terms.push(t.clone());
            }
        });
        let mut weighed = Vec::with_capacity(terms.len());
        for t in terms {
            let df = self.searcher.doc_freq(&t)?;
            if df > 0 {
                weighed.push((t, 1.0 / (1.0 + df as f32)));
            }
        }
        Ok((field, weighed))
    }

    /// [`CandidateIndex::snippet_terms`] by vocabulary id, sorted, as [`snippet_span`] reads
    /// them.
    pub(super) fn snippet_weights(&self, query: &dyn Query) -> Result<Vec<(u32, f32)>, MatchError> {
        let (_, terms) = self.snippet_terms(query)?;
        let mut by_id: Vec<(u32, f32)> = terms
            .iter()
            .filter_map(|(t, weight)| {
                let id = self.vocabulary.get(t.value().as_str()?)?;
                Some((*id, *weight))
            })
            .collect();
        by_id.sort_unstable_by_key(|&(id, _)| id);
        by_id.dedup_by_key(|&mut (id, _)| id);
        Ok(by_id)
    }
}

fn query_uses(query: &dyn Query, field: Field) -> bool {
    let mut found = false;
    query.query_terms(&mut |t, _| found |= t.field() == field);
    found
}

/// The matched words of a text, adjacent ones joined into phrases, stop words trimmed from the
/// ends: every occurrence of a query term, as the snippet generator would highlight it, found
/// in the tokens computed once when the index was built.
fn matched_phrases(
    text: &str,
    tokens: &[Token],
    by_term: &[(u32, u32)],
    terms: &[u32],
) -> Vec<String> {
    // The query's few terms are looked up in the text's (term, token) list rather than every
    // token compared with every term: this ran for each pick of each subscriber.
    let mut hits: Vec<u32> = Vec::new();
    for &term in terms {
        hits.extend(occurrences(by_term, term));
    }
    hits.sort_unstable();
    let mut phrases = Vec::new();
    let mut current: Option<std::ops::Range<usize>> = None;
    for t in hits.iter().map(|&i| &tokens[i as usize]) {
        let r = t.start as usize..t.end as usize;
        current = match current {
            Some(c) if text.get(c.end..r.start).is_some_and(joins_words) => Some(c.start..r.end),
            Some(c) => {
                push_phrase(&mut phrases, &text[c]);
                Some(r)
            }
            None => Some(r),
        };
    }
    if let Some(c) = current {
        push_phrase(&mut phrases, &text[c]);
    }
    phrases
}

/// The positions of `term`'s tokens in a text, from its sorted (term, position) list.
fn occurrences(by_term: &[(u32, u32)], term: u32) -> impl Iterator<Item = u32> + '_ {
    let from = by_term.partition_point(|&(t, _)| t < term);
    by_term[from..]
        .iter()
        .take_while(move |&&(t, _)| t == term)
        .map(|&(_, position)| position)
}

/// A phrase without the stop words at either end; `None` when nothing else is left.
fn without_edge_stop_words(phrase: &str) -> Option<String> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    let first = words.iter().position(|w| !is_stop_word(w))?;
    let last = words.iter().rposition(|w| !is_stop_word(w))?;
    Some(words[first..=last].join(" "))
}

/// Whether the text between two highlighted words makes them one phrase: white space or a
/// hyphen ("long-context" is the phrase "long context").
fn joins_words(between: &str) -> bool {
    between.chars().all(|c| c.is_whitespace() || c == '-')
}

fn push_phrase(phrases: &mut Vec<String>, raw: &str) {
    // Most matches are one lower-case word: no copy to split and join again.
    let one_lower_case_word = !raw.is_empty()
        && raw.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || (!c.is_ascii() && c.is_lowercase())
        });
    if one_lower_case_word {
        if !is_stop_word(raw) && !phrases.iter().any(|p| p == raw) {
            phrases.push(raw.to_string());
        }
        return;
    }
    let raw = raw.replace('-', " ");
    if let Some(p) = without_edge_stop_words(&raw.to_lowercase()) {
        push_unique(phrases, p);
    }
}

/// Drops repeats — the same words up to stemming ("window" after "windows") — and single words
/// already said as part of a longer phrase ("contrastive" after "contrastive loss"), keeping the
/// first-seen order.
pub(super) fn without_repeats(phrases: Vec<String>, analyzer: &mut TextAnalyzer) -> Vec<String> {
    let mut stems = |p: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut stream = analyzer.token_stream(p);
        while let Some(t) = stream.next() {
            out.push(t.text.clone());
        }
        out
    };
    let keyed: Vec<(String, Vec<String>)> = phrases
        .into_iter()
        .map(|p| {
            let k = stems(&p);
            (p, k)
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut seen: Vec<Vec<String>> = Vec::new();
    for (phrase, key) in &keyed {
        let inside_longer = keyed.iter().any(|(_, other)| {
            other.len() > key.len() && other.windows(key.len()).any(|w| w == key.as_slice())
        });
        if !inside_longer && !seen.contains(key) {
            seen.push(key.clone());
            out.push(phrase.clone());
        }
    }
    out
}

pub(super) fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// The passage of `paper`'s abstract a snippet shows for terms of `weights` (vocabulary id and
/// weight), and the byte ranges of their occurrences in it, as tantivy's snippet generator
/// would choose them ([`super::analysis::Fragments`]); `None` when no such term is in the
/// abstract (the title matched).
pub(super) fn best_passage(
    paper: &PaperFacts,
    weights: &[(u32, f32)],
) -> Option<(std::ops::Range<usize>, Vec<std::ops::Range<usize>>)> {
    let by_term = &paper.abstract_by_term;
    let mut hits: Vec<(u32, f32)> = Vec::new();
    for &(term, weight) in weights {
        hits.extend(occurrences(by_term, term).map(|token| (token, weight)));
    }
    hits.sort_unstable_by_key(|&(token, _)| token);
    let best = paper.fragments.best(&hits)?;
    let highlighted = hits
        .iter()
        .filter(|&&(token, _)| paper.fragments.of(token) == Some(best))
        .map(|&(token, _)| {
            let t = &paper.abstract_tokens[token as usize];
            t.start as usize..t.end as usize
        })
        .collect();
    Some((paper.fragments.bounds(best), highlighted))
}

/// The abstract's best-matching passage ([`best_passage`]) with the words to highlight in it:
/// stop words left plain, and words joined by a space or a hyphen marked as one.
fn snippet_span(paper: &PaperFacts, weights: &[(u32, f32)]) -> Option<SnippetSpan> {
    let (passage, highlighted) = best_passage(paper, weights)?;
    let text = &paper.abstract_text;
    // "Contrastive loss" reads as one highlight, not two with a plain gap between them.
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for r in highlighted {
        if is_stop_word(&text[r.clone()]) {
            continue;
        }
        match runs.last_mut() {
            Some(last) if joins_words(&text[last.end..r.start]) => last.end = r.end,
            _ => runs.push(r),
        }
    }
    let at = |n: usize| n as u32;
    Some(SnippetSpan {
        len: text.len() as u32,
        cut: [at(passage.start), at(passage.end)],
        marks: runs.iter().map(|r| [at(r.start), at(r.end)]).collect(),
    })
}

/// The snippet a span describes, as plain and highlighted parts, with an ellipsis where it
/// starts or ends inside the abstract; `None` when the span does not fit `text`.
pub(super) fn fragments_in(text: &str, span: &SnippetSpan) -> Option<Vec<Fragment>> {
    if span.len as usize != text.len() {
        return None;
    }
    let range = |r: [u32; 2]| r[0] as usize..r[1] as usize;
    let cut = range(span.cut);
    text.get(cut.clone())?;
    let mut parts = Vec::with_capacity(2 * span.marks.len() + 3);
    let plain = |parts: &mut Vec<Fragment>, s: &str| {
        if !s.is_empty() {
            parts.push(Fragment {
                text: s.to_string(),
                highlighted: false,
            });
        }
    };
    if cut.start > 0 {
        plain(&mut parts, "… ");
    }
    let mut at = cut.start;
    for &mark in &span.marks {
        let r = range(mark);
        if r.start < at || r.end > cut.end || r.start >= r.end {
            return None;
        }
        plain(&mut parts, text.get(at..r.start)?);
        parts.push(Fragment {
            text: text.get(r.clone())?.to_string(),
            highlighted: true,
        });
        at = r.end;
    }
    plain(&mut parts, text.get(at..cut.end)?);
    if cut.end < text.len() {
        plain(&mut parts, " …");
    }
    Some(parts)
}

/// The abstract's opening: the snippet when no query word is in it.
pub(super) fn opening(text: &str) -> Vec<Fragment> {
    vec![Fragment {
        text: trim_to_chars(text, SNIPPET_CHARS),
        highlighted: false,
    }]
}

pub(super) fn trim_to_chars(text: &str, max: usize) -> String {
    let kept = word_cut(text, max);
    if kept == text.len() {
        return text.to_string();
    }
    format!("{} …", text[..kept].trim_end())
}

/// How many bytes of `text` a snippet of at most `max` characters keeps: all of it when it is
/// short enough, else up to the last space in the first `max` characters (so it does not end
/// mid-word), or all `max` when that space comes too early.
fn word_cut(text: &str, max: usize) -> usize {
    let Some((at, _)) = text.char_indices().nth(max) else {
        return text.len();
    };
    match text[..at].rfind(' ') {
        Some(pos) if pos > max / 2 => pos,
        _ => at,
    }
}
