//! The candidate index: one planning run's papers in an in-memory tantivy index, with what
//! ranking and explanations need about each paper computed once.
//!
//! What it is for: building the index and reaching its documents by position. What it is not
//! for: parsing interests (`query`), scoring (`rank`) or explaining (`explain`).

use super::MatchError;
use super::analysis::{
    CATEGORY, FOLDED, Fragments, KnownStems, STEMMED, Token, author_key, by_term, category_keys,
    english_analyzer, folded_analyzer, register_tokenizers, text_options, tokens_of,
};
use super::explain::SNIPPET_CHARS;
use super::meaning::{ClauseScores, PaperMatrix};
use crate::embed::{Embedding, SentenceVector};
use crate::model::Paper;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tantivy::query::{EnableScoring, Query, QueryParser};
use tantivy::schema::{FAST, Field, Schema};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, Searcher, TantivyDocument, doc};

/// Title words say more about a paper than abstract words: on top of counting in the text, a
/// word in the title earns this share again. (`paperboy eval` on Inspec: 0.5 beats 2.0, which
/// let one title word outweigh a whole matching abstract.)
const TITLE_BOOST: f32 = 0.5;

pub(super) struct Fields {
    pub(super) title: Field,
    pub(super) abstract_text: Field,
    pub(super) author: Field,
    pub(super) cat: Field,
    /// Title and abstract together: what plain words are scored against, so that a word in
    /// both is one match with one length normalisation, not two.
    pub(super) text: Field,
}

/// Per paper, what explanations and the non-text signals need, computed once per run.
pub(super) struct PaperFacts {
    pub(super) title: String,
    pub(super) abstract_text: String,
    pub(super) title_tokens: Vec<Token>,
    /// (term, position in `title_tokens`), sorted: where each term occurs.
    pub(super) title_by_term: Box<[(u32, u32)]>,
    /// The same for `abstract_tokens`.
    pub(super) abstract_by_term: Box<[(u32, u32)]>,
    pub(super) abstract_tokens: Vec<Token>,
    /// The snippet passages `abstract_tokens` make.
    pub(super) fragments: Fragments,
    pub(super) authors: Vec<String>,
    /// Each author's lookup key ([`author_key`]), in the order of `authors`: made once here,
    /// not for every pick that names a followed or asked-for author.
    pub(super) author_keys: Vec<String>,
    pub(super) categories: Vec<String>,
    pub(super) upvotes: i64,
    /// Upvotes relative to the day's most-upvoted candidate, log scale, 0 to 1.
    pub(super) trending: f32,
}

/// The candidate papers of one planning run, indexed for ranking.
pub struct CandidateIndex {
    pub(super) searcher: Searcher,
    pub(super) fields: Fields,
    pub(super) parser: QueryParser,
    /// For each segment, document id → position in the slice given to `build`.
    doc_ord: Vec<Vec<usize>>,
    pub(super) papers: Vec<PaperFacts>,
    /// Stemmed title and abstract words → ids used in [`Token`].
    pub(super) vocabulary: HashMap<String, u32>,
    /// Folded author name → papers by them.
    pub(super) by_author: HashMap<String, Vec<usize>>,
    /// Lower-cased category and archive (`cs.lg`, `cs`) → papers in it.
    pub(super) by_category: HashMap<String, Vec<usize>>,
    /// The analyzer of queries and other text (not the candidates'): the stems learned while
    /// indexing ([`KnownStems`]).
    pub(super) stemmed: TextAnalyzer,
    /// The candidates' sentence vectors, by position (zeros: not embedded yet). No rows when
    /// the run has none at all: ranking is by words alone then.
    pub(super) vectors: PaperMatrix,
    /// Each candidate's abstract sentences with their vectors, by position (empty: none
    /// stored), for the highlight of a paper picked by meaning alone.
    pub(super) sentences: Vec<Vec<SentenceVector>>,
    /// Interest clauses already scored against the candidates, kept for the run: many
    /// subscribers share a clause ("language models"). Filled until [`CLAUSE_CACHE_BYTES`].
    clause_cache: Mutex<HashMap<String, Arc<ClauseScores>>>,
}

/// What the run's clause cache may hold: 8,192 clauses at 2,000 candidates (8 KB each). Not
/// every clause: at 100,000 subscribers most clauses are their writer's own, and all of them
/// would take half a gigabyte; those are scored with their slice (`score_clauses`) and dropped.
const CLAUSE_CACHE_BYTES: usize = 64 << 20;

/// Clauses scored against the candidates, by [`crate::embed::interest_key`]: what
/// [`CandidateIndex::score_clauses`] returns and a [`super::RankingProfile`] ranks with.
pub type ClauseTable = HashMap<String, Arc<ClauseScores>>;

impl CandidateIndex {
    pub fn build<'a>(papers: impl IntoIterator<Item = &'a Paper>) -> Result<Self, MatchError> {
        let mut sb = Schema::builder();
        let title = sb.add_text_field("title", text_options(STEMMED));
        let abstract_text = sb.add_text_field("abstract", text_options(STEMMED));
        let author = sb.add_text_field("author", text_options(FOLDED));
        let cat = sb.add_text_field("cat", text_options(CATEGORY));
        let text = sb.add_text_field("text", text_options(STEMMED));
        let ord = sb.add_u64_field("ord", FAST);
        let index = Index::create_in_ram(sb.build());
        register_tokenizers(&index);

        let mut facts = Vec::new();
        let mut vocabulary = HashMap::new();
        let mut by_author: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_category: HashMap<String, Vec<usize>> = HashMap::new();
        let mut analyzers = (english_analyzer(), folded_analyzer());
        let mut stems = HashMap::new();
        {
            // One thread and one commit: with this budget a few thousand abstracts stay in one
            // segment (fewer segments, faster searches); more would still be correct (`ord`).
            let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 50_000_000)?;
            for (i, paper) in papers.into_iter().enumerate() {
                let mut d = doc!(
                    title => paper.title.as_str(),
                    abstract_text => paper.abstract_text.as_str(),
                    text => format!("{}\n{}", paper.title, paper.abstract_text),
                    ord => i as u64,
                );
                let mut author_keys = Vec::with_capacity(paper.authors.len());
                for name in &paper.authors {
                    d.add_text(author, name);
                    let key = author_key(name);
                    let list = by_author.entry(key.clone()).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                    author_keys.push(key);
                }
                let mut categories = Vec::new();
                for c in &paper.categories {
                    for key in category_keys(c) {
                        if !categories.contains(&key) {
                            d.add_text(cat, &key);
                            by_category.entry(key.clone()).or_default().push(i);
                            categories.push(key);
                        }
                    }
                }
                writer.add_document(d)?;
                let title_tokens =
                    tokens_of(&paper.title, &mut analyzers, &mut vocabulary, &mut stems);
                let abstract_tokens = tokens_of(
                    &paper.abstract_text,
                    &mut analyzers,
                    &mut vocabulary,
                    &mut stems,
                );
                facts.push(PaperFacts {
                    title_by_term: by_term(&title_tokens),
                    abstract_by_term: by_term(&abstract_tokens),
                    title_tokens,
                    fragments: Fragments::new(&abstract_tokens, SNIPPET_CHARS),
                    abstract_tokens,
                    title: paper.title.clone(),
                    abstract_text: paper.abstract_text.clone(),
                    authors: paper.authors.clone(),
                    author_keys,
                    categories: paper.categories.clone(),
                    upvotes: paper.upvotes.unwrap_or(0).max(0),
                    trending: 0.0,
                });
            }
            writer.commit()?;
        }
        let searcher = index.reader()?.searcher();
        // Tantivy may split the documents into several segments, in any order: each
        // document's position in the slice is read back from its `ord` fast field once here.
        let mut doc_ord = Vec::new();
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64("ord")?;
            let map: Vec<usize> = (0..segment.max_doc())
                .map(|d| column.first(d).map_or(usize::MAX, |v| v as usize))
                .collect();
            doc_ord.push(map);
        }
        // Plain words are scored against title + abstract as one text (a word in both is one
        // match, with one length normalisation); the title field adds a half-weight bonus.
        let mut parser = QueryParser::for_index(&index, vec![text, title]);
        parser.set_field_boost(title, TITLE_BOOST);
        let max_upvotes = facts.iter().map(|f| f.upvotes).max().unwrap_or(0);
        // Upvotes relative to the day's most-upvoted paper, on a log scale: 0 to 1.
        let log_max = (max_upvotes as f32).ln_1p();
        for f in &mut facts {
            if log_max > 0.0 {
                f.trending = (f.upvotes as f32).ln_1p() / log_max;
            }
        }
        let stemmed = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .filter(KnownStems {
                table: Arc::new(stems),
            })
            .build();
        // From now on the index only analyses queries (the parser's words, more-like-this
        // texts): the stems learned while indexing give the same terms as the Snowball stemmer
        // without running it for every word of every subscriber's query.
        index.tokenizers().register(STEMMED, stemmed.clone());
        Ok(CandidateIndex {
            searcher,
            fields: Fields {
                title,
                abstract_text,
                author,
                cat,
                text,
            },
            parser,
            doc_ord,
            papers: facts,
            vocabulary,
            by_author,
            by_category,
            stemmed,
            vectors: PaperMatrix::default(),
            sentences: Vec::new(),
            clause_cache: Mutex::new(HashMap::new()),
        })
    }

    /// Gives the candidates their vectors, by position (as many as were indexed; a missing
    /// one is `None`). Without this call, or with no vector at all, ranking is by words alone.
    pub fn with_vectors(mut self, vectors: Vec<Option<Embedding>>) -> Self {
        if vectors.len() == self.papers.len() && vectors.iter().any(Option::is_some) {
            self.vectors = PaperMatrix::new(&vectors);
        }
        self
    }

    /// Gives the candidates their abstracts' sentence vectors, by position (as many as were
    /// indexed; an empty list for a paper that has none).
    pub fn with_sentences(mut self, sentences: Vec<Vec<SentenceVector>>) -> Self {
        if sentences.len() == self.papers.len() {
            self.sentences = sentences;
        }
        self
    }

    /// Whether closeness in meaning can be measured in this run.
    pub fn has_vectors(&self) -> bool {
        self.vectors.rows() > 0
    }

    /// Scores `clauses` (key and vector) against every candidate: those the run's cache has
    /// from there, the rest together in one blocked matrix product, kept in the cache while
    /// it has room. Ranking many subscribers, score their clauses together first: a product
    /// over many clauses reads the candidates' matrix from cache a block at a time, where
    /// one clause at a time streams all of it from memory per clause.
    pub fn score_clauses<'a>(
        &self,
        clauses: impl IntoIterator<Item = (&'a str, &'a Embedding)>,
    ) -> ClauseTable {
        let mut table = ClauseTable::new();
        if !self.has_vectors() {
            return table;
        }
        let mut missing: Vec<(&str, &Embedding)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        {
            let cache = self.clause_cache.lock().unwrap_or_else(|e| e.into_inner());
            for (key, v) in clauses {
                if !seen.insert(key) {
                    continue;
                }
                match cache.get(key) {
                    Some(hit) => {
                        table.insert(key.to_string(), hit.clone());
                    }
                    None => missing.push((key, v)),
                }
            }
        }
        if missing.is_empty() {
            return table;
        }
        let vectors: Vec<&Embedding> = missing.iter().map(|(_, v)| *v).collect();
        let scored = self.vectors.score(&vectors);
        let room = CLAUSE_CACHE_BYTES / ClauseScores::bytes_for(self.len());
        let mut cache = self.clause_cache.lock().unwrap_or_else(|e| e.into_inner());
        for ((key, _), scores) in missing.into_iter().zip(scored) {
            let scores = Arc::new(scores);
            if cache.len() < room {
                cache.insert(key.to_string(), scores.clone());
            }
            table.insert(key.to_string(), scores);
        }
        table
    }

    pub fn len(&self) -> usize {
        self.papers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.papers.is_empty()
    }

    /// Calls `f` with (paper position, score) for every candidate `query` matches.
    pub(super) fn for_each_hit(
        &self,
        query: &dyn Query,
        mut f: impl FnMut(usize, f32),
    ) -> Result<(), MatchError> {
        let weight = query.weight(EnableScoring::enabled_from_searcher(&self.searcher))?;
        for (ord, segment) in self.searcher.segment_readers().iter().enumerate() {
            let map = &self.doc_ord[ord];
            weight.for_each(segment, &mut |doc, score| {
                if let Some(&i) = map.get(doc as usize).filter(|&&i| i != usize::MAX) {
                    f(i, score);
                }
            })?;
        }
        Ok(())
    }
}
