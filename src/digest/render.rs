//! Renders a [`DigestView`] into the subject, plain-text part and HTML part of the digest email.
//!
//! The templates and stylesheet are compiled into the binary, so a deployed daemon needs no
//! template directory. This module decides what the email says and looks like; it does not
//! build MIME messages or headers (that is `mail`), and it never puts subscriber text in the
//! subject, which is the one part of its output that becomes a header.

use serde::Serialize;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use super::format::{
    abstract_label, collapse_whitespace, count_phrase, safe_url, shorten_authors, snippet_plain,
    tidy_snippet, wrap,
};
use super::{DigestPaper, DigestView, SnippetPart};

const HTML_TEMPLATE: &str = "email/digest.html";
const TEXT_TEMPLATE: &str = "email/digest.txt";
/// The HTML page with each card's HTML handed in ready-made (see [`DigestRenderer`]).
const PAGE_TEMPLATE: &str = "email/digest-page.html";
/// One paper's card, cut out of the HTML template between [`CARD_START`] and [`CARD_END`].
const CARD_TEMPLATE: &str = "email/digest-card.html";
const CARD_START: &str = "<!--paper-->";
const CARD_END: &str = "<!--/paper-->";
/// Stand in for a subscriber's feedback links while a card is rendered for the cache. Our own
/// links never contain NUL; a card whose text does is rendered without the cache.
const MORE_MARK: &str = "\u{0}more-like-this\u{0}";
const LESS_MARK: &str = "\u{0}less-like-this\u{0}";
/// Cards kept at most: a day's papers times the ranks and snippets they appear with. When full
/// the cache starts afresh, which costs one render per card and bounds memory (~5 KB a card).
const CARD_CACHE_MAX: usize = 8192;
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
/// authors, snippet, links, reasons, all with inlined styles) is most of a digest's HTML. A card
/// depends on its paper, its rank and the subscriber's snippet and reasons, and on nothing else
/// except the two feedback links, which are signed per subscriber. So a card is rendered once
/// through the card template with stand-ins for those two links, cut around them, and every
/// digest that carries the same card pastes the pieces around its own (escaped) links. The
/// page around the cards is still rendered through tera per digest. [`Self::render_reference`]
/// renders the whole page through tera, as before the cache; tests hold the two to the same
/// bytes.
pub struct DigestRenderer {
    tera: tera::Tera,
    /// Keyed by a hash of what the card shows; each entry keeps its full key to compare.
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
        let templates = [
            (HTML_TEMPLATE, format!("{before}{card}{after}")),
            (
                PAGE_TEMPLATE,
                format!("{before}{{{{ paper.html | safe }}}}{after}"),
            ),
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

        Ok(DigestRenderer {
            tera,
            cards: Mutex::new(CardCache::default()),
        })
    }

    /// Renders a digest from cached cards (see the type's documentation).
    pub fn render(&self, view: &DigestView) -> Result<RenderedDigest, RenderError> {
        let mut cards = Vec::with_capacity(view.papers.len());
        for paper in &view.papers {
            let more_url = paper.more_url.as_deref().and_then(safe_url);
            let less_url = paper.less_url.as_deref().and_then(safe_url);
            let feedback = more_url.is_some() && less_url.is_some();
            let cached = self.card(paper, feedback)?;
            let html = match (&cached.html, &more_url, &less_url) {
                (CardHtml::WithFeedback(pieces), Some(more), Some(less)) => {
                    let [a, b, c] = pieces;
                    let (more, less) = (escape_html(more), escape_html(less));
                    let mut html =
                        String::with_capacity(a.len() + b.len() + c.len() + more.len() * 2);
                    for piece in [a, &more, b, &less, c] {
                        html.push_str(piece);
                    }
                    html
                }
                (CardHtml::Whole(html), _, _) => html.clone(),
                // A card whose text contains the stand-ins: render it whole, uncached.
                _ => self.render_card(&card_for(paper, more_url.clone(), less_url.clone()))?,
            };
            cards.push(AssembledCard {
                html,
                title: cached.title.clone(),
                text: cached.text.clone(),
                more_url,
                less_url,
            });
        }
        let page = Page::new(view, cards, |c| &c.title)?;
        self.render_page(PAGE_TEMPLATE, &page)
    }

    /// Renders the whole page through tera, card by card, with no cache: what [`Self::render`]
    /// must match byte for byte, and the baseline of `examples/render_bench.rs`.
    pub fn render_reference(&self, view: &DigestView) -> Result<RenderedDigest, RenderError> {
        let cards = view
            .papers
            .iter()
            .map(|p| {
                card_for(
                    p,
                    p.more_url.as_deref().and_then(safe_url),
                    p.less_url.as_deref().and_then(safe_url),
                )
            })
            .collect();
        let page = Page::new(view, cards, |c: &PaperCard| &c.title)?;
        self.render_page(HTML_TEMPLATE, &page)
    }

    fn render_page<C: Serialize>(
        &self,
        html_template: &'static str,
        page: &Page<C>,
    ) -> Result<RenderedDigest, RenderError> {
        let context = tera::Context::from_serialize(page)
            .map_err(|e| RenderError::template(html_template, e))?;
        let html = self
            .tera
            .render(html_template, &context)
            .map_err(|e| RenderError::template(html_template, e))?;
        let text = self
            .tera
            .render(TEXT_TEMPLATE, &context)
            .map_err(|e| RenderError::template(TEXT_TEMPLATE, e))?;
        Ok(RenderedDigest {
            subject: page.subject.clone(),
            text: tidy_text(&text),
            html,
        })
    }

    fn render_card(&self, card: &PaperCard) -> Result<String, RenderError> {
        let mut context = tera::Context::new();
        context.insert("paper", card);
        self.tera
            .render(CARD_TEMPLATE, &context)
            .map_err(|e| RenderError::template(CARD_TEMPLATE, e))
    }

    /// The card for `paper` from the cache, rendered and stored first if need be.
    fn card(&self, paper: &DigestPaper, feedback: bool) -> Result<Arc<CachedCard>, RenderError> {
        let hash = card_hash(paper, feedback);
        {
            let cache = self.cards.lock().expect("card cache lock");
            if let Some(found) = cache
                .by_hash
                .get(&hash)
                .and_then(|v| v.iter().find(|c| c.key.matches(paper, feedback)))
            {
                return Ok(found.clone());
            }
        }
        let marks = feedback.then(|| (MORE_MARK.to_string(), LESS_MARK.to_string()));
        let (more, less) = marks.clone().unzip();
        let card = card_for(paper, more, less);
        let rendered = self.render_card(&card)?;
        let html = if feedback {
            let pieces = rendered
                .split_once(MORE_MARK)
                .and_then(|(a, rest)| rest.split_once(LESS_MARK).map(|(b, c)| [a, b, c]))
                .filter(|p| {
                    p.iter()
                        .all(|s| !s.contains(MORE_MARK) && !s.contains(LESS_MARK))
                });
            match pieces {
                Some([a, b, c]) => CardHtml::WithFeedback([a.into(), b.into(), c.into()]),
                None => CardHtml::Uncacheable,
            }
        } else {
            CardHtml::Whole(rendered)
        };
        let cached = Arc::new(CachedCard {
            key: CardKey::of(paper, feedback),
            html,
            title: card.title,
            text: card.text,
        });
        let mut cache = self.cards.lock().expect("card cache lock");
        if cache.len >= CARD_CACHE_MAX {
            *cache = CardCache::default();
        }
        cache.by_hash.entry(hash).or_default().push(cached.clone());
        cache.len += 1;
        Ok(cached)
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

/// A rendered card, as the cache keeps it.
struct CachedCard {
    key: CardKey,
    html: CardHtml,
    title: String,
    /// The plain-text part's rendering (it never holds the feedback links).
    text: String,
}

enum CardHtml {
    /// No feedback links: the card as it is.
    Whole(String),
    /// Before the "more" link, between the two, after the "less" link.
    WithFeedback([String; 3]),
    /// The paper's own text contains a stand-in: render this card whole every time.
    Uncacheable,
}

/// One card of the fast path, as the page and text templates see it.
#[derive(Serialize)]
struct AssembledCard {
    html: String,
    #[serde(skip)]
    title: String,
    text: String,
    more_url: Option<String>,
    less_url: Option<String>,
}

/// Everything a card shows except the feedback links, owned, to compare on a hash match.
#[derive(PartialEq)]
struct CardKey {
    rank: u32,
    id: String,
    title: String,
    authors: Vec<String>,
    snippet: Vec<(String, bool)>,
    upvotes: Option<i64>,
    urls: [Option<String>; 5],
    reasons: Vec<String>,
    categories: Vec<String>,
    doi: Option<String>,
    journal_ref: Option<String>,
    feedback: bool,
}

impl CardKey {
    fn of(p: &DigestPaper, feedback: bool) -> Self {
        CardKey {
            rank: p.rank,
            id: p.id.clone(),
            title: p.title.clone(),
            authors: p.authors.clone(),
            snippet: p
                .snippet
                .iter()
                .map(|s| (s.text.clone(), s.highlighted))
                .collect(),
            upvotes: p.upvotes,
            urls: urls_of(p).map(|u| u.map(str::to_string)),
            reasons: p.reasons.clone(),
            categories: p.categories.clone(),
            doi: p.doi.clone(),
            journal_ref: p.journal_ref.clone(),
            feedback,
        }
    }

    fn matches(&self, p: &DigestPaper, feedback: bool) -> bool {
        self.rank == p.rank
            && self.feedback == feedback
            && self.upvotes == p.upvotes
            && self.id == p.id
            && self.title == p.title
            && self.authors == p.authors
            && self.reasons == p.reasons
            && self.categories == p.categories
            && self.doi == p.doi
            && self.journal_ref == p.journal_ref
            && self.snippet.len() == p.snippet.len()
            && self
                .snippet
                .iter()
                .zip(&p.snippet)
                .all(|((t, h), s)| *t == s.text && *h == s.highlighted)
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

fn card_hash(p: &DigestPaper, feedback: bool) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        p.rank, feedback, p.upvotes, &p.id, &p.title, &p.authors, &p.reasons,
    )
        .hash(&mut h);
    (&p.categories, &p.doi, &p.journal_ref).hash(&mut h);
    for s in &p.snippet {
        (&s.text, s.highlighted).hash(&mut h);
    }
    urls_of(p).hash(&mut h);
    h.finish()
}

/// The card as the templates see it, with the given (already vetted) feedback links.
fn card_for(paper: &DigestPaper, more_url: Option<String>, less_url: Option<String>) -> PaperCard {
    PaperCard {
        more_url,
        less_url,
        ..PaperCard::new(paper)
    }
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

#[derive(Serialize)]
struct PaperCard {
    rank: u32,
    id: String,
    title: String,
    title_url: Option<String>,
    authors: String,
    upvotes: Option<String>,
    /// arXiv categories, primary first, joined: `cs.LG, cs.CL`.
    categories: String,
    /// Where the paper was published (arXiv's journal reference), tidied; empty when unknown.
    journal_ref: String,
    snippet: Vec<SnippetPart>,
    links: Vec<Link>,
    why: String,
    /// The plain-text part's rendering of the same paper, wrapped and indented.
    text: String,
    /// Feedback links, http(s) only like every other link.
    more_url: Option<String>,
    less_url: Option<String>,
}

#[derive(Serialize)]
struct Link {
    label: &'static str,
    url: String,
}

impl<C> Page<C> {
    /// The page around `papers`, the view's papers as cards of either kind; `title` gives a
    /// card's tidied title for the inbox preview line.
    fn new(
        view: &DigestView,
        papers: Vec<C>,
        title: impl Fn(&C) -> &str,
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
        let lede = match papers.len() {
            0 => "No new papers matched your interests this time.".to_string(),
            n => {
                let mut phrase = count_phrase(n);
                phrase[..1].make_ascii_uppercase();
                format!("{phrase} matched your interests, best first.")
            }
        };
        let preheader = papers
            .iter()
            .take(PREHEADER_TITLES)
            .map(title)
            .collect::<Vec<_>>()
            .join(" · ");

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

impl PaperCard {
    fn new(paper: &DigestPaper) -> Self {
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

        let title = collapse_whitespace(&paper.title);
        let authors = shorten_authors(&paper.authors);
        let upvotes = paper.upvotes.map(|n| format!("▲ {n}"));
        let categories = shorten_categories(&paper.categories);
        let journal_ref = paper
            .journal_ref
            .as_deref()
            .map(collapse_whitespace)
            .unwrap_or_default();
        let reasons: Vec<String> = paper
            .reasons
            .iter()
            .map(|r| collapse_whitespace(r))
            .filter(|r| !r.is_empty())
            .collect();
        let why = reasons.join("; ");
        let snippet = tidy_snippet(&paper.snippet);
        let text = paper_text(&TextCard {
            rank: paper.rank,
            title: &title,
            authors: &authors,
            categories: &categories,
            upvotes: &upvotes,
            journal_ref: &journal_ref,
            snippet: &snippet,
            why: &why,
            links: &links,
        });
        PaperCard {
            rank: paper.rank,
            id: collapse_whitespace(&paper.id),
            title,
            title_url: abstract_url.or(hf_url),
            authors,
            upvotes,
            categories,
            journal_ref,
            snippet,
            links,
            why,
            text,
            more_url: paper.more_url.as_deref().and_then(safe_url),
            less_url: paper.less_url.as_deref().and_then(safe_url),
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

/// What the plain-text rendering of one paper needs, already tidied.
struct TextCard<'a> {
    rank: u32,
    title: &'a str,
    authors: &'a str,
    categories: &'a str,
    upvotes: &'a Option<String>,
    journal_ref: &'a str,
    snippet: &'a [SnippetPart],
    why: &'a str,
    links: &'a [Link],
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
fn paper_text(card: &TextCard) -> String {
    let number = format!("{}. ", card.rank);
    let indent = " ".repeat(number.chars().count());
    let mut blocks = vec![wrap(card.title, TEXT_WIDTH, &number, &indent)];
    let byline = [
        card.authors,
        card.categories,
        card.upvotes.as_deref().unwrap_or(""),
    ]
    .into_iter()
    .filter(|part| !part.is_empty())
    .collect::<Vec<_>>()
    .join(" · ");
    if !byline.is_empty() {
        blocks.push(wrap(&byline, TEXT_WIDTH, &indent, &indent));
    }
    if !card.journal_ref.is_empty() {
        blocks.push(wrap(
            &format!("Journal: {}", card.journal_ref),
            TEXT_WIDTH,
            &indent,
            &format!("{indent}         "),
        ));
    }
    let mut out = blocks.join("\n");
    let (snippet, why, links) = (card.snippet, card.why, card.links);

    let snippet = snippet_plain(snippet);
    if !snippet.is_empty() {
        out.push_str("\n\n");
        out.push_str(&wrap(&snippet, TEXT_WIDTH, &indent, &indent));
    }

    let mut tail = Vec::new();
    if !why.is_empty() {
        tail.push(wrap(
            &format!("Why: {why}"),
            TEXT_WIDTH,
            &indent,
            &format!("{indent}     "),
        ));
    }
    // URLs are never wrapped: one per line, labels padded so the URLs line up.
    let label_width = links.iter().map(|l| l.label.len() + 1).max().unwrap_or(0);
    tail.extend(links.iter().map(|l| {
        let label = format!("{}:", l.label);
        format!("{indent}{label:<label_width$} {}", l.url)
    }));
    if !tail.is_empty() {
        out.push_str("\n\n");
        out.push_str(&tail.join("\n"));
    }
    out
}

/// Escapes text for HTML element content and quoted attribute values. Tera's own escaper also
/// turns every `/` into `&#x2F;`, which is valid but makes every URL in the email unreadable to
/// a person or a filter looking at the source; `/` needs no escaping in either place.
fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
    }
    out
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

    #[test]
    fn a_paper_whose_text_holds_the_stand_ins_is_rendered_whole() {
        let renderer = DigestRenderer::new().unwrap();
        let mut view = with_feedback(hostile_view(), 3);
        view.papers[0].title = format!("evil {MORE_MARK} {LESS_MARK} title");
        view.papers[1].reasons = vec![LESS_MARK.to_string()];
        for _ in 0..2 {
            let fast = renderer.render(&view).unwrap();
            assert_eq!(fast.html, renderer.render_reference(&view).unwrap().html);
            assert!(fast.html.contains("/feedback/s3p1&amp;x?vote=more"));
        }
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
