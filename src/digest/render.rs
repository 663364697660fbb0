//! Renders a [`DigestView`] into the subject, plain-text part and HTML part of the digest email.
//!
//! The templates and stylesheet are compiled into the binary, so a deployed daemon needs no
//! template directory (`templates`). This module decides what the email says and looks like;
//! it does not build MIME messages or headers (that is `mail`), and it never puts subscriber
//! text in the subject, which is the one part of its output that becomes a header. What the
//! templates are given is built in `page`; the cache of rendered cards is `cards`.

use super::DigestView;
use super::cards::{CardCache, Highlight};
use super::page::{
    PREHEADER_TITLES, Page, PaperCard, PaperParts, PaperTextFixed, SubscriberParts, TextPaper,
    paper_text, tidy_text,
};
use super::templates::{
    CARD_TEMPLATE, HTML_TEMPLATE, PAGE_FOOT_TEMPLATE, PAGE_HEAD_TEMPLATE, TEXT_TEMPLATE,
};
use serde::Serialize;
use std::sync::Mutex;

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
    pub(super) fn template(template: &'static str, err: tera::Error) -> Self {
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
    pub(super) tera: tera::Tera,
    /// The markup tera puts around a highlighted snippet run (the inlined `<mark>`).
    pub(super) highlight: Highlight,
    /// Keyed by a hash of the paper's id and title; each entry keeps its full key to compare.
    pub(super) cards: Mutex<CardCache>,
}

impl std::fmt::Debug for DigestRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestRenderer").finish_non_exhaustive()
    }
}

impl DigestRenderer {
    pub fn new() -> Result<Self, RenderError> {
        let mut renderer = DigestRenderer {
            tera: super::templates::load()?,
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
            let mine = SubscriberParts::of(paper);
            let cached = self.card(paper, &mine)?;
            self.push_card(&cached, &mine, &mut cards_html)?;
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
                let (parts, mine) = (PaperParts::of(p), SubscriberParts::of(p));
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

    pub(super) fn render_card<C: Serialize>(&self, card: &C) -> Result<String, RenderError> {
        let mut context = tera::Context::new();
        context.insert("paper", card);
        self.render_template(CARD_TEMPLATE, &context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::cards::*;
    use crate::digest::page::TEXT_WIDTH;
    use crate::digest::{DigestPaper, SnippetPart};
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
