//! How text becomes terms: the analyzers (English stemming, folding, categories), each
//! candidate's tokens kept from indexing, and the tokenizers that replay them.
//!
//! What it is for: analysing every abstract once per planning run. The snippet tokenizer
//! (`Remembered`) replays the stored tokens instead of analysing an abstract again for each
//! pick, and `KnownStems` stems query words from the stems learned while indexing. What it is
//! not for: deciding what matches or ranks (`query`, `rank`).

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

/// A candidate's abstract as the snippet tokenizer recognises it: address and length in bytes.
type TextKey = (usize, usize);

/// The snippet generator's tokenizer. It is handed a candidate's abstract once per pick, for
/// every subscriber; analysing it again each time was most of the planning time (BENCHMARKS.md,
/// "Planning speed"). A candidate's abstract (recognised by the address and length of the very
/// string the index holds, which is the one explanations pass in) is replayed from the tokens
/// computed at build time; any other text is analysed by `other_texts`.
#[derive(Clone)]
pub(super) struct Remembered {
    pub(super) known: Arc<HashMap<TextKey, Replay>>,
    /// Term id → stemmed text.
    pub(super) terms: Arc<Vec<String>>,
    pub(super) other_texts: TextAnalyzer,
    /// The query's terms, when known: then only the tokens of these terms and those at the
    /// edges of a fragment are replayed ([`Replay`]). The snippet generator lower-cases every
    /// token into a new string and looks it up among the query's terms, which was 40 % of the
    /// ranking time; most words of an abstract cannot be highlighted and cannot move a
    /// fragment's bounds, so leaving them out gives the same snippet.
    pub(super) only: Option<Arc<[u32]>>,
}

/// A candidate abstract's tokens, and which of them open or close a snippet fragment.
///
/// Tantivy's snippet generator cuts a text into fragments whatever the query: a token that
/// ends more than `max_num_chars` after the current fragment's start opens the next fragment,
/// which ends where its last token ends. It then scores each fragment by the query terms in it.
/// So a stream of only the query's tokens plus each fragment's first and last token yields the
/// same fragments, scores and highlights (`sparse_replay_gives_the_same_snippets` holds the
/// two equal on real abstracts, so a change of that rule in tantivy fails a test, not a digest).
#[derive(Clone)]
pub(super) struct Replay {
    pub(super) tokens: Arc<[Token]>,
    /// Per token: first or last of its fragment at [`SNIPPET_CHARS`].
    pub(super) edge: Arc<[bool]>,
}

impl Replay {
    pub(super) fn new(tokens: Arc<[Token]>, max_chars: usize) -> Self {
        let mut edge = vec![false; tokens.len()];
        let mut start = 0usize;
        for (i, t) in tokens.iter().enumerate() {
            if (t.end as usize).saturating_sub(start) > max_chars {
                start = t.start as usize;
                edge[i] = true;
                if i > 0 {
                    edge[i - 1] = true;
                }
            }
        }
        if let Some(first) = edge.first_mut() {
            *first = true;
        }
        if let Some(last) = edge.last_mut() {
            *last = true;
        }
        Replay {
            tokens,
            edge: edge.into(),
        }
    }
}

impl Tokenizer for Remembered {
    type TokenStream<'a> = RememberedStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> RememberedStream<'a> {
        match self.known.get(&(text.as_ptr() as usize, text.len())) {
            Some(replay) => RememberedStream::Known {
                replay: replay.clone(),
                terms: &self.terms,
                only: self.only.as_deref(),
                next: 0,
                token: tantivy::tokenizer::Token::default(),
            },
            None => RememberedStream::Other(self.other_texts.token_stream(text)),
        }
    }
}

pub(super) enum RememberedStream<'a> {
    Known {
        replay: Replay,
        terms: &'a [String],
        only: Option<&'a [u32]>,
        next: usize,
        token: tantivy::tokenizer::Token,
    },
    Other(tantivy::tokenizer::BoxTokenStream<'a>),
}

impl TokenStream for RememberedStream<'_> {
    fn advance(&mut self) -> bool {
        match self {
            RememberedStream::Known {
                replay,
                terms,
                only,
                next,
                token,
            } => loop {
                let i = *next;
                let Some(t) = replay.tokens.get(i) else {
                    return false;
                };
                *next += 1;
                let wanted = only.is_none_or(|o| o.contains(&t.term));
                if !wanted && !replay.edge[i] {
                    continue;
                }
                token.offset_from = t.start as usize;
                token.offset_to = t.end as usize;
                token.position = i;
                token.text.clear();
                if wanted {
                    token.text.push_str(&terms[t.term as usize]);
                }
                return true;
            },
            RememberedStream::Other(stream) => stream.advance(),
        }
    }

    fn token(&self) -> &tantivy::tokenizer::Token {
        match self {
            RememberedStream::Known { token, .. } => token,
            RememberedStream::Other(stream) => stream.token(),
        }
    }

    fn token_mut(&mut self) -> &mut tantivy::tokenizer::Token {
        match self {
            RememberedStream::Known { token, .. } => token,
            RememberedStream::Other(stream) => stream.token_mut(),
        }
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
