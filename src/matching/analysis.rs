//! How text becomes terms: the analyzers (English stemming, folding, categories), each
//! candidate's tokens kept from indexing, and the snippet passages cut from them.
//!
//! What it is for: analysing every abstract once per planning run. Snippets are chosen from
//! the stored tokens (`Fragments`) instead of analysing an abstract again for each pick, and
//! `KnownStems` stems query words from the stems learned while indexing. What it is not for:
//! deciding what matches or ranks (`query`, `rank`).

use std::collections::HashMap;
use std::sync::Arc;
use tantivy::Index;
use tantivy::schema::{IndexRecordOption, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer,
    Stemmer, TextAnalyzer, TokenFilter, TokenStream, Tokenizer,
};

pub(super) const STEMMED: &str = "paperboy_en";
pub(super) const FOLDED: &str = "paperboy_folded";
pub(super) const CATEGORY: &str = "paperboy_category";

/// A word of a title or abstract: where it is in the text and its stemmed term's id.
#[derive(Clone, Copy)]
pub(super) struct Token {
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) term: u32,
}

/// Titles and abstracts: words, lower-cased, accents folded, English-stemmed.
///
/// Stop words stay in the index: a phrase such as "in-context" must match "in context" and not
/// every abstract that says "context". BM25 already gives them almost no weight; the
/// explanations leave them out (see `is_stop_word`).
pub(super) fn english_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// Author names: words, lower-cased, accents folded, not stemmed ("Müller" finds "Muller").
pub(super) fn folded_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

pub(super) fn register_tokenizers(index: &Index) {
    index.tokenizers().register(STEMMED, english_analyzer());
    index.tokenizers().register(FOLDED, folded_analyzer());
    // A category is one token, case-folded: `cat:cs.LG` is the term "cs.lg".
    index.tokenizers().register(
        CATEGORY,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
}

pub(super) fn text_options(tokenizer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    )
}

/// An author's name as a lookup key: folded words joined by single spaces.
pub(super) fn author_key(name: &str) -> String {
    let mut analyzer = folded_analyzer();
    let mut stream = analyzer.token_stream(name);
    let mut words = Vec::new();
    while let Some(t) = stream.next() {
        words.push(t.text.clone());
    }
    words.join(" ")
}

/// A category and its archive (`cs.LG` → `cs.lg`, `cs`), lower-cased: `cat:cs` asks for all of
/// computer science.
pub(super) fn category_keys(category: &str) -> Vec<String> {
    let c = category.trim().to_lowercase();
    let mut keys = vec![c.clone()];
    if let Some((archive, _)) = c.split_once('.') {
        keys.push(archive.to_string());
    }
    keys
}

/// The tokens of a title or abstract with their stemmed terms, learning each folded word's stem
/// on the way (the folded and the stemmed analyzers differ only by the last filter, so their
/// tokens pair up one to one).
pub(super) fn tokens_of(
    text: &str,
    analyzers: &mut (TextAnalyzer, TextAnalyzer),
    vocabulary: &mut HashMap<String, u32>,
    stems: &mut HashMap<String, String>,
) -> Vec<Token> {
    let mut out = Vec::new();
    let (stemmer, folder) = analyzers;
    let mut stemmed = stemmer.token_stream(text);
    let mut folded = folder.token_stream(text);
    while let Some(t) = stemmed.next() {
        if let Some(f) = folded.next()
            && !stems.contains_key(&f.text)
        {
            stems.insert(f.text.clone(), t.text.clone());
        }
        let next = vocabulary.len() as u32;
        let term = *vocabulary.entry(t.text.clone()).or_insert(next);
        out.push(Token {
            start: t.offset_from as u32,
            end: t.offset_to as u32,
            term,
        });
    }
    out
}

/// (term, position) of each token, sorted: where each term occurs in a text.
pub(super) fn by_term(tokens: &[Token]) -> Box<[(u32, u32)]> {
    let mut list: Vec<(u32, u32)> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.term, i as u32))
        .collect();
    list.sort_unstable();
    list.into()
}

/// A candidate abstract's snippet passages: the fragments tantivy's snippet generator would
/// cut it into, and which fragment each token falls in.
///
/// Tantivy's generator cuts a text into fragments whatever the query: the first starts at the
/// text's start, and a token that ends more than `max_num_chars` after the current fragment's
/// start opens the next, which ends where its last token ends. It then scores each fragment by
/// the weights of the query's tokens in it and shows the best (the earliest of equals). The
/// cut depends on the text alone, so it is made once per run here, and a pick's snippet is
/// chosen from the query's occurrences alone ([`Fragments::best`]). Why not the generator
/// itself: it analyses the whole abstract again and looks every token up by a new lower-cased
/// string, for each pick of each subscriber, which was 7 % of planning with meaning after
/// every other saving (BENCHMARKS.md). `the_passages_are_tantivys` holds the two equal on real
/// abstracts, so a change of that rule in tantivy fails a test, not a digest.
pub(super) struct Fragments {
    /// Per token: the fragment it is in.
    of_token: Box<[u32]>,
    /// Per fragment: its byte range in the text (start, end of its last token).
    bounds: Box<[[u32; 2]]>,
}

impl Fragments {
    pub(super) fn new(tokens: &[Token], max_chars: usize) -> Self {
        let mut of_token = Vec::with_capacity(tokens.len());
        let mut bounds: Vec<[u32; 2]> = vec![[0, 0]];
        for t in tokens {
            let current = bounds.last_mut().expect("one fragment at least");
            if (t.end as usize).saturating_sub(current[0] as usize) > max_chars {
                bounds.push([t.start, t.end]);
            } else {
                current[1] = t.end;
            }
            of_token.push((bounds.len() - 1) as u32);
        }
        Fragments {
            of_token: of_token.into(),
            bounds: bounds.into(),
        }
    }

    /// The fragment a snippet shows for the query's occurrences `hits` (token position and
    /// its term's weight, in token order): the highest sum of weights, the earliest of equals;
    /// `None` when no fragment has any. Summed in token order, as tantivy does, so that equal
    /// sums stay equal.
    pub(super) fn best(&self, hits: &[(u32, f32)]) -> Option<usize> {
        let mut scores = vec![0f32; self.bounds.len()];
        for &(token, weight) in hits {
            if let Some(&f) = self.of_token.get(token as usize) {
                scores[f as usize] += weight;
            }
        }
        let mut best: Option<(usize, f32)> = None;
        for (f, &score) in scores.iter().enumerate() {
            if score > 0.0 && best.is_none_or(|(_, b)| score > b) {
                best = Some((f, score));
            }
        }
        best.map(|(f, _)| f)
    }

    /// The fragment token `token` is in.
    pub(super) fn of(&self, token: u32) -> Option<usize> {
        self.of_token.get(token as usize).map(|&f| f as usize)
    }

    /// Fragment `f`'s byte range in the text.
    pub(super) fn bounds(&self, f: usize) -> std::ops::Range<usize> {
        let [start, end] = self.bounds[f];
        start as usize..end as usize
    }
}

/// A stemming token filter that reads the stems learned while the index was built, and stems
/// only the words it has not seen (with tantivy's English stemmer).
///
/// Why: explanations analyse short texts (matched phrases) for every pick of every subscriber;
/// the candidates' words are all known by then, so a table look-up gives the same stems as the
/// Snowball stemmer, which was a large share of the planning time.
#[derive(Clone)]
pub(super) struct KnownStems {
    pub(super) table: Arc<HashMap<String, String>>,
}

impl TokenFilter for KnownStems {
    type Tokenizer<T: Tokenizer> = KnownStemsFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> KnownStemsFilter<T> {
        KnownStemsFilter {
            table: self.table,
            inner,
            fallback: TextAnalyzer::builder(RawTokenizer::default())
                .filter(Stemmer::new(Language::English))
                .build(),
        }
    }
}

#[derive(Clone)]
pub(super) struct KnownStemsFilter<T> {
    pub(super) table: Arc<HashMap<String, String>>,
    inner: T,
    fallback: TextAnalyzer,
}

impl<T: Tokenizer> Tokenizer for KnownStemsFilter<T> {
    type TokenStream<'a> = KnownStemsStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        KnownStemsStream {
            tail: self.inner.token_stream(text),
            table: &self.table,
            fallback: &mut self.fallback,
        }
    }
}

pub(super) struct KnownStemsStream<'a, S> {
    tail: S,
    pub(super) table: &'a HashMap<String, String>,
    fallback: &'a mut TextAnalyzer,
}

impl<S: TokenStream> TokenStream for KnownStemsStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        match self.table.get(&token.text) {
            Some(stem) => {
                // Reuse the token's buffer: no allocation per word.
                token.text.clear();
                token.text.push_str(stem);
            }
            None => {
                let word = std::mem::take(&mut token.text);
                let mut stream = self.fallback.token_stream(&word);
                token.text = match stream.next() {
                    Some(t) => t.text.clone(),
                    None => word.clone(),
                };
            }
        }
        true
    }

    fn token(&self) -> &tantivy::tokenizer::Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut tantivy::tokenizer::Token {
        self.tail.token_mut()
    }
}

/// English function words. Tantivy highlights every query term, including the "in" of the
/// phrase "in-context" wherever it occurs; naming "in" as a reason would be noise.
pub(super) const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "into",
    "is", "it", "its", "of", "on", "or", "our", "that", "the", "their", "this", "to", "via", "was",
    "we", "were", "which", "with",
];

pub(super) fn is_stop_word(word: &str) -> bool {
    // Called for every highlighted word of every pick: compare without allocating.
    STOP_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}
