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
//! A relevance floor keeps weak matches out however empty the day; at most `max` papers are
//! picked. Each pick carries its reasons and an abstract snippet with the matched words marked
//! (tantivy's snippet generator), computed for the picks only.
//!
//! What it is not for: I/O. It gets papers (and the texts of liked papers) and returns picks;
//! loading profiles and votes is `store`'s job, choosing who is due is `jobs::plan`'s.

use crate::model::Paper;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tantivy::query::{
    BooleanQuery, BoostQuery, EnableScoring, MoreLikeThisQuery, Occur, Query, QueryParser,
    QueryParserError,
};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, OwnedValue, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer,
    Stemmer, TextAnalyzer, TokenFilter, TokenStream, Tokenizer,
};
use tantivy::{Index, Searcher, TantivyDocument, doc};

const STEMMED: &str = "paperboy_en";
const FOLDED: &str = "paperboy_folded";
const CATEGORY: &str = "paperboy_category";
/// Title words say more about a paper than abstract words: on top of counting in the text, a
/// word in the title earns this share again. (`paperboy eval` on Inspec: 0.5 beats 2.0, which
/// let one title word outweigh a whole matching abstract.)
const TITLE_BOOST: f32 = 0.5;
/// Weight of the loose phrase added to plain multi-word interests (see `with_proximity`).
const PROXIMITY_BOOST: f32 = 1.0;
/// Words of a loose phrase may stand this many positions apart ("libraries in academia").
const PROXIMITY_SLOP: u32 = 2;
/// How much of the abstract the digest shows around the matched words.
pub const SNIPPET_CHARS: usize = 320;
/// Interests that ask for no topic at all: the day's most-upvoted papers (within the
/// subscriber's categories, if they chose some), like Hugging Face's own email.
pub const TRENDING_ONLY: &str = "*";
/// A paper in one of the subscriber's categories (boost mode) scores this much more.
const CATEGORY_BOOST: f32 = 0.5;
/// Weight of the more-like-this score of liked papers. Its terms are boosted relative to the
/// best one (1.0), so a close paper scores like a good multi-word match; halved, it pulls
/// similar papers up without drowning the subscriber's own words.
const LIKE_WEIGHT: f32 = 0.5;
/// Disliked papers push similar ones down a little harder than liked ones pull: a reader who
/// said "less like this" notices a repeat more than a miss.
const DISLIKE_WEIGHT: f32 = 0.75;
/// Upvotes (relative, log scale) above which "trending" is named as a reason: with 64 upvotes
/// for the day's best, about 23 or more.
const TRENDING_REASON: f32 = 0.75;
/// More-like-this takes at most this many distinctive words from the liked papers.
const LIKE_TERMS: usize = 25;

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
    /// What is wrong, naming the character position when it is known ("at character 12").
    pub problem: String,
    pub hint: String,
    /// 1-based character position of the fault, when known.
    pub position: Option<usize>,
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
    /// Where `snippet` lies in the abstract, when it is a matched passage (`None`: the
    /// abstract's opening). What a delivery stores instead of the snippet's text.
    #[serde(skip)]
    pub span: Option<SnippetSpan>,
}

/// A snippet as byte ranges of the paper's abstract.
///
/// Why: a delivery keeps each pick's explanation until the digest is sent, and a day's picks
/// number in the hundreds of thousands; repeating 300 characters of an abstract in each made
/// most of what planning wrote to the database. The abstract is in the papers table already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetSpan {
    /// Byte length of the abstract the ranges point into: an abstract that changed length
    /// since planning (a new version) gets its opening instead of misplaced highlights.
    len: u32,
    /// The passage shown.
    cut: [u32; 2],
    /// The highlighted words in it, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    marks: Vec<[u32; 2]>,
}

/// An explanation as a delivery stores it ([`Explanation::to_stored_json`]).
#[derive(Deserialize, Default)]
struct StoredExplanation {
    #[serde(default)]
    matched: Vec<String>,
    #[serde(default)]
    reasons: Vec<String>,
    /// Rows planned before spans existed hold the snippet's text.
    #[serde(default)]
    snippet: Vec<Fragment>,
    #[serde(default)]
    span: Option<SnippetSpan>,
}

#[derive(Serialize)]
struct StoredExplanationRef<'a> {
    matched: &'a [String],
    reasons: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    span: Option<&'a SnippetSpan>,
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

/// One paper picked for one subscriber.
#[derive(Debug, Clone)]
pub struct Pick {
    /// Position of the paper in the slice given to [`CandidateIndex::build`].
    pub index: usize,
    pub score: f32,
    pub explanation: Explanation,
}

/// Whether a subscriber's categories narrow the day to those categories or lift their papers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CategoryMode {
    /// Papers in the categories rank higher; others can still be picked.
    #[default]
    Boost,
    /// Only papers in the categories (or by a followed author) are picked.
    Filter,
}

impl CategoryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CategoryMode::Boost => "boost",
            CategoryMode::Filter => "filter",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "boost" => Some(CategoryMode::Boost),
            "filter" => Some(CategoryMode::Filter),
            _ => None,
        }
    }
}

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

/// How the signals are weighed: the same for every subscriber in a run.
#[derive(Debug, Clone, Copy)]
pub struct Blend {
    /// Relevance floor: a paper scoring below it is never picked (followed authors excepted).
    pub min_score: f32,
    /// The most that trending can add to a matching paper's score (0 turns it off).
    pub trending_weight: f32,
}

impl Blend {
    /// Relevance alone: no trending boost.
    pub fn floor(min_score: f32) -> Self {
        Blend {
            min_score,
            trending_weight: 0.0,
        }
    }
}

/// One subscriber's profile, parsed against one candidate index: parse once, rank once.
pub struct Profile {
    interests: Option<Box<dyn Query>>,
    terms: QueryTerms,
    /// Interests were [`TRENDING_ONLY`], or absent: rank by upvotes, not by words.
    browse: bool,
    followed: Vec<String>,
    categories: Vec<String>,
    category_mode: CategoryMode,
    liked: Option<Box<dyn Query>>,
    disliked: Option<Box<dyn Query>>,
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

/// The terms of a parsed query, by field, for explanations.
#[derive(Default)]
struct QueryTerms {
    /// Ids (in [`CandidateIndex::vocabulary`]) of stemmed title and abstract terms.
    text: Vec<u32>,
    /// Folded words asked for with `author:`.
    author: Vec<String>,
    /// Lower-cased categories asked for with `cat:`.
    category: Vec<String>,
}

/// A word of a title or abstract: where it is in the text and its stemmed term's id.
#[derive(Clone, Copy)]
struct Token {
    start: u32,
    end: u32,
    term: u32,
}

struct Fields {
    title: Field,
    abstract_text: Field,
    author: Field,
    cat: Field,
    /// Title and abstract together: what plain words are scored against, so that a word in
    /// both is one match with one length normalisation, not two.
    text: Field,
}

/// Per paper, what explanations and the non-text signals need, computed once per run.
struct PaperFacts {
    title: String,
    abstract_text: String,
    title_tokens: Vec<Token>,
    /// (term, position in `title_tokens`), sorted: where each term occurs.
    title_by_term: Box<[(u32, u32)]>,
    /// The same for `abstract_tokens`.
    abstract_by_term: Box<[(u32, u32)]>,
    /// Shared with the snippet tokenizer ([`Remembered`]).
    abstract_tokens: Arc<[Token]>,
    authors: Vec<String>,
    categories: Vec<String>,
    upvotes: i64,
    /// Upvotes relative to the day's most-upvoted candidate, log scale, 0 to 1.
    trending: f32,
}

/// The candidate papers of one planning run, indexed for ranking.
pub struct CandidateIndex {
    searcher: Searcher,
    fields: Fields,
    parser: QueryParser,
    /// For each segment, document id → position in the slice given to `build`.
    doc_ord: Vec<Vec<usize>>,
    papers: Vec<PaperFacts>,
    /// Stemmed title and abstract words → ids used in [`Token`].
    vocabulary: HashMap<String, u32>,
    /// Folded author name → papers by them.
    by_author: HashMap<String, Vec<usize>>,
    /// Lower-cased category and archive (`cs.lg`, `cs`) → papers in it.
    by_category: HashMap<String, Vec<usize>>,
    /// The snippet tokenizer: candidates' abstracts come from the tokens computed at build time,
    /// other text (`other_texts`) from the stems learned then ([`KnownStems`]).
    remembered: Remembered,
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

/// Author names: words, lower-cased, accents folded, not stemmed ("Müller" finds "Muller").
fn folded_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

fn register_tokenizers(index: &Index) {
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

fn text_options(tokenizer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    )
}

/// An author's name as a lookup key: folded words joined by single spaces.
fn author_key(name: &str) -> String {
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
fn category_keys(category: &str) -> Vec<String> {
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
fn tokens_of(
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
fn by_term(tokens: &[Token]) -> Box<[(u32, u32)]> {
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
struct Remembered {
    known: Arc<HashMap<TextKey, Replay>>,
    /// Term id → stemmed text.
    terms: Arc<Vec<String>>,
    other_texts: TextAnalyzer,
    /// The query's terms, when known: then only the tokens of these terms and those at the
    /// edges of a fragment are replayed ([`Replay`]). The snippet generator lower-cases every
    /// token into a new string and looks it up among the query's terms, which was 40 % of the
    /// ranking time; most words of an abstract cannot be highlighted and cannot move a
    /// fragment's bounds, so leaving them out gives the same snippet.
    only: Option<Arc<[u32]>>,
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
struct Replay {
    tokens: Arc<[Token]>,
    /// Per token: first or last of its fragment at [`SNIPPET_CHARS`].
    edge: Arc<[bool]>,
}

impl Replay {
    fn new(tokens: Arc<[Token]>, max_chars: usize) -> Self {
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

enum RememberedStream<'a> {
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
struct KnownStems {
    table: Arc<HashMap<String, String>>,
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
struct KnownStemsFilter<T> {
    table: Arc<HashMap<String, String>>,
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

struct KnownStemsStream<'a, S> {
    tail: S,
    table: &'a HashMap<String, String>,
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
                for name in &paper.authors {
                    d.add_text(author, name);
                    let key = author_key(name);
                    let list = by_author.entry(key).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
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
                    abstract_tokens: abstract_tokens.into(),
                    title: paper.title.clone(),
                    abstract_text: paper.abstract_text.clone(),
                    authors: paper.authors.clone(),
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
        let other_texts = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .filter(KnownStems {
                table: Arc::new(stems),
            })
            .build();
        let mut terms = vec![String::new(); vocabulary.len()];
        for (text, &id) in &vocabulary {
            terms[id as usize] = text.clone();
        }
        let known = facts
            .iter()
            .filter(|f| !f.abstract_text.is_empty())
            .map(|f| {
                let key = (f.abstract_text.as_ptr() as usize, f.abstract_text.len());
                (key, Replay::new(f.abstract_tokens.clone(), SNIPPET_CHARS))
            })
            .collect();
        let remembered = Remembered {
            known: Arc::new(known),
            terms: Arc::new(terms),
            other_texts,
            only: None,
        };
        // From now on the index only analyses queries (the parser's words, more-like-this
        // texts): the stems learned while indexing give the same terms as the Snowball stemmer
        // without running it for every word of every subscriber's query.
        index
            .tokenizers()
            .register(STEMMED, remembered.other_texts.clone());
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
            remembered,
        })
    }

    pub fn len(&self) -> usize {
        self.papers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.papers.is_empty()
    }

    /// Parses interests into a query, or says what is wrong with them and where.
    pub fn parse_interests(&self, interests: &str) -> Result<Box<dyn Query>, InterestsSyntaxError> {
        if let Some(e) = prescan(interests) {
            return Err(e);
        }
        self.parser
            .parse_query(interests)
            .map_err(|e| explain_parse_error(interests, e))
    }

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

    /// Plain words (no quotes, operators, fields or parentheses) also count as a loose phrase:
    /// a paper where they stand together ("academic libraries") ranks above one that uses
    /// them apart, as search engines do for unquoted queries. Anything with syntax is left as
    /// the subscriber wrote it.
    fn with_proximity(&self, text: &str, query: Box<dyn Query>) -> Box<dyn Query> {
        let plain = text
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '\'');
        let words: Vec<&str> = text.split_whitespace().collect();
        if !plain
            || words.len() < 2
            || words
                .iter()
                .any(|w| w.starts_with('-') || ["AND", "OR", "NOT"].contains(w))
        {
            return query;
        }
        let Ok(phrase) = self
            .parser
            .parse_query(&format!("\"{}\"~{PROXIMITY_SLOP}", words.join(" ")))
        else {
            return query;
        };
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, query),
            (
                Occur::Should,
                Box::new(BoostQuery::new(phrase, PROXIMITY_BOOST)),
            ),
        ]))
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

    fn query_terms(&self, query: &dyn Query) -> QueryTerms {
        let mut terms = QueryTerms::default();
        query.query_terms(&mut |term, _| {
            let value = term.value();
            let Some(text) = value.as_str() else {
                return;
            };
            let field = term.field();
            if field == self.fields.title
                || field == self.fields.abstract_text
                || field == self.fields.text
            {
                if let Some(&id) = self.vocabulary.get(text)
                    && !terms.text.contains(&id)
                {
                    terms.text.push(id);
                }
            } else if field == self.fields.author {
                push_unique(&mut terms.author, text.to_string());
            } else if field == self.fields.cat {
                push_unique(&mut terms.category, text.to_string());
            }
        });
        terms
    }

    /// Calls `f` with (paper position, score) for every candidate `query` matches.
    fn for_each_hit(
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

    /// Ranks the candidates that `allowed` accepts against `query` alone: best first, at most
    /// `max`, none scoring below `min_score`. (The web preview uses this; planning uses
    /// [`CandidateIndex::rank_profile`].)
    pub fn rank(
        &self,
        query: &dyn Query,
        allowed: impl Fn(usize) -> bool,
        max: usize,
        min_score: f32,
    ) -> Result<Vec<Pick>, MatchError> {
        let profile = Profile {
            terms: self.query_terms(query),
            interests: Some(query.box_clone()),
            browse: false,
            followed: Vec::new(),
            categories: Vec::new(),
            category_mode: CategoryMode::Boost,
            liked: None,
            disliked: None,
        };
        self.rank_profile(&profile, &Blend::floor(min_score), allowed, max)
    }

    /// Ranks the candidates that `allowed` accepts for one subscriber: papers by followed
    /// authors first, then by relevance plus the trending boost; none whose relevance is below
    /// the floor; at most `max`. Explanations are computed for the picks only.
    pub fn rank_profile(
        &self,
        profile: &Profile,
        blend: &Blend,
        allowed: impl Fn(usize) -> bool,
        max: usize,
    ) -> Result<Vec<Pick>, MatchError> {
        let n = self.len();
        if n == 0 || max == 0 || profile.is_empty() {
            return Ok(Vec::new());
        }
        let mut relevance = vec![0f32; n];
        let mut liked_part = vec![0f32; n];
        if let Some(q) = &profile.interests {
            self.for_each_hit(q.as_ref(), |i, s| relevance[i] += s)?;
        }
        if let Some(q) = &profile.liked {
            self.for_each_hit(q.as_ref(), |i, s| liked_part[i] += LIKE_WEIGHT * s)?;
            for (r, l) in relevance.iter_mut().zip(&liked_part) {
                *r += l;
            }
        }
        if let Some(q) = &profile.disliked {
            self.for_each_hit(q.as_ref(), |i, s| relevance[i] -= DISLIKE_WEIGHT * s)?;
        }
        let mut in_category = vec![false; n];
        for c in &profile.categories {
            for &i in self.by_category.get(c).into_iter().flatten() {
                in_category[i] = true;
            }
        }
        let mut followed = vec![false; n];
        for a in &profile.followed {
            for &i in self.by_author.get(a).into_iter().flatten() {
                followed[i] = true;
            }
        }
        let filter =
            !profile.categories.is_empty() && profile.category_mode == CategoryMode::Filter;

        let mut ranked: Vec<(bool, f32, usize)> = Vec::new();
        // `allowed` (the window and the papers already sent) is asked last: most of the day's
        // papers fail a cheaper test first.
        for i in 0..n {
            let trending = self.trending(i);
            if followed[i] {
                if !allowed(i) {
                    continue;
                }
                ranked.push((
                    true,
                    relevance[i].max(0.0) + blend.trending_weight * trending,
                    i,
                ));
                continue;
            }
            if filter && !in_category[i] {
                continue;
            }
            if profile.browse {
                // No words to match: the day's most-upvoted papers (in the categories, when
                // given). Papers nobody upvoted are not "trending".
                let in_scope = if profile.categories.is_empty() {
                    self.papers[i].upvotes > 0
                } else {
                    in_category[i]
                };
                if in_scope && allowed(i) {
                    ranked.push((false, trending, i));
                }
                continue;
            }
            let mut r = relevance[i];
            if r <= 0.0 {
                continue;
            }
            if in_category[i] {
                r *= 1.0 + CATEGORY_BOOST;
            }
            // The floor judges relevance alone: trending lifts a match, never makes one.
            if r >= blend.min_score && allowed(i) {
                ranked.push((false, r + blend.trending_weight * trending, i));
            }
        }
        // Followed first, then by score, then by position: a total order, so picking the best
        // `max` first and sorting only those gives the same list as sorting everything.
        let order = |a: &(bool, f32, usize), b: &(bool, f32, usize)| {
            b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2))
        };
        if ranked.len() > max {
            ranked.select_nth_unstable_by(max - 1, order);
            ranked.truncate(max);
        }
        ranked.sort_unstable_by(order);

        let mut explainer = Explainer::new(self, profile)?;
        Ok(ranked
            .into_iter()
            .map(|(is_followed, score, i)| Pick {
                index: i,
                score,
                explanation: explainer.explain(
                    i,
                    &Signals {
                        followed: is_followed,
                        in_category: in_category[i],
                        liked: liked_part[i] > 0.0 && liked_part[i] >= 0.3 * relevance[i].max(0.0),
                        trending: self.trending(i),
                        browse: profile.browse,
                    },
                ),
            })
            .collect())
    }

    /// Upvotes relative to the day's most-upvoted paper, on a log scale: 0 to 1.
    fn trending(&self, i: usize) -> f32 {
        self.papers[i].trending
    }
}

/// What made one paper a pick, beyond its words.
struct Signals {
    followed: bool,
    in_category: bool,
    liked: bool,
    trending: f32,
    browse: bool,
}

/// Builds the explanations of one subscriber's picks; the snippet generator is made once, and
/// only when there are picks to explain.
struct Explainer<'a> {
    index: &'a CandidateIndex,
    profile: &'a Profile,
    snippets: Option<SnippetGenerator>,
    analyzer: TextAnalyzer,
}

impl<'a> Explainer<'a> {
    fn new(index: &'a CandidateIndex, profile: &'a Profile) -> Result<Self, MatchError> {
        let snippets = match &profile.interests {
            Some(q) if !profile.terms.text.is_empty() => {
                let (field, weights, ids) = index.snippet_terms(q.as_ref())?;
                let tokenizer = Remembered {
                    only: Some(ids.into()),
                    ..index.remembered.clone()
                };
                Some(SnippetGenerator::new(
                    weights,
                    TextAnalyzer::from(tokenizer),
                    field,
                    SNIPPET_CHARS,
                ))
            }
            _ => None,
        };
        Ok(Explainer {
            index,
            profile,
            snippets,
            analyzer: index.remembered.other_texts.clone(),
        })
    }

    fn explain(&mut self, i: usize, signals: &Signals) -> Explanation {
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
            let names = self.authors_where(paper, |key| self.profile.followed.contains(&key));
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
        if signals.liked {
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
        let span = self.snippets.as_ref().and_then(|g| {
            let starts =
                std::iter::once(0).chain(paper.abstract_tokens.iter().map(|t| t.start as usize));
            snippet_span(&paper.abstract_text, starts, g)
        });
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

    /// The paper's author names whose lookup key passes `keep`, as the paper spells them.
    fn authors_where(&self, paper: &PaperFacts, keep: impl Fn(String) -> bool) -> Vec<String> {
        paper
            .authors
            .iter()
            .filter(|a| keep(author_key(a)))
            .cloned()
            .collect()
    }
}

/// The field a snippet reads, its terms' weights, and their vocabulary ids.
type SnippetTerms = (Field, BTreeMap<String, f32>, Vec<u32>);

impl CandidateIndex {
    /// What a snippet generator for `query` highlights: the field whose terms it reads, their
    /// weights, and their ids in [`CandidateIndex::vocabulary`].
    ///
    /// Plain words are terms of the `text` field; `abstract:` ones of the abstract field. The
    /// generator highlights one field's terms: take the field the query uses (both share one
    /// analyzer, so either reads the abstract right). The weights are the ones
    /// `SnippetGenerator::create` gives (rarer words weigh more).
    fn snippet_terms(&self, query: &dyn Query) -> Result<SnippetTerms, MatchError> {
        let field = if query_uses(query, self.fields.text) {
            self.fields.text
        } else {
            self.fields.abstract_text
        };
        let mut weights = BTreeMap::new();
        let mut ids = Vec::new();
        let mut terms = Vec::new();
        query.query_terms(&mut |t, _| {
            if t.field() == field {
                terms.push(t.clone());
            }
        });
        for t in terms {
            let df = self.searcher.doc_freq(&t)?;
            if let Some(text) = t.value().as_str()
                && df > 0
            {
                weights.insert(text.to_string(), 1.0 / (1.0 + df as f32));
                ids.extend(self.vocabulary.get(text));
            }
        }
        Ok((field, weights, ids))
    }
}

fn query_uses(query: &dyn Query, field: Field) -> bool {
    let mut found = false;
    query.query_terms(&mut |t, _| found |= t.field() == field);
    found
}

/// Whether interests parse, without any papers at hand (CLI and web forms use this).
pub fn check_interests(interests: &str) -> Result<(), InterestsSyntaxError> {
    let empty: [&Paper; 0] = [];
    let index = CandidateIndex::build(empty).map_err(|e| InterestsSyntaxError {
        input: interests.to_string(),
        problem: e.to_string(),
        hint: String::new(),
        position: None,
    })?;
    if interests.trim() == TRENDING_ONLY {
        return Ok(());
    }
    index.parse_interests(interests).map(|_| ())
}

/// Finds the faults tantivy reports without a position: a quote or parenthesis left open, a
/// parenthesis closed that was never opened. Returns the first, with its 1-based character
/// position. The parse itself stays tantivy's.
fn prescan(input: &str) -> Option<InterestsSyntaxError> {
    let mut open_quote: Option<usize> = None;
    let mut open_parens: Vec<usize> = Vec::new();
    for (pos, c) in input.chars().enumerate().map(|(i, c)| (i + 1, c)) {
        match c {
            '"' => {
                open_quote = if open_quote.is_some() {
                    None
                } else {
                    Some(pos)
                }
            }
            '(' if open_quote.is_none() => open_parens.push(pos),
            ')' if open_quote.is_none() && open_parens.pop().is_none() => {
                return Some(positioned(
                    input,
                    pos,
                    "this closing parenthesis `)` has no opening one",
                    "Remove it or add a `(` before it, e.g. (diffusion OR flow) \"protein folding\"",
                ));
            }
            _ => {}
        }
    }
    if let Some(pos) = open_quote {
        return Some(positioned(
            input,
            pos,
            "this quote \" is never closed",
            "Close the quote to search for the exact phrase, e.g. \"protein folding\"",
        ));
    }
    open_parens.first().map(|&pos| {
        positioned(
            input,
            pos,
            "this parenthesis `(` is never closed",
            "Close it with `)`, e.g. (diffusion OR flow) protein",
        )
    })
}

fn positioned(input: &str, pos: usize, problem: &str, hint: &str) -> InterestsSyntaxError {
    InterestsSyntaxError {
        input: input.to_string(),
        problem: format!("at character {pos}, {problem}"),
        hint: hint.to_string(),
        position: Some(pos),
    }
}

/// The 1-based character position where `needle` starts in `input`, ignoring case.
fn char_position(input: &str, needle: &str) -> Option<usize> {
    let lower = input.to_lowercase();
    let byte = lower.find(&needle.to_lowercase())?;
    Some(lower[..byte].chars().count() + 1)
}

fn explain_parse_error(input: &str, e: QueryParserError) -> InterestsSyntaxError {
    let (problem, hint, position) = match &e {
        QueryParserError::SyntaxError(detail) => (
            format!("the syntax is not valid ({detail})"),
            "Check that every quote \" and parenthesis is closed and that AND, OR and NOT stand \
             between two words, e.g. diffusion AND \"protein folding\"",
            None,
        ),
        QueryParserError::FieldDoesNotExist(field) => {
            let position = char_position(input, &format!("{field}:"));
            (
                format!("there is no field `{field}:`"),
                "The fields are title:, abstract:, author: and cat: (e.g. author:\"Yoshua Bengio\", \
                 cat:cs.LG); to search for a word with a colon, quote it",
                position,
            )
        }
        QueryParserError::AllButQueryForbidden => (
            "it only excludes words".to_string(),
            "Say what you want as well, e.g. diffusion -video",
            None,
        ),
        QueryParserError::NoDefaultFieldDeclared => (
            "no default field".to_string(),
            "This is a bug in paperboy; please report it",
            None,
        ),
        other => (
            other.to_string(),
            "Use plain words and \"quoted phrases\", e.g. diffusion \"protein folding\"",
            None,
        ),
    };
    InterestsSyntaxError {
        input: input.to_string(),
        problem: match position {
            Some(p) => format!("at character {p}, {problem}"),
            None => problem,
        },
        hint: hint.to_string(),
        position,
    }
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
        let from = by_term.partition_point(|&(t, _)| t < term);
        hits.extend(
            by_term[from..]
                .iter()
                .take_while(|&&(t, _)| t == term)
                .map(|&(_, i)| i),
        );
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

/// English function words. Tantivy highlights every query term, including the "in" of the
/// phrase "in-context" wherever it occurs; naming "in" as a reason would be noise.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "into",
    "is", "it", "its", "of", "on", "or", "our", "that", "the", "their", "this", "to", "via", "was",
    "we", "were", "which", "with",
];

fn is_stop_word(word: &str) -> bool {
    // Called for every highlighted word of every pick: compare without allocating.
    STOP_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
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

/// The abstract's best-matching passage and the words to highlight in it; `None` when no
/// query word is in the abstract (the title matched).
fn snippet_span(
    text: &str,
    mut starts: impl Iterator<Item = usize>,
    generator: &SnippetGenerator,
) -> Option<SnippetSpan> {
    let snippet = generator.snippet(text);
    let fragment = snippet.fragment();
    if fragment.is_empty() {
        return None;
    }
    // Tantivy hands the passage back as a copy: find where it is. A fragment starts at the
    // text's start or at a word (`starts`); `str::find` with a 300-byte needle cost more than
    // the snippet itself. (Were the passage in the abstract twice, either place shows the
    // same words.)
    let at = starts.find(|&at| text[at..].starts_with(fragment))?;
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
    let offset = |n: usize| (at + n) as u32;
    Some(SnippetSpan {
        len: text.len() as u32,
        cut: [offset(0), offset(fragment.len())],
        marks: runs
            .iter()
            .map(|r| [offset(r.start), offset(r.end)])
            .collect(),
    })
}

/// The snippet a span describes, as plain and highlighted parts, with an ellipsis where it
/// starts or ends inside the abstract; `None` when the span does not fit `text`.
fn fragments_in(text: &str, span: &SnippetSpan) -> Option<Vec<Fragment>> {
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
fn opening(text: &str) -> Vec<Fragment> {
    vec![Fragment {
        text: trim_to_chars(text, SNIPPET_CHARS),
        highlighted: false,
    }]
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
            arxiv: Default::default(),
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

    /// Real abstracts: the Hugging Face daily papers fixture.
    fn fixture_papers() -> Vec<Paper> {
        let raw = include_str!("../tests/fixtures/hf/daily_papers_2024-10-25.json");
        let items: Vec<serde_json::Value> = serde_json::from_str(raw).unwrap();
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                paper(
                    &format!("2410.{:05}", 19000 + i),
                    item["paper"]["title"].as_str().unwrap(),
                    item["paper"]["summary"].as_str().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn sparse_replay_gives_the_same_snippets() {
        let papers = fixture_papers();
        assert!(
            papers.len() >= 10,
            "the fixture has {} papers",
            papers.len()
        );
        let idx = CandidateIndex::build(&papers).unwrap();
        let mut compared = 0;
        let mut highlighted = 0;
        for (k, p) in papers.iter().enumerate() {
            // Queries of words from this abstract (near its start, middle and end) and from
            // the next paper's, so some fragments score and some do not.
            let words: Vec<&str> = p
                .abstract_text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 3)
                .collect();
            let other: Vec<&str> = papers[(k + 1) % papers.len()]
                .abstract_text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 5)
                .collect();
            let n = words.len();
            for query in [
                format!("{} {}", words[n / 2], other[0]),
                format!("{} {} {}", words[1], words[n - 2], other[other.len() / 2]),
                format!("\"{} {}\" {}", words[n / 3], words[n / 3 + 1], words[n - 1]),
                other[1].to_string(),
            ] {
                let q = idx.parse_interests(&query).unwrap();
                let (field, weights, ids) = idx.snippet_terms(q.as_ref()).unwrap();
                let sparse = SnippetGenerator::new(
                    weights.clone(),
                    TextAnalyzer::from(Remembered {
                        only: Some(ids.into()),
                        ..idx.remembered.clone()
                    }),
                    field,
                    SNIPPET_CHARS,
                );
                // What tantivy does on its own: analyse the whole abstract again.
                let full = SnippetGenerator::new(weights, english_analyzer(), field, SNIPPET_CHARS);
                let text = &idx.papers[k].abstract_text;
                let (a, b) = (sparse.snippet(text), full.snippet(text));
                assert_eq!(a.fragment(), b.fragment(), "query {query:?} on paper {k}");
                assert_eq!(
                    a.highlighted(),
                    b.highlighted(),
                    "query {query:?} on paper {k}"
                );
                compared += 1;
                highlighted += usize::from(!b.highlighted().is_empty());
            }
        }
        // The comparison means something only if most snippets highlight words.
        assert!(highlighted * 2 > compared, "{highlighted} of {compared}");
    }

    #[test]
    fn stored_explanations_give_back_the_same_snippets() {
        let papers = fixture_papers();
        let idx = CandidateIndex::build(&papers).unwrap();
        let mut spans = 0;
        for query in [
            "attention",
            "\"language models\" reasoning",
            "diffusion OR video",
            "title:agent",
        ] {
            let q = idx.parse_interests(query).unwrap();
            for pick in idx.rank(&*q, |_| true, 10, 0.0).unwrap() {
                let e = &pick.explanation;
                let abstract_text = &papers[pick.index].abstract_text;
                let json = e.to_stored_json();
                let back = Explanation::from_stored_json(&json, abstract_text);
                assert_eq!(&back, e, "{query:?}: {json}");
                if e.span.is_some() {
                    spans += 1;
                    assert!(e.snippet.iter().any(|f| f.highlighted), "{e:?}");
                    // The passage's text is not stored, only where it is.
                    let passage = e
                        .snippet
                        .iter()
                        .find(|f| !f.highlighted && f.text.len() > 20);
                    if let Some(p) = passage {
                        assert!(!json.contains(p.text.trim()), "{json}");
                    }
                }
            }
        }
        assert!(spans >= 5, "{spans} snippets with spans");
    }

    #[test]
    fn stored_explanations_survive_a_changed_abstract_and_old_rows() {
        let papers = fixture_papers();
        let idx = CandidateIndex::build(&papers).unwrap();
        let q = idx.parse_interests("attention").unwrap();
        let pick = idx.rank(&*q, |_| true, 1, 0.0).unwrap().remove(0);
        let json = pick.explanation.to_stored_json();
        // A new version of the abstract: the opening, unhighlighted, and the reasons kept.
        let changed = format!("{} Revised.", papers[pick.index].abstract_text);
        let e = Explanation::from_stored_json(&json, &changed);
        assert_eq!(e.reasons, pick.explanation.reasons);
        assert_eq!(e.snippet.len(), 1);
        assert!(!e.snippet[0].highlighted);
        assert_eq!(e.span, None, "no span for a snippet it does not describe");
        assert!(changed.starts_with(e.snippet[0].text.trim_end_matches(" …")));
        // A row planned before spans existed keeps its snippet text.
        let old =
            r#"{"matched":["x"],"reasons":["r"],"snippet":[{"text":"kept","highlighted":true}]}"#;
        let e = Explanation::from_stored_json(old, "anything");
        assert_eq!(e.snippet[0].text, "kept");
        assert!(e.snippet[0].highlighted);
        // Unreadable JSON: the opening, no reasons, no panic.
        let e = Explanation::from_stored_json("not json", "An abstract.");
        assert!(e.reasons.is_empty());
        assert_eq!(e.snippet[0].text, "An abstract.");
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
