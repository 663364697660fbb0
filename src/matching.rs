//! Ranking papers against a subscriber's interests, and saying why each was picked.
//!
//! The candidates of one planning run (papers first seen recently) go into an in-memory tantivy
//! index; each subscriber's interests are parsed with tantivy's query parser and scored with its
//! BM25 over title and abstract (English stemming, case and accent folding). A relevance floor
//! (`matching.min_score`) keeps weak matches out however empty the day; the caller cuts at the
//! subscriber's maximum. Highlights come from tantivy's snippet generator.
//! This module does no I/O: it gets papers and returns picks.

use crate::model::Paper;
use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{Query, QueryParser, QueryParserError};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer,
};
use tantivy::{Index, IndexReader, TantivyDocument, doc};

const STEMMED: &str = "paperboy_en";
const FOLDED: &str = "paperboy_folded";
/// Title words say more about a paper than abstract words.
const TITLE_BOOST: f32 = 2.0;
/// How much of the abstract the digest shows around the matched words.
pub const SNIPPET_CHARS: usize = 320;

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("the search index could not be built: {0}")]
    Index(#[from] tantivy::TantivyError),
}

/// Why interests could not be understood, for the person who typed them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot understand the interests `{input}`: {problem}. {hint}")]
pub struct InterestsSyntaxError {
    pub input: String,
    pub problem: String,
    pub hint: String,
}

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
}

/// One paper picked for one subscriber.
#[derive(Debug, Clone)]
pub struct Pick {
    /// Position of the paper in the slice given to [`CandidateIndex::build`].
    pub index: usize,
    pub score: f32,
    pub explanation: Explanation,
}

struct Fields {
    title: Field,
    abstract_text: Field,
}

/// The candidate papers of one planning run, indexed for ranking.
pub struct CandidateIndex {
    reader: IndexReader,
    fields: Fields,
    parser: QueryParser,
    titles: Vec<String>,
    abstracts: Vec<String>,
}

/// Titles and abstracts: words, lower-cased, accents folded, English-stemmed.
///
/// Stop words stay in the index: a phrase such as "in-context" must match "in context" and not
/// every abstract that says "context". BM25 already gives them almost no weight; the
/// explanations leave them out (see `is_stop_word`).
fn english_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn register_tokenizers(index: &Index) {
    let stemmed = english_analyzer();
    let folded = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build();
    index.tokenizers().register(STEMMED, stemmed);
    index.tokenizers().register(FOLDED, folded);
}

fn text_options(tokenizer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    )
}

impl CandidateIndex {
    pub fn build<'a>(papers: impl IntoIterator<Item = &'a Paper>) -> Result<Self, MatchError> {
        let mut sb = Schema::builder();
        let title = sb.add_text_field("title", text_options(STEMMED));
        let abstract_text = sb.add_text_field("abstract", text_options(STEMMED));
        let author = sb.add_text_field("author", text_options(FOLDED));
        let ord = sb.add_u64_field("ord", FAST);
        let index = Index::create_in_ram(sb.build());
        register_tokenizers(&index);

        let mut titles = Vec::new();
        let mut abstracts = Vec::new();
        {
            // One thread and one commit give one segment; the budget is tantivy's minimum per
            // thread, plenty for a few thousand abstracts.
            let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 15_000_000)?;
            for (i, paper) in papers.into_iter().enumerate() {
                let mut d = doc!(
                    title => paper.title.as_str(),
                    abstract_text => paper.abstract_text.as_str(),
                    ord => i as u64,
                );
                for name in &paper.authors {
                    d.add_text(author, name);
                }
                writer.add_document(d)?;
                titles.push(paper.title.clone());
                abstracts.push(paper.abstract_text.clone());
            }
            writer.commit()?;
        }
        let reader = index.reader()?;
        let mut parser = QueryParser::for_index(&index, vec![title, abstract_text]);
        parser.set_field_boost(title, TITLE_BOOST);
        Ok(CandidateIndex {
            reader,
            fields: Fields {
                title,
                abstract_text,
            },
            parser,
            titles,
            abstracts,
        })
    }

    fn analyzer(&self) -> TextAnalyzer {
        english_analyzer()
    }

    pub fn len(&self) -> usize {
        self.titles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.titles.is_empty()
    }

    /// Parses interests into a query, or says what is wrong with them.
    pub fn parse_interests(&self, interests: &str) -> Result<Box<dyn Query>, InterestsSyntaxError> {
        self.parser
            .parse_query(interests)
            .map_err(|e| explain_parse_error(interests, e))
    }

    /// Ranks the candidates that `allowed` accepts against `query`: best first, at most `max`,
    /// none scoring below `min_score`.
    pub fn rank(
        &self,
        query: &dyn Query,
        allowed: impl Fn(usize) -> bool,
        max: usize,
        min_score: f32,
    ) -> Result<Vec<Pick>, MatchError> {
        if self.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        // Every match is collected and filtered afterwards: candidate sets are small (one
        // day's papers), and the filter (already sent, outside this subscriber's window) is
        // cheaper in Rust than as a query clause.
        let top = searcher.search(query, &TopDocs::with_limit(self.len()))?;
        let mut hits = Vec::new();
        for (score, addr) in top {
            if score < min_score || hits.len() >= max {
                break;
            }
            let column = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64("ord")?;
            let Some(i) = column.first(addr.doc_id).map(|v| v as usize) else {
                continue;
            };
            if allowed(i) {
                hits.push((i, score));
            }
        }
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let mut title_gen = SnippetGenerator::create(&searcher, query, self.fields.title)?;
        title_gen.set_max_num_chars(10_000);
        let mut full_gen = SnippetGenerator::create(&searcher, query, self.fields.abstract_text)?;
        full_gen.set_max_num_chars(100_000);
        let mut short_gen = SnippetGenerator::create(&searcher, query, self.fields.abstract_text)?;
        short_gen.set_max_num_chars(SNIPPET_CHARS);

        Ok(hits
            .into_iter()
            .map(|(i, score)| {
                let mut matched = highlighted_phrases(&self.titles[i], &title_gen);
                matched.extend(highlighted_phrases(&self.abstracts[i], &full_gen));
                let matched = without_repeats(matched, &mut self.analyzer());
                let snippet = snippet_fragments(&self.abstracts[i], &short_gen);
                let reasons = if matched.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("matches your interests: {}", matched.join(", "))]
                };
                Pick {
                    index: i,
                    score,
                    explanation: Explanation {
                        matched,
                        reasons,
                        snippet,
                    },
                }
            })
            .collect())
    }
}

/// Whether interests parse, without any papers at hand (CLI and web forms use this).
pub fn check_interests(interests: &str) -> Result<(), InterestsSyntaxError> {
    let empty: [&Paper; 0] = [];
    let index = CandidateIndex::build(empty).map_err(|e| InterestsSyntaxError {
        input: interests.to_string(),
        problem: e.to_string(),
        hint: String::new(),
    })?;
    index.parse_interests(interests).map(|_| ())
}

fn explain_parse_error(input: &str, e: QueryParserError) -> InterestsSyntaxError {
    let (problem, hint) = match &e {
        QueryParserError::SyntaxError(detail) => (
            format!("the syntax is not valid ({detail})"),
            "Check that every quote \" and parenthesis is closed, e.g. diffusion \"protein folding\"",
        ),
        QueryParserError::FieldDoesNotExist(field) => (
            format!("there is no field `{field}:`"),
            "Use plain words and \"quoted phrases\", or the fields title: and abstract:; to search for a word with a colon, quote it",
        ),
        QueryParserError::AllButQueryForbidden => (
            "it only excludes words".to_string(),
            "Say what you want as well, e.g. diffusion -video",
        ),
        QueryParserError::NoDefaultFieldDeclared => (
            "no default field".to_string(),
            "This is a bug in paperboy; please report it",
        ),
        other => (
            other.to_string(),
            "Use plain words and \"quoted phrases\", e.g. diffusion \"protein folding\"",
        ),
    };
    InterestsSyntaxError {
        input: input.to_string(),
        problem,
        hint: hint.to_string(),
    }
}

/// English function words. Tantivy highlights every query term, including the "in" of the
/// phrase "in-context" wherever it occurs; naming "in" as a reason would be noise.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "into",
    "is", "it", "its", "of", "on", "or", "our", "that", "the", "their", "this", "to", "via", "was",
    "we", "were", "which", "with",
];

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word.to_lowercase().as_str())
}

/// A phrase without the stop words at either end; `None` when nothing else is left.
fn without_edge_stop_words(phrase: &str) -> Option<String> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    let first = words.iter().position(|w| !is_stop_word(w))?;
    let last = words.iter().rposition(|w| !is_stop_word(w))?;
    Some(words[first..=last].join(" "))
}

/// The highlighted words of `text`, adjacent ones joined into phrases, lower-cased, deduplicated.
fn highlighted_phrases(text: &str, generator: &SnippetGenerator) -> Vec<String> {
    let snippet = generator.snippet(text);
    let fragment = snippet.fragment();
    let mut phrases: Vec<String> = Vec::new();
    let mut current: Option<std::ops::Range<usize>> = None;
    for r in snippet.highlighted() {
        current = match current {
            Some(c) if joins_words(&fragment[c.end..r.start]) => Some(c.start..r.end),
            Some(c) => {
                push_phrase(&mut phrases, &fragment[c]);
                Some(r.clone())
            }
            None => Some(r.clone()),
        };
    }
    if let Some(c) = current {
        push_phrase(&mut phrases, &fragment[c]);
    }
    phrases
}

/// Whether the text between two highlighted words makes them one phrase: white space or a
/// hyphen ("long-context" is the phrase "long context").
fn joins_words(between: &str) -> bool {
    between.chars().all(|c| c.is_whitespace() || c == '-')
}

fn push_phrase(phrases: &mut Vec<String>, raw: &str) {
    let raw = raw.replace('-', " ");
    if let Some(p) = without_edge_stop_words(&raw.to_lowercase()) {
        push_unique(phrases, p);
    }
}

/// Drops repeats — the same words up to stemming ("window" after "windows") — and single words
/// already said as part of a longer phrase ("contrastive" after "contrastive loss"), keeping the
/// first-seen order.
fn without_repeats(phrases: Vec<String>, analyzer: &mut TextAnalyzer) -> Vec<String> {
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

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// The abstract cut around its best-matching passage, as plain and highlighted parts.
fn snippet_fragments(text: &str, generator: &SnippetGenerator) -> Vec<Fragment> {
    let snippet = generator.snippet(text);
    let fragment = snippet.fragment();
    if fragment.is_empty() {
        // Nothing matched in the abstract (the title did): show its opening instead.
        return vec![Fragment {
            text: trim_to_chars(text, SNIPPET_CHARS),
            highlighted: false,
        }];
    }
    let mut parts = Vec::new();
    let starts_mid = !text.starts_with(fragment);
    let ends_mid = !text.ends_with(fragment);
    if starts_mid {
        parts.push(Fragment {
            text: "… ".into(),
            highlighted: false,
        });
    }
    // "Contrastive loss" reads as one highlight, not two with a plain gap between them.
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for r in snippet.highlighted() {
        if is_stop_word(&fragment[r.clone()]) {
            continue;
        }
        match runs.last_mut() {
            Some(last) if joins_words(&fragment[last.end..r.start]) => last.end = r.end,
            _ => runs.push(r.clone()),
        }
    }
    let mut at = 0;
    for r in &runs {
        if r.start > at {
            parts.push(Fragment {
                text: fragment[at..r.start].to_string(),
                highlighted: false,
            });
        }
        parts.push(Fragment {
            text: fragment[r.clone()].to_string(),
            highlighted: true,
        });
        at = r.end;
    }
    if at < fragment.len() {
        parts.push(Fragment {
            text: fragment[at..].to_string(),
            highlighted: false,
        });
    }
    if ends_mid {
        parts.push(Fragment {
            text: " …".into(),
            highlighted: false,
        });
    }
    parts
}

fn trim_to_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    // Cut at a word boundary so the snippet does not end mid-word.
    let cut = match cut.rfind(' ') {
        Some(pos) if pos > max / 2 => &cut[..pos],
        _ => cut.as_str(),
    };
    format!("{} …", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PaperId, PaperLinks};

    fn paper(id: &str, title: &str, abs: &str) -> Paper {
        Paper {
            id: PaperId::parse_arxiv(id).unwrap(),
            title: title.into(),
            abstract_text: abs.into(),
            authors: vec!["Ada Lovelace".into()],
            categories: vec![],
            published_at: None,
            upvotes: None,
            links: PaperLinks::default(),
        }
    }

    fn corpus() -> Vec<Paper> {
        vec![
            paper(
                "2401.00001",
                "Diffusion models for protein folding",
                "We fold proteins with denoising diffusion.",
            ),
            paper(
                "2401.00002",
                "A survey of graph neural networks",
                "Graphs are everywhere; we survey message passing.",
            ),
            paper(
                "2401.00003",
                "Scaling contrastive losses",
                "Contrastive learning needs large batches and much memory.",
            ),
            paper(
                "2401.00004",
                "Protein language models",
                "Language models read protein sequences; folding is not covered.",
            ),
        ]
    }

    #[test]
    fn ranks_by_bm25_with_stemming_and_phrases() {
        let papers = corpus();
        let idx = CandidateIndex::build(&papers).unwrap();
        let q = idx.parse_interests("\"protein folding\"").unwrap();
        let picks = idx.rank(&*q, |_| true, 10, 0.0).unwrap();
        assert_eq!(picks.len(), 1, "only the paper with the exact phrase");
        assert_eq!(picks[0].index, 0);
        assert!(
            picks[0]
                .explanation
                .matched
                .contains(&"protein folding".to_string())
        );

        // Stemming: "losses" and "loss" are one word; accents fold.
        let q = idx.parse_interests("contrastive LOSS Mémory").unwrap();
        let picks = idx.rank(&*q, |_| true, 10, 0.0).unwrap();
        assert_eq!(picks[0].index, 2);
        assert!(picks[0].explanation.reasons[0].contains("contrastive"));
        assert!(
            picks[0]
                .explanation
                .snippet
                .iter()
                .any(|f| f.highlighted && f.text == "memory")
        );

        // Adjacent matched words are one highlight, and one reason.
        let q = idx.parse_interests("\"contrastive learning\"").unwrap();
        let picks = idx.rank(&*q, |_| true, 10, 0.0).unwrap();
        let snippet = &picks[0].explanation.snippet;
        assert!(
            snippet
                .iter()
                .any(|f| f.highlighted && f.text == "Contrastive learning"),
            "{snippet:?}"
        );
        assert_eq!(
            picks[0].explanation.matched,
            vec!["contrastive learning".to_string()]
        );
    }

    #[test]
    fn floor_max_and_filter_apply() {
        let papers = corpus();
        let idx = CandidateIndex::build(&papers).unwrap();
        let q = idx.parse_interests("protein").unwrap();
        let all = idx.rank(&*q, |_| true, 10, 0.0).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[0].score >= all[1].score);
        assert_eq!(idx.rank(&*q, |_| true, 1, 0.0).unwrap().len(), 1);
        assert!(idx.rank(&*q, |_| true, 10, 1000.0).unwrap().is_empty());
        let without_first = idx.rank(&*q, |i| i != all[0].index, 10, 0.0).unwrap();
        assert_eq!(without_first.len(), 1);
        assert_ne!(without_first[0].index, all[0].index);
    }

    #[test]
    fn bad_interests_are_explained() {
        let err = check_interests("\"protein folding").unwrap_err();
        assert!(err.to_string().contains("quote"), "{err}");
        let err = check_interests("venue:neurips").unwrap_err();
        assert!(err.to_string().contains("venue"), "{err}");
        assert!(check_interests("diffusion \"protein folding\"").is_ok());
    }

    #[test]
    fn stop_words_are_left_out_of_explanations_but_phrases_keep_them() {
        let papers = vec![
            paper(
                "2401.00011",
                "Learning in context",
                "Models learn in context from a few examples.",
            ),
            paper(
                "2401.00012",
                "Long context windows",
                "The context window of a model in practice.",
            ),
        ];
        let idx = CandidateIndex::build(&papers).unwrap();
        let q = idx.parse_interests("\"in-context\"").unwrap();
        let picks = idx.rank(&*q, |_| true, 10, 0.0).unwrap();
        assert_eq!(
            picks.len(),
            1,
            "the phrase needs \"in\" right before \"context\""
        );
        assert_eq!(picks[0].index, 0);
        // The reason names the meaningful word; the stop word at the phrase's edge is dropped.
        assert_eq!(picks[0].explanation.matched, vec!["context".to_string()]);

        let q = idx.parse_interests("in window").unwrap();
        let picks = idx.rank(&*q, |_| true, 10, 0.0).unwrap();
        assert_eq!(picks[0].index, 1);
        assert_eq!(picks[0].explanation.matched, vec!["windows".to_string()]);
        assert!(
            picks[0]
                .explanation
                .snippet
                .iter()
                .all(|f| !(f.highlighted && f.text == "in"))
        );
    }

    #[test]
    fn matched_words_are_not_repeated() {
        let mut analyzer = english_analyzer();
        let v = without_repeats(
            vec![
                "contrastive loss".into(),
                "memory".into(),
                "contrastive".into(),
                "memories".into(),
            ],
            &mut analyzer,
        );
        assert_eq!(
            v,
            vec!["contrastive loss".to_string(), "memory".to_string()]
        );
    }

    #[test]
    fn snippets_are_trimmed_at_word_boundaries() {
        let long = "word ".repeat(200);
        let t = trim_to_chars(&long, 50);
        assert!(t.chars().count() <= 52 && t.ends_with('…'), "{t}");
    }
}
