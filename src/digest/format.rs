//! Small text helpers the digest templates lean on: shortening author lists, wrapping prose for
//! the plain-text part, flattening snippets, and deciding which URLs may become links.
//!
//! They are pure functions over strings so they can be tested without templates. Escaping is not
//! done here: tera's autoescape does it for the HTML part, and the text part needs none.

use super::SnippetPart;

/// How many names a shortened author list keeps before "and N more".
const AUTHORS_SHOWN: usize = 3;

/// Collapses every run of whitespace (including the hard line breaks sources put in titles and
/// abstracts) into one space, and trims the ends.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "A", "A and B", "A, B and C", "A, B, C and D", then "A, B, C and 12 more".
///
/// Four names are shown in full because "A, B, C and 1 more" saves nothing.
pub(crate) fn shorten_authors(authors: &[String]) -> String {
    let names: Vec<String> = authors
        .iter()
        .map(|a| collapse_whitespace(a))
        .filter(|a| !a.is_empty())
        .collect();
    match names.len() {
        0 => String::new(),
        1 => names[0].clone(),
        n if n <= AUTHORS_SHOWN + 1 => {
            format!("{} and {}", names[..n - 1].join(", "), names[n - 1])
        }
        n => format!(
            "{} and {} more",
            names[..AUTHORS_SHOWN].join(", "),
            n - AUTHORS_SHOWN
        ),
    }
}

/// Greedy word wrap to `width` columns, counting the prefixes: `first` starts the first line and
/// `rest` every following one (a hanging indent). Whitespace in `text` is collapsed first.
///
/// A word longer than the line (a URL, a long identifier) gets a line of its own rather than
/// being cut, because a cut URL no longer works.
pub(crate) fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = String::from(first);
    let mut line_len = first.chars().count();
    let mut line_has_word = false;
    for word in text.split_whitespace() {
        let word_len = word.chars().count();
        if line_has_word && line_len + 1 + word_len > width {
            out.push_str(&line);
            out.push('\n');
            line = String::from(rest);
            line_len = rest.chars().count();
            line_has_word = false;
        }
        if line_has_word {
            line.push(' ');
            line_len += 1;
        }
        line.push_str(word);
        line_len += word_len;
        line_has_word = true;
    }
    out.push_str(line.trim_end());
    out
}

/// The snippet as one plain string, with highlighted runs in `*asterisks*`: the convention
/// plain-text mail readers already know for emphasis.
pub(crate) fn snippet_plain(parts: &[SnippetPart]) -> String {
    let mut joined = String::new();
    for part in parts {
        let core = part.text.trim();
        if part.highlighted && !core.is_empty() {
            // Keep the spaces around the run outside the asterisks, so "a *b* c" and not "a* b *c".
            let lead = &part.text[..part.text.len() - part.text.trim_start().len()];
            let trail = &part.text[part.text.trim_end().len()..];
            joined.push_str(lead);
            joined.push('*');
            joined.push_str(&collapse_whitespace(core));
            joined.push('*');
            joined.push_str(trail);
        } else {
            joined.push_str(&part.text);
        }
    }
    collapse_whitespace(&joined)
}

/// The snippet parts with whitespace runs collapsed, the space between two parts kept, empty
/// parts dropped and the whole trimmed: abstracts arrive hard-wrapped at ~80 columns.
pub(crate) fn tidy_snippet(parts: &[SnippetPart]) -> Vec<SnippetPart> {
    let mut tidy: Vec<SnippetPart> = parts
        .iter()
        .filter(|p| !p.text.is_empty())
        .map(|p| SnippetPart {
            text: collapse_keeping_edges(&p.text),
            highlighted: p.highlighted,
        })
        .collect();
    if let Some(first) = tidy.first_mut() {
        first.text = first.text.trim_start().to_string();
    }
    if let Some(last) = tidy.last_mut() {
        last.text = last.text.trim_end().to_string();
    }
    tidy.retain(|p| !p.text.is_empty());
    tidy
}

fn collapse_keeping_edges(s: &str) -> String {
    let core = collapse_whitespace(s);
    if core.is_empty() {
        return " ".to_string();
    }
    let lead = if s.starts_with(char::is_whitespace) {
        " "
    } else {
        ""
    };
    let trail = if s.ends_with(char::is_whitespace) {
        " "
    } else {
        ""
    };
    format!("{lead}{core}{trail}")
}

/// The URL, normalised, if it may become a link: absolute http or https with a host. Anything
/// else (`javascript:`, `data:`, relative paths, garbage) is refused, whatever the template does.
pub(crate) fn safe_url(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    Some(url.into())
}

/// What to call the abstract link: most are arXiv pages, but feeds may point elsewhere.
pub(crate) fn abstract_label(url: &str) -> &'static str {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    match host.as_deref() {
        Some(h) if h == "arxiv.org" || h.ends_with(".arxiv.org") => "arXiv",
        _ => "Abstract",
    }
}

/// "1 new paper", "3 new papers", "no new papers".
pub(crate) fn count_phrase(n: usize) -> String {
    match n {
        0 => "no new papers".to_string(),
        1 => "1 new paper".to_string(),
        n => format!("{n} new papers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("Author {i}")).collect()
    }

    fn part(text: &str, highlighted: bool) -> SnippetPart {
        SnippetPart {
            text: text.to_string(),
            highlighted,
        }
    }

    #[test]
    fn short_author_lists_are_shown_in_full() {
        assert_eq!(shorten_authors(&[]), "");
        assert_eq!(shorten_authors(&names(1)), "Author 1");
        assert_eq!(shorten_authors(&names(2)), "Author 1 and Author 2");
        assert_eq!(
            shorten_authors(&names(3)),
            "Author 1, Author 2 and Author 3"
        );
        assert_eq!(
            shorten_authors(&names(4)),
            "Author 1, Author 2, Author 3 and Author 4"
        );
    }

    #[test]
    fn long_author_lists_keep_three_and_count_the_rest() {
        assert_eq!(
            shorten_authors(&names(5)),
            "Author 1, Author 2, Author 3 and 2 more"
        );
        assert_eq!(
            shorten_authors(&names(15)),
            "Author 1, Author 2, Author 3 and 12 more"
        );
    }

    #[test]
    fn blank_author_names_are_skipped_and_spaces_collapsed() {
        let authors = vec![
            " Ada\n Lovelace ".to_string(),
            "  ".to_string(),
            "Alan Turing".to_string(),
        ];
        assert_eq!(shorten_authors(&authors), "Ada Lovelace and Alan Turing");
    }

    #[test]
    fn wrap_respects_width_and_hanging_indent() {
        let text = "Contrastive loss is a powerful approach for representation learning, \
                    where larger batch sizes enhance performance by providing more negatives.";
        let wrapped = wrap(text, 40, "1. ", "   ");
        for line in wrapped.lines() {
            assert!(line.chars().count() <= 40, "too long: {line:?}");
        }
        let lines: Vec<&str> = wrapped.lines().collect();
        assert!(lines[0].starts_with("1. Contrastive"));
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.starts_with("   ") && !l.starts_with("    "))
        );
        assert_eq!(collapse_whitespace(&wrapped.replace("1. ", "")), text);
    }

    #[test]
    fn wrap_never_cuts_a_long_word() {
        let url = format!("https://example.org/{}", "a".repeat(100));
        let wrapped = wrap(&format!("see {url} now"), 72, "", "");
        assert_eq!(wrapped, format!("see\n{url}\nnow"));
    }

    #[test]
    fn wrap_of_nothing_is_the_trimmed_prefix() {
        assert_eq!(wrap("   ", 72, "   ", "   "), "");
        assert_eq!(wrap("", 72, "Why:", ""), "Why:");
    }

    #[test]
    fn wrap_counts_characters_not_bytes() {
        let text = "é".repeat(10) + " " + &"ü".repeat(10);
        assert_eq!(wrap(&text, 21, "", ""), text);
        assert_eq!(wrap(&text, 20, "", ""), text.replace(' ', "\n"));
    }

    #[test]
    fn plain_snippet_marks_highlights_with_asterisks() {
        let parts = [
            part("We study ", false),
            part("protein\nfolding", true),
            part(" with ", false),
            part(" diffusion ", true),
            part("models.", false),
        ];
        assert_eq!(
            snippet_plain(&parts),
            "We study *protein folding* with *diffusion* models."
        );
    }

    #[test]
    fn tidy_snippet_collapses_but_keeps_gaps_between_parts() {
        let parts = [
            part("  Large\n  batch ", false),
            part("contrastive", true),
            part("", false),
            part("\nloss.  ", false),
        ];
        let tidy = tidy_snippet(&parts);
        let texts: Vec<&str> = tidy.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["Large batch ", "contrastive", " loss."]);
        assert!(tidy[1].highlighted && !tidy[0].highlighted);
    }

    #[test]
    fn only_http_and_https_urls_are_links() {
        assert_eq!(
            safe_url(" https://arxiv.org/abs/2410.17243 ").as_deref(),
            Some("https://arxiv.org/abs/2410.17243")
        );
        assert!(safe_url("http://127.0.0.1:8080/manage/abc").is_some());
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "java\nscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "/relative/path",
            "//evil.example/x",
            "ftp://example.org/file",
            "",
        ] {
            assert_eq!(safe_url(bad), None, "{bad:?} must not become a link");
        }
    }

    #[test]
    fn abstract_links_are_called_arxiv_only_on_arxiv() {
        assert_eq!(abstract_label("https://arxiv.org/abs/2410.17243"), "arXiv");
        assert_eq!(abstract_label("https://export.arxiv.org/abs/1"), "arXiv");
        assert_eq!(abstract_label("https://notarxiv.org/abs/1"), "Abstract");
        assert_eq!(abstract_label("https://example.org/paper"), "Abstract");
    }

    #[test]
    fn count_phrase_is_singular_for_one() {
        assert_eq!(count_phrase(0), "no new papers");
        assert_eq!(count_phrase(1), "1 new paper");
        assert_eq!(count_phrase(3), "3 new papers");
    }
}
