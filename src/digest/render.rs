//! Renders a [`DigestView`] into the subject, plain-text part and HTML part of the digest email.
//!
//! The templates and stylesheet are compiled into the binary, so a deployed daemon needs no
//! template directory. This module decides what the email says and looks like; it does not
//! build MIME messages or headers (that is `mail`), and it never puts subscriber text in the
//! subject, which is the one part of its output that becomes a header.

use serde::Serialize;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use super::format::{
    abstract_label, collapse_whitespace, count_phrase, safe_url, shorten_authors, snippet_plain,
    tidy_snippet, wrap,
};
use super::{DigestPaper, DigestView, SnippetPart};

const HTML_TEMPLATE: &str = "email/digest.html";
const TEXT_TEMPLATE: &str = "email/digest.txt";
/// The HTML page before and after the cards, which [`DigestRenderer::render`] puts in between.
const PAGE_HEAD_TEMPLATE: &str = "email/digest-head.html";
const PAGE_FOOT_TEMPLATE: &str = "email/digest-foot.html";
/// One paper's card, cut out of the HTML template between [`CARD_START`] and [`CARD_END`].
const CARD_TEMPLATE: &str = "email/digest-card.html";
const CARD_START: &str = "<!--paper-->";
const CARD_END: &str = "<!--/paper-->";
/// The page template's loop around the card; the head and foot templates each keep their half
/// of it, so that tera trims the white space around the cards exactly as in the whole page.
const CARDS_LOOP_START: &str = "{%- for paper in papers %}";
const CARDS_LOOP_END: &str = "{%- endfor %}";
/// Stand in for what differs between subscribers while a card is rendered for the cache. Our
/// own text never contains NUL; a card whose paper text does is rendered without the cache.
const RANK_MARK: &str = "\u{0}rank\u{0}";
const SNIPPET_MARK: &str = "\u{0}snippet\u{0}";
const WHY_MARK: &str = "\u{0}why\u{0}";
const MORE_MARK: &str = "\u{0}more-like-this\u{0}";
const LESS_MARK: &str = "\u{0}less-like-this\u{0}";
/// Cards kept at most: a day's papers times the few ways a card can be laid out (with or
/// without snippet, reasons, feedback links). When full the cache starts afresh, which costs one
/// render per card and bounds memory (~5 KB a card).
const CARD_CACHE_MAX: usize = 8192;
/// Ranks whose text blocks a cached card keeps; digests seldom hold more papers.
const TEXT_RANKS_KEPT: usize = 16;
const STYLESHEET: &str = include_str!("../../templates/email/style.css");

/// Prose in the text part wraps here: comfortable to read and short enough that no client
/// rewraps it into ragged lines.
const TEXT_WIDTH: usize = 72;

/// How many titles the hidden inbox preview line lists.
const PREHEADER_TITLES: usize = 3;

/// Why a digest could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A bug in the embedded templates or in the data given to them.
    #[error("rendering the email template `{template}` failed: {detail}")]
    Template {
        template: &'static str,
        detail: String,
    },
    #[error("inlining the email stylesheet failed: {0}")]
    Css(#[from] css_inline::InlineError),
    /// One of our own links is unusable; sending the email anyway would leave the subscriber
    /// without a working way to manage or leave the subscription.
    #[error(
        "the {field} link `{url}` is not an absolute http(s) URL; check that web.base_url is set \
         to something like https://papers.example.org"
    )]
    BadLink { field: &'static str, url: String },
}

impl RenderError {
    fn template(template: &'static str, err: tera::Error) -> Self {
        // tera nests the useful part ("variable `x` not found") several sources deep.
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        RenderError::Template { template, detail }
    }
}

/// The three parts of a digest email.
#[derive(Debug, Clone)]
pub struct RenderedDigest {
    /// Date and count only: safe to put in a header.
    pub subject: String,
    pub text: String,
    /// A complete HTML document with its CSS inlined.
    pub html: String,
}

/// Renders digests. Build it once and share it: it holds the parsed templates and the cache of
/// rendered paper cards.
///
/// Why a card cache: one day's papers appear in thousands of digests, and a card (title,
/// authors, snippet, links, reasons, all with inlined styles) is most of a digest's HTML. But
/// each subscriber sees a paper at their own rank, with their own highlights in the snippet,
/// their own reasons and their own signed feedback links, so a card is cached with stand-ins
/// for those five parts and every digest splices its own (escaped) values in. The snippet's
/// markup around a highlight is learnt from the card template once, in [`Self::new`]. What is
/// cached is keyed by the paper and by which of the optional parts (snippet, reasons, feedback)
/// the card shows, since the template leaves out the markup of an absent part.
///
/// The page around the cards is rendered through tera per digest, in two halves, and the text
/// part through its own template. [`Self::render_reference`] renders the whole page through
/// tera, as before the cache; tests hold the two to the same bytes.
pub struct DigestRenderer {
    tera: tera::Tera,
    /// The markup tera puts around a highlighted snippet run (the inlined `<mark>`).
    highlight: Highlight,
    /// Keyed by a hash of the paper's id and title; each entry keeps its full key to compare.
    cards: Mutex<CardCache>,
}

#[derive(Default)]
struct CardCache {
    by_hash: HashMap<u64, Vec<Arc<CachedCard>>>,
    len: usize,
}

impl std::fmt::Debug for DigestRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestRenderer").finish_non_exhaustive()
    }
}

impl DigestRenderer {
    pub fn new() -> Result<Self, RenderError> {
        let mut tera = tera::Tera::default();
        // Autoescape goes by template-name suffix: on for the HTML part, off for the text part,
        // where escaping would show "&amp;" to the reader.
        tera.autoescape_on(vec![".html"]);
        tera.set_escape_fn(escape_html);

        // The stylesheet is inlined onto the elements because several webmail clients ignore or
        // rewrite <style>. The template's own <style> block (media queries: dark mode, narrow
        // screens, which cannot be inlined) is kept as it is. Nothing is fetched while rendering.
        //
        // It is inlined once, into the template, not into every rendered digest: the stylesheet
        // uses only class and element selectors, so every element a digest can contain already
        // stands in the template with its classes, and the result is the same. Inlining each
        // message re-parsed a ~50 KB page per recipient and was most of the send path's CPU.
        let inliner = css_inline::CSSInliner::options()
            .extra_css(Some(std::borrow::Cow::Borrowed(STYLESHEET)))
            .keep_style_tags(true)
            .load_remote_stylesheets(false)
            .build();
        let inlined = inliner.inline(&without_template_comments(include_str!(
            "../../templates/email/digest.html.tera"
        )))?;
        let inlined = styles_on_their_own_lines(&inlined);
        let (before, card, after) = split_card(&inlined)?;
        if !before.trim_end().ends_with(CARDS_LOOP_START)
            || !after.trim_start().starts_with(CARDS_LOOP_END)
        {
            return Err(RenderError::Template {
                template: HTML_TEMPLATE,
                detail: format!(
                    "the card must be all of the loop's body: \
                     {CARDS_LOOP_START}{CARD_START} … {CARD_END}{CARDS_LOOP_END}"
                ),
            });
        }
        let templates = [
            (HTML_TEMPLATE, format!("{before}{card}{after}")),
            (PAGE_HEAD_TEMPLATE, format!("{before}{CARDS_LOOP_END}")),
            (PAGE_FOOT_TEMPLATE, format!("{CARDS_LOOP_START}{after}")),
            (CARD_TEMPLATE, card.to_string()),
        ];
        for (name, source) in templates {
            tera.add_raw_template(name, &source)
                .map_err(|e| RenderError::template(name, e))?;
        }
        tera.add_raw_template(
            TEXT_TEMPLATE,
            include_str!("../../templates/email/digest.txt.tera"),
        )
        .map_err(|e| RenderError::template(TEXT_TEMPLATE, e))?;

        let mut renderer = DigestRenderer {
            tera,
            highlight: Highlight::default(),
            cards: Mutex::new(CardCache::default()),
        };
        renderer.highlight = renderer.learn_highlight()?;
        Ok(renderer)
    }

    /// Renders a digest from cached cards (see the type's documentation).
    pub fn render(&self, view: &DigestView) -> Result<RenderedDigest, RenderError> {
        let mut cards_html = String::with_capacity(view.papers.len() * 6 * 1024);
        let mut text_cards = Vec::with_capacity(view.papers.len());
        let mut titles = Vec::with_capacity(PREHEADER_TITLES);
        for paper in &view.papers {
            let mine = Subscriber::of(paper);
            let cached = self.card(paper, &mine)?;
            match &cached.html {
                CardHtml::Spliced { html, slots } => {
                    let mut from = 0;
                    for &(at, slot) in slots {
                        cards_html.push_str(&html[from..at]);
                        mine.push_slot(slot, &self.highlight, &mut cards_html);
                        from = at;
                    }
                    cards_html.push_str(&html[from..]);
                }
                CardHtml::Uncacheable => {
                    let card = PaperCard::new(cached.parts.clone(), mine.clone(), String::new());
                    cards_html.push_str(&self.render_card(&card)?);
                }
            }
            if titles.len() < PREHEADER_TITLES {
                titles.push(cached.parts.title.clone());
            }
            let computed;
            let fixed = match (mine.rank as usize)
                .checked_sub(1)
                .and_then(|i| cached.text.get(i))
            {
                Some(once) => once.get_or_init(|| PaperTextFixed::new(&cached.parts, mine.rank)),
                None => {
                    computed = PaperTextFixed::new(&cached.parts, mine.rank);
                    &computed
                }
            };
            text_cards.push(TextPaper {
                text: paper_text(fixed, mine.rank, &mine.snippet, &mine.why),
                more_url: mine.more_url,
                less_url: mine.less_url,
            });
        }
        let page = Page::new(view, Vec::<()>::new(), view.papers.len(), &titles)?;
        let mut context = tera::Context::from_serialize(&page)
            .map_err(|e| RenderError::template(PAGE_HEAD_TEMPLATE, e))?;
        let head = self.render_template(PAGE_HEAD_TEMPLATE, &context)?;
        let foot = self.render_template(PAGE_FOOT_TEMPLATE, &context)?;
        let mut html = String::with_capacity(head.len() + cards_html.len() + foot.len());
        for piece in [&head, &cards_html, &foot] {
            html.push_str(piece);
        }
        context.insert("papers", &text_cards);
        let text = self.render_template(TEXT_TEMPLATE, &context)?;
        Ok(RenderedDigest {
            subject: page.subject,
            text: tidy_text(&text),
            html,
        })
    }

    /// Renders the whole page through tera, card by card, with no cache: what [`Self::render`]
    /// must match byte for byte, and the baseline of `examples/render_bench.rs`.
    pub fn render_reference(&self, view: &DigestView) -> Result<RenderedDigest, RenderError> {
        let cards: Vec<PaperCard> = view
            .papers
            .iter()
            .map(|p| {
                let (parts, mine) = (PaperParts::of(p), Subscriber::of(p));
                let fixed = PaperTextFixed::new(&parts, mine.rank);
                let text = paper_text(&fixed, mine.rank, &mine.snippet, &mine.why);
                PaperCard::new(parts, mine, text)
            })
            .collect();
        let titles: Vec<String> = cards
            .iter()
            .take(PREHEADER_TITLES)
            .map(|c| c.parts.title.clone())
            .collect();
        let page = Page::new(view, cards, view.papers.len(), &titles)?;
        let context = tera::Context::from_serialize(&page)
            .map_err(|e| RenderError::template(HTML_TEMPLATE, e))?;
        Ok(RenderedDigest {
            html: self.render_template(HTML_TEMPLATE, &context)?,
            text: tidy_text(&self.render_template(TEXT_TEMPLATE, &context)?),
            subject: page.subject,
        })
    }

    fn render_template(
        &self,
        template: &'static str,
        context: &tera::Context,
    ) -> Result<String, RenderError> {
        self.tera
            .render(template, context)
            .map_err(|e| RenderError::template(template, e))
    }

    fn render_card<C: Serialize>(&self, card: &C) -> Result<String, RenderError> {
        let mut context = tera::Context::new();
        context.insert("paper", card);
        self.render_template(CARD_TEMPLATE, &context)
    }

    /// The card for `paper` from the cache, rendered with stand-ins and stored first if need be.
    fn card(&self, paper: &DigestPaper, mine: &Subscriber) -> Result<Arc<CachedCard>, RenderError> {
        let shape = mine.shape();
        let hash = card_hash(paper, shape);
        {
            let cache = self.cards.lock().expect("card cache lock");
            if let Some(found) = cache
                .by_hash
                .get(&hash)
                .and_then(|v| v.iter().find(|c| c.key.matches(paper, shape)))
            {
                return Ok(found.clone());
            }
        }
        let parts = PaperParts::of(paper);
        let html = self.render_with_stand_ins(&parts, shape)?;
        let cached = Arc::new(CachedCard {
            key: CardKey::of(paper, shape),
            html,
            parts,
            text: Default::default(),
        });
        let mut cache = self.cards.lock().expect("card cache lock");
        if cache.len >= CARD_CACHE_MAX {
            *cache = CardCache::default();
        }
        cache.by_hash.entry(hash).or_default().push(cached.clone());
        cache.len += 1;
        Ok(cached)
    }

    /// Renders a card of `shape` with a stand-in for each per-subscriber part and cuts it there.
    fn render_with_stand_ins(
        &self,
        parts: &PaperParts,
        shape: Shape,
    ) -> Result<CardHtml, RenderError> {
        let stand_ins = Subscriber {
            rank: 0,
            snippet: if shape.snippet {
                vec![SnippetPart {
                    text: SNIPPET_MARK.to_string(),
                    highlighted: false,
                }]
            } else {
                Vec::new()
            },
            why: if shape.why {
                WHY_MARK.to_string()
            } else {
                String::new()
            },
            more_url: shape.feedback.then(|| MORE_MARK.to_string()),
            less_url: shape.feedback.then(|| LESS_MARK.to_string()),
        };
        let mut card = tera::to_value(PaperCard::new(parts.clone(), stand_ins, String::new()))
            .map_err(|e| RenderError::template(CARD_TEMPLATE, e.into()))?;
        // The rank is a number in the card; as a stand-in it has to be a string.
        card["rank"] = tera::Value::from(RANK_MARK);
        let rendered = self.render_card(&card)?;

        let expected: Vec<Slot> = Slot::ALL
            .into_iter()
            .filter(|s| match s {
                Slot::Rank => true,
                Slot::Snippet => shape.snippet,
                Slot::Why => shape.why,
                Slot::More | Slot::Less => shape.feedback,
            })
            .collect();
        // Any NUL beyond the stand-ins' own came from the paper's text, and might be read as a
        // stand-in: such a card is not cut at all.
        if rendered.matches('\u{0}').count() != 2 * expected.len() {
            return Ok(CardHtml::Uncacheable);
        }
        let mut found = Vec::with_capacity(expected.len());
        for slot in expected {
            match rendered.match_indices(slot.mark()).next() {
                Some((at, _)) => found.push((at, slot)),
                None => return Ok(CardHtml::Uncacheable),
            }
        }
        found.sort_unstable_by_key(|&(at, _)| at);
        let mut html = String::with_capacity(rendered.len());
        let mut slots = Vec::with_capacity(found.len());
        let mut from = 0;
        for (at, slot) in found {
            html.push_str(&rendered[from..at]);
            slots.push((html.len(), slot));
            from = at + slot.mark().len();
        }
        html.push_str(&rendered[from..]);
        Ok(CardHtml::Spliced { html, slots })
    }

    /// Learns what the card template puts around a highlighted snippet run, and checks that a
    /// snippet built from it is what tera renders; a template whose snippet markup is not of the
    /// assumed shape (plain runs as they are, highlighted ones wrapped, nothing in between) is
    /// refused here rather than rendering digests that differ from the reference.
    fn learn_highlight(&self) -> Result<Highlight, RenderError> {
        let probe = |snippet: &[(&str, bool)]| -> Result<String, RenderError> {
            let mine = Subscriber {
                rank: 1,
                snippet: runs(snippet),
                why: String::new(),
                more_url: None,
                less_url: None,
            };
            self.render_card(&PaperCard::new(PaperParts::default(), mine, String::new()))
        };
        let unexpected = |what: &str| RenderError::Template {
            template: CARD_TEMPLATE,
            detail: format!("the snippet's markup is not what the card cache assumes: {what}"),
        };
        let learnt = probe(&[
            ("\u{0}1\u{0}", false),
            ("\u{0}2\u{0}", true),
            ("\u{0}3\u{0}", false),
        ])?;
        let between = |a: &str, b: &str| -> Option<String> {
            let start = learnt.find(a)? + a.len();
            let end = start + learnt[start..].find(b)?;
            Some(learnt[start..end].to_string())
        };
        let highlight = Highlight {
            open: between("\u{0}1\u{0}", "\u{0}2\u{0}").ok_or_else(|| unexpected("no runs"))?,
            close: between("\u{0}2\u{0}", "\u{0}3\u{0}").ok_or_else(|| unexpected("no runs"))?,
        };

        let check: &[(&str, bool)] = &[
            ("<a & \"b\">", true),
            (" plain ", false),
            (" 'c' ", false),
            ("d", true),
            ("e", true),
        ];
        let whole = probe(check)?;
        let mut spliced = probe(&[(SNIPPET_MARK, false)])?;
        let mut snippet = String::new();
        push_snippet(&runs(check), &highlight, &mut snippet);
        spliced = spliced.replacen(SNIPPET_MARK, &snippet, 1);
        if whole != spliced {
            return Err(unexpected(&format!(
                "tera gives {whole:?}, splicing {spliced:?}"
            )));
        }
        Ok(highlight)
    }
}

fn runs(parts: &[(&str, bool)]) -> Vec<SnippetPart> {
    parts
        .iter()
        .map(|&(text, highlighted)| SnippetPart {
            text: text.to_string(),
            highlighted,
        })
        .collect()
}

/// The markup around one highlighted snippet run.
#[derive(Default)]
struct Highlight {
    open: String,
    close: String,
}

/// The snippet's HTML, as the card template renders it.
fn push_snippet(parts: &[SnippetPart], highlight: &Highlight, out: &mut String) {
    for part in parts {
        if part.highlighted {
            out.push_str(&highlight.open);
            push_escaped(&part.text, out);
            out.push_str(&highlight.close);
        } else {
            push_escaped(&part.text, out);
        }
    }
}

/// A per-subscriber part of a card, cut out of the cached HTML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Rank,
    Snippet,
    Why,
    More,
    Less,
}

impl Slot {
    const ALL: [Slot; 5] = [Slot::Rank, Slot::Snippet, Slot::Why, Slot::More, Slot::Less];

    fn mark(self) -> &'static str {
        match self {
            Slot::Rank => RANK_MARK,
            Slot::Snippet => SNIPPET_MARK,
            Slot::Why => WHY_MARK,
            Slot::More => MORE_MARK,
            Slot::Less => LESS_MARK,
        }
    }
}

/// Which optional parts a card shows: the template leaves out the markup of an absent one, so a
/// cached card is one of these layouts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    snippet: bool,
    why: bool,
    feedback: bool,
}

/// What one subscriber's card shows of a paper beyond the paper itself, tidied and vetted.
#[derive(Clone)]
struct Subscriber {
    rank: u32,
    snippet: Vec<SnippetPart>,
    /// The reasons, joined.
    why: String,
    /// Feedback links, http(s) only like every other link.
    more_url: Option<String>,
    less_url: Option<String>,
}

impl Subscriber {
    fn of(paper: &DigestPaper) -> Self {
        let reasons: Vec<String> = paper
            .reasons
            .iter()
            .map(|r| collapse_whitespace(r))
            .filter(|r| !r.is_empty())
            .collect();
        Subscriber {
            rank: paper.rank,
            snippet: tidy_snippet(&paper.snippet),
            why: reasons.join("; "),
            more_url: paper.more_url.as_deref().and_then(safe_url),
            less_url: paper.less_url.as_deref().and_then(safe_url),
        }
    }

    fn shape(&self) -> Shape {
        Shape {
            snippet: !self.snippet.is_empty(),
            why: !self.why.is_empty(),
            feedback: self.more_url.is_some() && self.less_url.is_some(),
        }
    }

    /// Appends what `slot` stands for, escaped as tera escapes it.
    fn push_slot(&self, slot: Slot, highlight: &Highlight, out: &mut String) {
        match slot {
            Slot::Rank => {
                use std::fmt::Write;
                let _ = write!(out, "{}", self.rank);
            }
            Slot::Snippet => push_snippet(&self.snippet, highlight, out),
            Slot::Why => push_escaped(&self.why, out),
            Slot::More => push_escaped(self.more_url.as_deref().unwrap_or_default(), out),
            Slot::Less => push_escaped(self.less_url.as_deref().unwrap_or_default(), out),
        }
    }
}

/// Cuts the inlined HTML template into the page before the card, the card, and the page after.
fn split_card(inlined: &str) -> Result<(&str, &str, &str), RenderError> {
    let missing = || RenderError::Template {
        template: HTML_TEMPLATE,
        detail: format!(
            "the template must mark one paper's card with {CARD_START} … {CARD_END}, once"
        ),
    };
    let (before, rest) = inlined.split_once(CARD_START).ok_or_else(missing)?;
    let (card, after) = rest.split_once(CARD_END).ok_or_else(missing)?;
    if after.contains(CARD_START) || after.contains(CARD_END) {
        return Err(missing());
    }
    Ok((before, card, after))
}

/// A card as the cache keeps it.
struct CachedCard {
    key: CardKey,
    html: CardHtml,
    /// Also what the text part and the inbox preview line show of the paper.
    parts: PaperParts,
    /// The text part's fixed blocks at ranks 1, 2, …, made when first needed.
    text: [OnceLock<PaperTextFixed>; TEXT_RANKS_KEPT],
}

enum CardHtml {
    /// The card without its per-subscriber parts; each slot goes in at its byte offset, in order.
    Spliced {
        html: String,
        slots: Vec<(usize, Slot)>,
    },
    /// The paper's own text contains a NUL: render this card whole every time.
    Uncacheable,
}

/// What a cached card depends on: the paper as given, and its shape. Owned, to compare on a hash
/// match.
#[derive(PartialEq)]
struct CardKey {
    id: String,
    title: String,
    authors: Vec<String>,
    upvotes: Option<i64>,
    urls: [Option<String>; 5],
    categories: Vec<String>,
    doi: Option<String>,
    journal_ref: Option<String>,
    shape: Shape,
}

impl CardKey {
    fn of(p: &DigestPaper, shape: Shape) -> Self {
        CardKey {
            id: p.id.clone(),
            title: p.title.clone(),
            authors: p.authors.clone(),
            upvotes: p.upvotes,
            urls: urls_of(p).map(|u| u.map(str::to_string)),
            categories: p.categories.clone(),
            doi: p.doi.clone(),
            journal_ref: p.journal_ref.clone(),
            shape,
        }
    }

    fn matches(&self, p: &DigestPaper, shape: Shape) -> bool {
        self.shape == shape
            && self.upvotes == p.upvotes
            && self.id == p.id
            && self.title == p.title
            && self.authors == p.authors
            && self.categories == p.categories
            && self.doi == p.doi
            && self.journal_ref == p.journal_ref
            && self
                .urls
                .iter()
                .zip(urls_of(p))
                .all(|(a, b)| a.as_deref() == b)
    }
}

fn urls_of(p: &DigestPaper) -> [Option<&str>; 5] {
    [
        p.abstract_url.as_deref(),
        p.pdf_url.as_deref(),
        p.hf_url.as_deref(),
        p.code_url.as_deref(),
        p.project_url.as_deref(),
    ]
}

/// Id and title tell a day's papers apart; the rest of the key is compared on a match, which is
/// cheaper than hashing it for every card of every digest.
fn card_hash(p: &DigestPaper, shape: Shape) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&p.id, &p.title, shape).hash(&mut h);
    h.finish()
}

/// Subject line: the date and how many papers, never anything the subscriber or a source wrote.
fn subject(view: &DigestView) -> String {
    format!(
        "Your papers for {}: {}",
        view.date.format("%a %-d %b %Y"),
        count_phrase(view.papers.len())
    )
}

/// Template whitespace is hard to get exactly right with loops and conditionals; rather than
/// contort the template, drop trailing spaces and squeeze runs of blank lines afterwards.
fn tidy_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What the templates see: everything already shortened, wrapped and with URLs vetted, so the
/// templates only lay out and escape.
#[derive(Serialize)]
struct Page<C> {
    subject: String,
    date_long: String,
    lede: String,
    preheader: String,
    recipient: String,
    interests: String,
    manage_url: String,
    unsubscribe_url: String,
    view_url: Option<String>,
    site_url: String,
    papers: Vec<C>,
    text_heading: String,
    text_footer: String,
}

/// A paper's card as the card template sees it: the paper's own parts and this subscriber's.
#[derive(Serialize)]
struct PaperCard {
    rank: u32,
    #[serde(flatten)]
    parts: PaperParts,
    snippet: Vec<SnippetPart>,
    why: String,
    /// The plain-text part's rendering of the same paper, wrapped and indented.
    text: String,
    more_url: Option<String>,
    less_url: Option<String>,
}

/// A paper as the text template sees it in [`DigestRenderer::render`].
#[derive(Serialize)]
struct TextPaper {
    text: String,
    more_url: Option<String>,
    less_url: Option<String>,
}

#[derive(Serialize, Clone)]
struct Link {
    label: &'static str,
    url: String,
}

impl<C> Page<C> {
    /// The page around `papers`, which may be left empty when the cards are put in by hand:
    /// `count` papers, the first of them titled `titles` (for the inbox preview line).
    fn new(
        view: &DigestView,
        papers: Vec<C>,
        count: usize,
        titles: &[String],
    ) -> Result<Self, RenderError> {
        let own_link = |field: &'static str, url: &str| {
            safe_url(url).ok_or_else(|| RenderError::BadLink {
                field,
                url: url.to_string(),
            })
        };
        let manage_url = own_link("manage", &view.manage_url)?;
        let unsubscribe_url = own_link("unsubscribe", &view.unsubscribe_url)?;
        let view_url = view
            .view_url
            .as_deref()
            .map(|u| own_link("view in browser", u))
            .transpose()?;
        let site_url = own_link("site", &view.site_url)?;

        let interests = collapse_whitespace(&view.interests);
        let recipient = collapse_whitespace(&view.recipient);
        let subject = subject(view);
        let lede = match count {
            0 => "No new papers matched your interests this time.".to_string(),
            n => {
                let mut phrase = count_phrase(n);
                phrase[..1].make_ascii_uppercase();
                format!("{phrase} matched your interests, best first.")
            }
        };
        let preheader = titles[..titles.len().min(PREHEADER_TITLES)].join(" · ");

        let mut text_footer = wrap(
            &format!("You get this because {recipient} subscribed to papers about: {interests}"),
            TEXT_WIDTH,
            "",
            "",
        );
        text_footer.push_str("\n\nManage your subscription:\n");
        text_footer.push_str(&manage_url);
        text_footer.push_str("\n\nUnsubscribe:\n");
        text_footer.push_str(&unsubscribe_url);
        if let Some(url) = &view_url {
            text_footer.push_str("\n\nRead this digest in your browser:\n");
            text_footer.push_str(url);
        }

        Ok(Page {
            text_heading: format!("{subject}\n{}", "=".repeat(subject.chars().count())),
            subject,
            date_long: view.date.format("%A %-d %B %Y").to_string(),
            lede,
            preheader,
            recipient,
            interests,
            manage_url,
            unsubscribe_url,
            view_url,
            site_url,
            papers,
            text_footer,
        })
    }
}

/// What a card shows that depends on the paper alone, tidied and with URLs vetted.
#[derive(Clone, Default, Serialize)]
struct PaperParts {
    id: String,
    title: String,
    title_url: Option<String>,
    authors: String,
    upvotes: Option<String>,
    /// arXiv categories, primary first, joined: `cs.LG, cs.CL`.
    categories: String,
    /// Where the paper was published (arXiv's journal reference), tidied; empty when unknown.
    journal_ref: String,
    links: Vec<Link>,
}

impl PaperParts {
    fn of(paper: &DigestPaper) -> Self {
        let abstract_url = paper.abstract_url.as_deref().and_then(safe_url);
        let hf_url = paper.hf_url.as_deref().and_then(safe_url);
        let mut links = Vec::new();
        if let Some(url) = &abstract_url {
            links.push(Link {
                label: abstract_label(url),
                url: url.clone(),
            });
        }
        let others = [
            ("PDF", &paper.pdf_url),
            ("Hugging Face", &hf_url),
            ("Code", &paper.code_url),
            ("Project", &paper.project_url),
        ];
        for (label, url) in others {
            if let Some(url) = url.as_deref().and_then(safe_url) {
                links.push(Link { label, url });
            }
        }
        // A DOI is a name, not a URL: the resolver turns it into one. A DOI with white space
        // or no `10.` prefix is not one and gets no link.
        if let Some(doi) = paper.doi.as_deref().map(str::trim)
            && doi.starts_with("10.")
            && !doi.contains(char::is_whitespace)
            && let Some(url) = safe_url(&format!("https://doi.org/{doi}"))
        {
            links.push(Link { label: "DOI", url });
        }

        PaperParts {
            id: collapse_whitespace(&paper.id),
            title: collapse_whitespace(&paper.title),
            title_url: abstract_url.or(hf_url),
            authors: shorten_authors(&paper.authors),
            upvotes: paper.upvotes.map(|n| format!("▲ {n}")),
            categories: shorten_categories(&paper.categories),
            journal_ref: paper
                .journal_ref
                .as_deref()
                .map(collapse_whitespace)
                .unwrap_or_default(),
            links,
        }
    }
}

impl PaperCard {
    fn new(parts: PaperParts, mine: Subscriber, text: String) -> Self {
        PaperCard {
            rank: mine.rank,
            parts,
            snippet: mine.snippet,
            why: mine.why,
            text,
            more_url: mine.more_url,
            less_url: mine.less_url,
        }
    }
}

/// At most this many categories are named; the rest are counted.
const CATEGORIES_SHOWN: usize = 4;

/// `cs.LG, cs.CL, stat.ML`, primary first; `+2` for the ones past [`CATEGORIES_SHOWN`].
fn shorten_categories(categories: &[String]) -> String {
    let names: Vec<String> = categories
        .iter()
        .map(|c| collapse_whitespace(c))
        .filter(|c| !c.is_empty())
        .collect();
    let mut out = names
        .iter()
        .take(CATEGORIES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > CATEGORIES_SHOWN {
        out.push_str(&format!(" +{}", names.len() - CATEGORIES_SHOWN));
    }
    out
}

/// One paper in the plain-text part:
///
/// ```text
/// 1. Title, wrapped with a hanging indent
///    Authors · cs.LG, cs.CL · ▲ 42
///    Journal: Science & Education 23(9)
///
///    The snippet, with *matched words* marked.
///
///    Why: matches: diffusion
///    arXiv:        https://arxiv.org/abs/…
///    Hugging Face: https://huggingface.co/papers/…
/// ```
fn paper_text(fixed: &PaperTextFixed, rank: u32, snippet: &[SnippetPart], why: &str) -> String {
    let indent = indent(rank);
    let mut out = String::with_capacity(fixed.head.len() + fixed.links.len() + 512);
    out.push_str(&fixed.head);

    let snippet = snippet_plain(snippet);
    if !snippet.is_empty() {
        out.push_str("\n\n");
        out.push_str(&wrap(&snippet, TEXT_WIDTH, indent, indent));
    }

    if !why.is_empty() || !fixed.links.is_empty() {
        out.push_str("\n\n");
    }
    if !why.is_empty() {
        let rest = &SPACES[..indent.len() + "Why: ".len()];
        out.push_str(&wrap(&format!("Why: {why}"), TEXT_WIDTH, indent, rest));
        if !fixed.links.is_empty() {
            out.push('\n');
        }
    }
    out.push_str(&fixed.links);
    out
}

/// The blocks of [`paper_text`] that depend only on the paper and its rank (the rank's width
/// sets the indent), kept with a cached card: most of a paper's text is the same in every
/// digest that shows it at the same rank.
struct PaperTextFixed {
    /// Title, byline and journal reference.
    head: String,
    /// One line per link, or nothing.
    links: String,
}

impl PaperTextFixed {
    fn new(parts: &PaperParts, rank: u32) -> Self {
        let number = format!("{rank}. ");
        let indent = indent(rank);
        let mut head = wrap(&parts.title, TEXT_WIDTH, &number, indent);
        let byline = [
            parts.authors.as_str(),
            parts.categories.as_str(),
            parts.upvotes.as_deref().unwrap_or(""),
        ]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
        if !byline.is_empty() {
            head.push('\n');
            head.push_str(&wrap(&byline, TEXT_WIDTH, indent, indent));
        }
        if !parts.journal_ref.is_empty() {
            let rest = &SPACES[..indent.len() + "Journal: ".len()];
            head.push('\n');
            head.push_str(&wrap(
                &format!("Journal: {}", parts.journal_ref),
                TEXT_WIDTH,
                indent,
                rest,
            ));
        }
        // URLs are never wrapped: one per line, labels padded so the URLs line up.
        let label_width = parts
            .links
            .iter()
            .map(|l| l.label.len() + 1)
            .max()
            .unwrap_or(0);
        let links = parts
            .links
            .iter()
            .map(|l| {
                let label = format!("{}:", l.label);
                format!("{indent}{label:<label_width$} {}", l.url)
            })
            .collect::<Vec<_>>()
            .join("\n");
        PaperTextFixed { head, links }
    }
}

/// Enough for the widest indent: a 10-digit rank, ". ", and "Journal: ".
const SPACES: &str = "                         ";

/// The hanging indent under `1. `: as wide as the rank and its dot and space.
fn indent(rank: u32) -> &'static str {
    let digits = rank.checked_ilog10().unwrap_or(0) as usize + 1;
    &SPACES[..digits + 2]
}

/// Escapes text for HTML element content and quoted attribute values. Tera's own escaper also
/// turns every `/` into `&#x2F;`, which is valid but makes every URL in the email unreadable to
/// a person or a filter looking at the source; `/` needs no escaping in either place.
fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    push_escaped(input, &mut out);
    out
}

/// [`escape_html`] onto the end of `out`. It copies the runs between the five characters in one
/// go: most text has none of them.
fn push_escaped(input: &str, out: &mut String) {
    let mut from = 0;
    for (i, b) in input.bytes().enumerate() {
        let escaped = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        // The five are ASCII, so `i` is always a character boundary.
        out.push_str(&input[from..i]);
        out.push_str(escaped);
        from = i + 1;
    }
    out.push_str(&input[from..]);
}

/// The inlined template with a line break before each `style` attribute (inside the tag, where
/// a line break is the same white space as the blank it replaces).
///
/// Why: inlining made the row of a paper's links one line of about 1,300 characters, and SMTP
/// lines stop at 998; lettre then sent the whole HTML part as quoted-printable, whose encoding
/// was 7 % of the send path's CPU. With the styles on their own lines every line of a digest
/// fits, and the HTML goes as 8bit (`mail::message::eight_bit`).
fn styles_on_their_own_lines(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 50);
    let (mut in_tag, mut quote) = (false, None::<char>);
    for (i, c) in html.char_indices() {
        match (in_tag, quote, c) {
            (false, _, '<') => in_tag = true,
            (true, None, '>') => in_tag = false,
            (true, None, '"' | '\'') => quote = Some(c),
            (true, Some(q), _) if c == q => quote = None,
            (true, None, ' ') if html[i + 1..].starts_with("style=") => {
                out.push('\n');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The template without its `{# … #}` comments, which render to nothing anyway: the CSS inliner
/// parses the template as HTML, and a comment before `<!DOCTYPE>` would be read as body text.
fn without_template_comments(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{#") {
        out.push_str(&rest[..start]);
        match rest[start..].find("#}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.trim_start().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn part(text: &str, highlighted: bool) -> SnippetPart {
        SnippetPart {
            text: text.to_string(),
            highlighted,
        }
    }

    fn paper(rank: u32, id: &str, title: &str) -> DigestPaper {
        DigestPaper {
            rank,
            id: id.to_string(),
            title: title.to_string(),
            authors: vec!["Ada Lovelace".to_string(), "Alan Turing".to_string()],
            snippet: vec![
                part("We train ", false),
                part("diffusion", true),
                part(" models on large corpora.", false),
            ],
            upvotes: Some(42),
            categories: vec!["cs.LG".to_string(), "stat.ML".to_string()],
            doi: None,
            journal_ref: None,
            abstract_url: Some(format!("https://arxiv.org/abs/{id}")),
            pdf_url: Some(format!("https://arxiv.org/pdf/{id}")),
            hf_url: Some(format!("https://huggingface.co/papers/{id}")),
            code_url: None,
            project_url: None,
            reasons: vec!["matches: diffusion".to_string()],
            score: 1.0,
            more_url: None,
            less_url: None,
        }
    }

    const MANAGE: &str = "https://papers.example.org/manage/eyJzIjo0Mn0.c2lnbmF0dXJlLW1hbmFnZQ";
    const UNSUB: &str = "https://papers.example.org/unsubscribe/eyJzIjo0Mn0.c2lnbmF0dXJlLXVuc3Vi";

    /// Three papers, with hostile text wherever a source or a subscriber controls it.
    fn hostile_view() -> DigestView {
        let mut first = paper(1, "2410.00001", "<script>alert(1)</script>");
        first.code_url = Some("javascript:alert('code')".to_string());
        first.project_url = Some("https://project.example.org/p?a=1&b=2".to_string());
        first.authors = vec!["Smith & Wesson".to_string(), "O'Brien".to_string()];
        first.reasons = vec!["matches: <b>diffusion</b>".to_string()];
        first.doi = Some("10.1007/978-3-540-75826-6_11".to_string());
        first.journal_ref = Some("Chaos <i>in</i> Astronomy\n  & Space Science 2009".to_string());
        first.categories = ["astro-ph.GA", "<b>cs.LG</b>", "a", "b", "c", "d"]
            .map(String::from)
            .to_vec();

        let mut second = paper(2, "2410.00002", "Protein folding with diffusion");
        second.authors = (1..=15).map(|i| format!("Author {i}")).collect();
        second.snippet = vec![
            part("Folding ", false),
            part("proteins", true),
            part(" is hard; ", false),
            part("diffusion", true),
            part(" helps.", false),
        ];
        second.upvotes = None;

        let mut third = paper(3, "2410.00003", "A third paper about sampling");
        third.abstract_url = None;
        third.snippet = vec![part("<img src=x onerror=alert(2)> sampling", false)];

        DigestView {
            date: NaiveDate::from_ymd_opt(2024, 10, 25).unwrap(),
            recipient: "reader@example.org".to_string(),
            interests: "\"><img src=x onerror=alert(1)>".to_string(),
            papers: vec![first, second, third],
            manage_url: MANAGE.to_string(),
            unsubscribe_url: UNSUB.to_string(),
            view_url: Some("https://papers.example.org/digest/eyJkIjoxfQ.dmlldw".to_string()),
            site_url: "https://papers.example.org".to_string(),
        }
    }

    fn render(view: &DigestView) -> RenderedDigest {
        DigestRenderer::new().unwrap().render(view).unwrap()
    }

    fn with_feedback(mut view: DigestView, subscriber: u32) -> DigestView {
        for p in &mut view.papers {
            let url = format!(
                "https://papers.example.org/feedback/s{subscriber}p{}&x",
                p.rank
            );
            p.more_url = Some(format!("{url}?vote=more"));
            p.less_url = Some(format!("{url}?vote=less"));
        }
        view
    }

    #[test]
    fn every_html_line_fits_in_an_smtp_line() {
        // Five links and feedback links on every paper: the longest rows a digest has.
        let mut view = with_feedback(hostile_view(), 7);
        for p in &mut view.papers {
            p.code_url = Some(format!("https://github.com/example/{}", p.id));
            p.project_url = Some(format!("https://project.example.org/{}", p.id));
            p.abstract_url = Some(format!("https://arxiv.org/abs/{}", p.id));
        }
        let digest = render(&view);
        let longest = digest.html.lines().map(str::len).max().unwrap();
        assert!(longest <= 998, "a line of {longest} bytes");
        assert!(
            digest.html.contains("\nstyle=\""),
            "styles start their own lines"
        );
        // Only tags were touched: the text between them is what the template makes.
        assert!(digest.html.contains(">More like this</a>"));
    }

    #[test]
    fn line_breaks_go_inside_tags_only() {
        let html = r#"<p class="a" style="x: 1">a style="not an attribute" <b title='q style="z"' style="y">b</b></p>"#;
        assert_eq!(
            styles_on_their_own_lines(html),
            "<p class=\"a\"\nstyle=\"x: 1\">a style=\"not an attribute\" <b title='q style=\"z\"'\nstyle=\"y\">b</b></p>"
        );
    }

    #[test]
    fn cached_cards_give_the_same_bytes_as_the_whole_page_through_tera() {
        let renderer = DigestRenderer::new().unwrap();
        let mut no_links = hostile_view();
        no_links.view_url = None;
        let mut one_link_only = with_feedback(hostile_view(), 9);
        one_link_only.papers[1].less_url = Some("javascript:alert(1)".to_string());
        let views = [
            with_feedback(hostile_view(), 1),
            // Same papers, another subscriber's links: served from the cache.
            with_feedback(hostile_view(), 2),
            with_feedback(hostile_view(), 1),
            hostile_view(),
            no_links,
            one_link_only,
        ];
        for (i, view) in views.iter().enumerate() {
            let fast = renderer.render(view).unwrap();
            let reference = renderer.render_reference(view).unwrap();
            assert_eq!(fast.html, reference.html, "view {i}");
            assert_eq!(fast.text, reference.text, "view {i}");
            assert_eq!(fast.subject, reference.subject, "view {i}");
        }
        let second = renderer.render(&views[1]).unwrap().html;
        assert!(
            second.contains("/feedback/s2p1&amp;x?vote=more"),
            "{second}"
        );
        assert!(
            !second.contains("/feedback/s1p1"),
            "another subscriber's link leaked"
        );
        assert!(!second.contains('\u{0}'));
    }

    /// Renders `views` in turn through one renderer, so that later ones reuse the cards the
    /// earlier ones cached, and holds each to the reference's bytes.
    fn assert_same_as_reference(views: &[DigestView]) {
        let renderer = DigestRenderer::new().unwrap();
        for (i, view) in views.iter().enumerate() {
            let fast = renderer.render(view).unwrap();
            let reference = renderer.render_reference(view).unwrap();
            assert_eq!(fast.html, reference.html, "view {i}");
            assert_eq!(fast.text, reference.text, "view {i}");
            assert_eq!(fast.subject, reference.subject, "view {i}");
        }
    }

    #[test]
    fn each_subscriber_sees_their_own_rank() {
        let views: Vec<DigestView> = [1, 7, 10, 123, 1]
            .into_iter()
            .map(|rank| {
                let mut view = with_feedback(hostile_view(), rank);
                view.papers.reverse();
                for (i, p) in view.papers.iter_mut().enumerate() {
                    p.rank = rank + i as u32;
                }
                view
            })
            .collect();
        assert_same_as_reference(&views);
        let html = DigestRenderer::new()
            .unwrap()
            .render(&views[3])
            .unwrap()
            .html;
        assert!(html.contains(">#123</span>"), "{html}");
    }

    #[test]
    fn highlighted_snippets_are_spliced_escaped() {
        let first = hostile_view();
        let mut second = hostile_view();
        second.papers[0].snippet = vec![
            part("  a < b ", false),
            part("x & \"y\"", true),
            part(" 'z' >", false),
            part("<mark>", true),
        ];
        second.papers[1].snippet = vec![part("all of it & more", true)];
        second.papers[2].snippet = vec![part("\n", true), part("  plain  ", false)];
        assert_same_as_reference(&[first, second.clone(), second.clone()]);
        let html = render(&second).html;
        assert!(html.contains("x &amp; &quot;y&quot;</mark>"), "{html}");
        assert!(html.contains("&lt;mark&gt;</mark>"), "{html}");
    }

    #[test]
    fn cards_without_a_snippet_match_the_reference() {
        let mut view = hostile_view();
        view.papers[0].snippet.clear();
        // Only white space: tidied away to nothing, so no snippet paragraph either.
        view.papers[1].snippet = vec![part("  \n ", false), part(" ", true)];
        let mut again = with_feedback(hostile_view(), 4);
        again.papers[1].snippet.clear();
        assert_same_as_reference(&[hostile_view(), view, again, hostile_view()]);
    }

    #[test]
    fn cards_without_reasons_match_the_reference() {
        let mut view = with_feedback(hostile_view(), 5);
        view.papers[0].reasons.clear();
        view.papers[1].reasons = vec!["  ".to_string(), "\n".to_string()];
        view.papers[2].reasons = vec![
            "matches: a & b".to_string(),
            " ".to_string(),
            "<i>x</i>".to_string(),
        ];
        assert_same_as_reference(&[with_feedback(hostile_view(), 4), view.clone(), view]);
    }

    #[test]
    fn cards_without_feedback_links_match_the_reference() {
        let mut some = with_feedback(hostile_view(), 6);
        some.papers[0].more_url = None;
        some.papers[1].less_url = Some("javascript:alert(1)".to_string());
        assert_same_as_reference(&[
            with_feedback(hostile_view(), 1),
            hostile_view(),
            some,
            with_feedback(hostile_view(), 2),
        ]);
    }

    #[test]
    fn a_paper_whose_text_holds_the_stand_ins_is_rendered_whole() {
        let renderer = DigestRenderer::new().unwrap();
        let mut view = with_feedback(hostile_view(), 3);
        view.papers[0].title = format!("evil {MORE_MARK} {LESS_MARK} title");
        view.papers[1].authors = vec![RANK_MARK.to_string(), SNIPPET_MARK.to_string()];
        view.papers[2].journal_ref = Some(format!("{WHY_MARK} and a lone \u{0}"));
        for _ in 0..2 {
            let fast = renderer.render(&view).unwrap();
            assert_eq!(fast.html, renderer.render_reference(&view).unwrap().html);
            assert!(fast.html.contains("/feedback/s3p1&amp;x?vote=more"));
        }
        let cache = renderer.cards.lock().unwrap();
        let cached = cache.by_hash.values().flatten();
        assert_eq!(
            cached
                .filter(|c| matches!(c.html, CardHtml::Uncacheable))
                .count(),
            3
        );
    }

    #[test]
    fn subscriber_text_holding_stand_ins_is_spliced_as_text() {
        let mut view = with_feedback(hostile_view(), 8);
        view.papers[0].snippet = vec![part(RANK_MARK, true), part(LESS_MARK, false)];
        view.papers[1].reasons = vec![SNIPPET_MARK.to_string(), MORE_MARK.to_string()];
        view.papers[2].more_url = Some(format!("https://papers.example.org/{WHY_MARK}"));
        assert_same_as_reference(&[with_feedback(hostile_view(), 1), view.clone(), view]);
    }

    #[test]
    fn the_card_cache_is_bounded() {
        let renderer = DigestRenderer::new().unwrap();
        let mut view = hostile_view();
        for n in 0..(CARD_CACHE_MAX + 10) {
            view.papers[0].id = format!("2410.{n:05}");
            renderer.render(&view).unwrap();
        }
        let len = renderer.cards.lock().unwrap().len;
        assert!(len <= CARD_CACHE_MAX, "{len}");
    }

    #[test]
    fn renderer_can_be_shared_between_send_workers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DigestRenderer>();
    }

    #[test]
    fn hostile_text_is_escaped_in_html() {
        let html = render(&hostile_view()).html;
        assert!(!html.contains("<script"), "raw <script> in:\n{html}");
        assert!(!html.contains("<img src=x"), "raw <img> in:\n{html}");
        assert!(
            !html.contains("<b>diffusion"),
            "raw <b> from a reason in:\n{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
        assert!(html.contains("Smith &amp; Wesson"));
        assert!(html.contains("&lt;b&gt;diffusion&lt;/b&gt;"));
    }

    #[test]
    fn urls_in_hrefs_are_escaped() {
        let html = render(&hostile_view()).html;
        assert!(html.contains(r#"href="https://project.example.org/p?a=1&amp;b=2""#));
    }

    #[test]
    fn javascript_links_are_dropped() {
        let rendered = render(&hostile_view());
        assert!(!rendered.html.to_lowercase().contains("javascript:"));
        assert!(!rendered.text.to_lowercase().contains("javascript:"));
        // The paper itself is still there, with its good links.
        assert!(rendered.html.contains("https://arxiv.org/pdf/2410.00001"));
    }

    #[test]
    fn subject_has_date_and_count_and_no_user_text() {
        let view = hostile_view();
        let subject = render(&view).subject;
        assert_eq!(subject, "Your papers for Fri 25 Oct 2024: 3 new papers");

        let mut one = view.clone();
        one.papers.truncate(1);
        assert_eq!(
            render(&one).subject,
            "Your papers for Fri 25 Oct 2024: 1 new paper"
        );
    }

    #[test]
    fn text_part_has_titles_and_full_footer_urls() {
        let view = hostile_view();
        let text = render(&view).text;
        assert!(text.contains("1. <script>alert(1)</script>"), "{text}");
        assert!(text.contains("2. Protein folding with diffusion"), "{text}");
        assert!(text.contains("3. A third paper about sampling"), "{text}");
        assert!(text.contains(MANAGE) && text.contains(UNSUB), "{text}");
        assert!(text.contains("https://papers.example.org/digest/eyJkIjoxfQ.dmlldw"));
        assert!(
            text.contains("Smith & Wesson"),
            "text must not be HTML-escaped"
        );
        assert!(!text.contains("&amp;") && !text.contains("&lt;"));
    }

    #[test]
    fn text_part_prose_is_wrapped() {
        let mut view = hostile_view();
        view.papers[0].snippet = vec![part(&"lorem ipsum dolor ".repeat(20), false)];
        let text = render(&view).text;
        for line in text.lines().filter(|l| !l.contains("://")) {
            assert!(line.chars().count() <= TEXT_WIDTH, "too long: {line:?}");
        }
        assert!(text.contains("   lorem ipsum"));
    }

    #[test]
    fn text_part_marks_highlights_and_shows_reasons() {
        let text = render(&hostile_view()).text;
        assert!(
            text.contains("Folding *proteins* is hard; *diffusion* helps."),
            "{text}"
        );
        assert!(text.contains("Why: matches: <b>diffusion</b>"), "{text}");
        assert!(
            text.contains("   PDF:          https://arxiv.org/pdf/2410.00002\n"),
            "{text}"
        );
        assert!(
            !text.contains("\n\n\n"),
            "blank lines not squeezed:\n{text}"
        );
    }

    #[test]
    fn highlights_are_marked() {
        let html = render(&hostile_view()).html;
        assert!(html.contains(">proteins</mark>"), "{html}");
        assert!(html.contains(">diffusion</mark>"));
        assert_eq!(
            html.matches("<mark").count(),
            3,
            "one in paper 1, two in paper 2"
        );
    }

    #[test]
    fn styles_are_inlined_and_dark_mode_survives() {
        let html = render(&hostile_view()).html;
        let body_tag = &html[html.find("<body").unwrap()..];
        let body_tag = &body_tag[..body_tag.find('>').unwrap()];
        assert!(body_tag.contains("style=\""), "body not styled: {body_tag}");
        assert!(
            html.contains("class=\"paper\"\nstyle=\""),
            "cards not styled"
        );
        assert!(html.contains("@media (prefers-color-scheme: dark)"));
        assert!(html.contains(r#"<meta name="color-scheme" content="light dark">"#));
        assert!(html.contains(r#"name="viewport""#));
    }

    #[test]
    fn long_author_lists_are_shortened() {
        let rendered = render(&hostile_view());
        assert!(
            rendered
                .html
                .contains("Author 1, Author 2, Author 3 and 12 more")
        );
        assert!(!rendered.html.contains("Author 4"));
        assert!(
            rendered
                .text
                .contains("Author 1, Author 2, Author 3 and 12 more")
        );
    }

    #[test]
    fn footer_names_recipient_interests_and_links() {
        let html = render(&hostile_view()).html;
        assert!(html.contains("reader@example.org"));
        assert!(html.contains(&format!(r#"href="{MANAGE}""#)));
        assert!(html.contains(&format!(r#"href="{UNSUB}""#)));
        assert!(html.contains(r#"href="https://papers.example.org/digest/eyJkIjoxfQ.dmlldw""#));

        let mut no_view = hostile_view();
        no_view.view_url = None;
        let html = render(&no_view).html;
        assert!(!html.contains("/digest/"));
        assert!(!html.contains("View in browser"));
    }

    #[test]
    fn arxiv_categories_doi_and_journal_show_escaped_in_both_parts() {
        let rendered = render(&hostile_view());
        let html = &rendered.html;
        assert!(
            html.contains("astro-ph.GA, &lt;b&gt;cs.LG&lt;&#x2F;b&gt;, a, b +2")
                || html.contains("astro-ph.GA, &lt;b&gt;cs.LG&lt;/b&gt;, a, b +2"),
            "categories, escaped and shortened: {html}"
        );
        assert!(!html.contains("<b>cs.LG"));
        assert!(html.contains(r#"href="https://doi.org/10.1007/978-3-540-75826-6_11""#));
        assert_eq!(
            html.matches(">DOI</a>").count(),
            1,
            "only the paper with a DOI"
        );
        assert!(
            html.contains("Journal: Chaos &lt;i&gt;in&lt;"),
            "journal reference, escaped and tidied"
        );
        assert!(!html.contains("<i>in</i>"));
        assert_eq!(
            html.matches("cs.LG, stat.ML").count(),
            2,
            "papers 2 and 3 keep their own categories"
        );

        // The byline wraps at the text width: compare with the wrapping undone.
        let text = rendered
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains("O'Brien · astro-ph.GA, <b>cs.LG</b>, a, b +2 · ▲ 42"),
            "{text}"
        );
        assert!(text.contains("Journal: Chaos <i>in</i> Astronomy & Space Science 2009"));
        assert!(text.contains("DOI: https://doi.org/10.1007/978-3-540-75826-6_11"));
    }

    #[test]
    fn a_doi_that_is_not_one_gets_no_link() {
        let mut view = hostile_view();
        view.papers[0].doi = Some("javascript:alert(1)".to_string());
        view.papers[1].doi = Some("10.1000/a b".to_string());
        let html = render(&view).html;
        assert!(!html.contains("doi.org"), "{html}");
    }

    #[test]
    fn upvotes_show_only_when_known() {
        let rendered = render(&hostile_view());
        assert_eq!(
            rendered.html.matches("▲ 42").count(),
            2,
            "papers 1 and 3 only"
        );
    }

    #[test]
    fn title_links_to_abstract_else_hugging_face() {
        let html = render(&hostile_view()).html;
        let title_href = |id: &str| {
            let at = html.find(&format!("{id}</span>")).unwrap();
            let rest = &html[at..];
            let href = rest.find("href=\"").unwrap() + 6;
            rest[href..href + rest[href..].find('"').unwrap()].to_string()
        };
        assert_eq!(title_href("2410.00001"), "https://arxiv.org/abs/2410.00001");
        assert_eq!(
            title_href("2410.00003"),
            "https://huggingface.co/papers/2410.00003"
        );
    }

    #[test]
    fn a_bad_own_link_is_an_error_not_a_broken_email() {
        let mut view = hostile_view();
        view.unsubscribe_url = "/unsubscribe/abc".to_string();
        let err = DigestRenderer::new().unwrap().render(&view).unwrap_err();
        assert!(matches!(
            err,
            RenderError::BadLink {
                field: "unsubscribe",
                ..
            }
        ));
        assert!(err.to_string().contains("web.base_url"));
    }

    #[test]
    fn an_empty_digest_still_renders() {
        let mut view = hostile_view();
        view.papers.clear();
        let rendered = render(&view);
        assert!(rendered.subject.ends_with("no new papers"));
        assert!(rendered.html.contains("No new papers matched"));
        assert!(rendered.text.contains(UNSUB));
    }
}
