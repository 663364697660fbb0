//! Renders a [`DigestView`] into the subject, plain-text part and HTML part of the digest email.
//!
//! The templates and stylesheet are compiled into the binary, so a deployed daemon needs no
//! template directory. This module decides what the email says and looks like; it does not
//! build MIME messages or headers (that is `mail`), and it never puts subscriber text in the
//! subject, which is the one part of its output that becomes a header.

use serde::Serialize;

use super::format::{
    abstract_label, collapse_whitespace, count_phrase, safe_url, shorten_authors, snippet_plain,
    tidy_snippet, wrap,
};
use super::{DigestPaper, DigestView, SnippetPart};

const HTML_TEMPLATE: &str = "email/digest.html";
const TEXT_TEMPLATE: &str = "email/digest.txt";
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

/// Renders digests. Build it once and share it: it holds the parsed templates.
pub struct DigestRenderer {
    tera: tera::Tera,
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
        let html_template = inliner.inline(&without_template_comments(include_str!(
            "../../templates/email/digest.html.tera"
        )))?;
        tera.add_raw_template(HTML_TEMPLATE, &html_template)
            .map_err(|e| RenderError::template(HTML_TEMPLATE, e))?;
        tera.add_raw_template(
            TEXT_TEMPLATE,
            include_str!("../../templates/email/digest.txt.tera"),
        )
        .map_err(|e| RenderError::template(TEXT_TEMPLATE, e))?;

        Ok(DigestRenderer { tera })
    }

    pub fn render(&self, view: &DigestView) -> Result<RenderedDigest, RenderError> {
        let page = Page::new(view)?;
        let context = tera::Context::from_serialize(&page)
            .map_err(|e| RenderError::template(HTML_TEMPLATE, e))?;
        let html = self
            .tera
            .render(HTML_TEMPLATE, &context)
            .map_err(|e| RenderError::template(HTML_TEMPLATE, e))?;
        let text = self
            .tera
            .render(TEXT_TEMPLATE, &context)
            .map_err(|e| RenderError::template(TEXT_TEMPLATE, e))?;
        Ok(RenderedDigest {
            subject: page.subject,
            text: tidy_text(&text),
            html,
        })
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
struct Page {
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
    papers: Vec<PaperCard>,
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

impl Page {
    fn new(view: &DigestView) -> Result<Self, RenderError> {
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
        let papers: Vec<PaperCard> = view.papers.iter().map(PaperCard::new).collect();
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
            .map(|p| p.title.as_str())
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

        let title = collapse_whitespace(&paper.title);
        let authors = shorten_authors(&paper.authors);
        let upvotes = paper.upvotes.map(|n| format!("▲ {n}"));
        let reasons: Vec<String> = paper
            .reasons
            .iter()
            .map(|r| collapse_whitespace(r))
            .filter(|r| !r.is_empty())
            .collect();
        let why = reasons.join("; ");
        let snippet = tidy_snippet(&paper.snippet);
        let text = paper_text(
            paper.rank, &title, &authors, &upvotes, &snippet, &why, &links,
        );
        PaperCard {
            rank: paper.rank,
            id: collapse_whitespace(&paper.id),
            title,
            title_url: abstract_url.or(hf_url),
            authors,
            upvotes,
            snippet,
            links,
            why,
            text,
            more_url: paper.more_url.as_deref().and_then(safe_url),
            less_url: paper.less_url.as_deref().and_then(safe_url),
        }
    }
}

/// One paper in the plain-text part:
///
/// ```text
/// 1. Title, wrapped with a hanging indent
///    Authors · ▲ 42
///
///    The snippet, with *matched words* marked.
///
///    Why: matches: diffusion
///    arXiv:        https://arxiv.org/abs/…
///    Hugging Face: https://huggingface.co/papers/…
/// ```
fn paper_text(
    rank: u32,
    title: &str,
    authors: &str,
    upvotes: &Option<String>,
    snippet: &[SnippetPart],
    why: &str,
    links: &[Link],
) -> String {
    let number = format!("{rank}. ");
    let indent = " ".repeat(number.chars().count());
    let mut blocks = vec![wrap(title, TEXT_WIDTH, &number, &indent)];
    let byline = match (authors.is_empty(), upvotes) {
        (false, Some(up)) => format!("{authors} · {up}"),
        (false, None) => authors.to_string(),
        (true, Some(up)) => up.clone(),
        (true, None) => String::new(),
    };
    if !byline.is_empty() {
        blocks.push(wrap(&byline, TEXT_WIDTH, &indent, &indent));
    }
    let mut out = blocks.join("\n");

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
            html.contains(r#"class="paper" style=""#),
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
