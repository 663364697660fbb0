//! The digest's tera templates: loading them with the stylesheet inlined once, cutting the
//! page into head, card and foot for the card cache, and the HTML escaping they use.
//!
//! Not for: what the templates are given (`page`), or the cache of rendered cards (`cards`).

use super::render::RenderError;

pub(super) const HTML_TEMPLATE: &str = "email/digest.html";
pub(super) const TEXT_TEMPLATE: &str = "email/digest.txt";
/// The HTML page before and after the cards, which `DigestRenderer::render` puts in between.
pub(super) const PAGE_HEAD_TEMPLATE: &str = "email/digest-head.html";
pub(super) const PAGE_FOOT_TEMPLATE: &str = "email/digest-foot.html";
/// One paper's card, cut out of the HTML template between [`CARD_START`] and [`CARD_END`].
pub(super) const CARD_TEMPLATE: &str = "email/digest-card.html";
const CARD_START: &str = "<!--paper-->";
const CARD_END: &str = "<!--/paper-->";
/// The page template's loop around the card; the head and foot templates each keep their half
/// of it, so that tera trims the white space around the cards exactly as in the whole page.
const CARDS_LOOP_START: &str = "{%- for paper in papers %}";
const CARDS_LOOP_END: &str = "{%- endfor %}";
const STYLESHEET: &str = include_str!("../../templates/email/style.css");

/// The digest's templates, parsed: the HTML page with the stylesheet inlined once, cut into
/// the whole page, its head and foot around the cards, and one card; and the text part.
pub(super) fn load() -> Result<tera::Tera, RenderError> {
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
    Ok(tera)
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
pub(super) fn push_escaped(input: &str, out: &mut String) {
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

    #[test]
    fn line_breaks_go_inside_tags_only() {
        let html = r#"<p class="a" style="x: 1">a style="not an attribute" <b title='q style="z"' style="y">b</b></p>"#;
        assert_eq!(
            styles_on_their_own_lines(html),
            "<p class=\"a\"\nstyle=\"x: 1\">a style=\"not an attribute\" <b title='q style=\"z\"'\nstyle=\"y\">b</b></p>"
        );
    }
}
