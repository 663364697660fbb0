//! What the templates are given: the page, each paper's card and its text, already tidied,
//! shortened, wrapped and with every URL vetted, so that the templates only lay out and escape.
//!
//! Not for: rendering (`render`), caching cards (`cards`).

use super::format::{
    abstract_label, collapse_whitespace, count_phrase, safe_url, shorten_authors, snippet_plain,
    tidy_snippet, wrap,
};
use super::render::RenderError;
use super::{DigestPaper, DigestView, SnippetPart};
use serde::Serialize;

/// Prose in the text part wraps here: comfortable to read and short enough that no client
/// rewraps it into ragged lines.
pub(super) const TEXT_WIDTH: usize = 72;

/// How many titles the hidden inbox preview line lists.
pub(super) const PREHEADER_TITLES: usize = 3;

/// What one subscriber's card shows of a paper beyond the paper itself, tidied and vetted.
#[derive(Clone)]
pub(super) struct SubscriberParts {
    pub(super) rank: u32,
    pub(super) snippet: Vec<SnippetPart>,
    /// The reasons, joined.
    pub(super) why: String,
    /// Feedback links, http(s) only like every other link.
    pub(super) more_url: Option<String>,
    pub(super) less_url: Option<String>,
}

impl SubscriberParts {
    pub(super) fn of(paper: &DigestPaper) -> Self {
        let reasons: Vec<String> = paper
            .reasons
            .iter()
            .map(|r| collapse_whitespace(r))
            .filter(|r| !r.is_empty())
            .collect();
        SubscriberParts {
            rank: paper.rank,
            snippet: tidy_snippet(&paper.snippet),
            why: reasons.join("; "),
            more_url: paper.more_url.as_deref().and_then(safe_url),
            less_url: paper.less_url.as_deref().and_then(safe_url),
        }
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
pub(super) fn tidy_text(text: &str) -> String {
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
pub(super) struct Page<C> {
    pub(super) subject: String,
    pub(super) date_long: String,
    pub(super) lede: String,
    pub(super) preheader: String,
    pub(super) recipient: String,
    pub(super) interests: String,
    pub(super) manage_url: String,
    pub(super) unsubscribe_url: String,
    pub(super) view_url: Option<String>,
    pub(super) site_url: String,
    pub(super) papers: Vec<C>,
    pub(super) text_heading: String,
    pub(super) text_footer: String,
}

/// A paper's card as the card template sees it: the paper's own parts and this subscriber's.
#[derive(Serialize)]
pub(super) struct PaperCard {
    pub(super) rank: u32,
    #[serde(flatten)]
    pub(super) parts: PaperParts,
    pub(super) snippet: Vec<SnippetPart>,
    pub(super) why: String,
    /// The plain-text part's rendering of the same paper, wrapped and indented.
    pub(super) text: String,
    pub(super) more_url: Option<String>,
    pub(super) less_url: Option<String>,
}

/// A paper as the text template sees it in [`DigestRenderer::render`](super::DigestRenderer::render).
#[derive(Serialize)]
pub(super) struct TextPaper {
    pub(super) text: String,
    pub(super) more_url: Option<String>,
    pub(super) less_url: Option<String>,
}

#[derive(Serialize, Clone)]
struct Link {
    label: &'static str,
    url: String,
}

impl<C> Page<C> {
    /// The page around `papers`, which may be left empty when the cards are put in by hand:
    /// `count` papers, the first of them titled `titles` (for the inbox preview line).
    pub(super) fn new(
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
pub(super) struct PaperParts {
    pub(super) id: String,
    pub(super) title: String,
    pub(super) title_url: Option<String>,
    pub(super) authors: String,
    pub(super) upvotes: Option<String>,
    /// arXiv categories, primary first, joined: `cs.LG, cs.CL`.
    pub(super) categories: String,
    /// Where the paper was published (arXiv's journal reference), tidied; empty when unknown.
    pub(super) journal_ref: String,
    links: Vec<Link>,
}

impl PaperParts {
    pub(super) fn of(paper: &DigestPaper) -> Self {
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
    pub(super) fn new(parts: PaperParts, mine: SubscriberParts, text: String) -> Self {
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
pub(super) fn paper_text(
    fixed: &PaperTextFixed,
    rank: u32,
    snippet: &[SnippetPart],
    why: &str,
) -> String {
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
pub(super) struct PaperTextFixed {
    /// Title, byline and journal reference.
    head: String,
    /// One line per link, or nothing.
    links: String,
}

impl PaperTextFixed {
    pub(super) fn new(parts: &PaperParts, rank: u32) -> Self {
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
