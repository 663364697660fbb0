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
    let mut out = String::with_capacity(s.len());
    push_collapsed(s, &mut out);
    out
}

/// [`collapse_whitespace`] onto the end of `out`; says whether `s` had any words. (Every card of
/// every digest goes through here several times, so it builds no intermediate list.)
fn push_collapsed(s: &str, out: &mut String) -> bool {
    // Most text is already collapsed but for its ends: printable ASCII and single spaces is
    // checked in one pass that the compiler vectorises, and copied whole.
    let trimmed = s.trim_matches(' ');
    if !trimmed.is_empty()
        && trimmed
            .bytes()
            .fold(true, |plain, b| plain & (b' '..0x7f).contains(&b))
        && !trimmed.contains("  ")
    {
        out.push_str(trimmed);
        return true;
    }
    let mut any = false;
    for word in words(s) {
        if any {
            out.push(' ');
        }
        out.push_str(word);
        any = true;
    }
    any
}

/// The words of `s`, exactly as `str::split_whitespace` finds them, but looked for byte by byte:
/// every card of every digest is split into words several times (collapsing, wrapping), and
/// the generic splitter was most of the time that took.
pub(crate) fn words(s: &str) -> Words<'_> {
    Words { s, at: 0 }
}

pub(crate) struct Words<'a> {
    s: &'a str,
    at: usize,
}

impl Words<'_> {
    /// The length of the white-space character at byte `i`, or 0 if there is none there.
    fn space_at(&self, i: usize) -> usize {
        match self.s.as_bytes()[i] {
            b'\t'..=b'\r' | b' ' => 1,
            0..0x80 => 0,
            // Inside a character, never at its start.
            0x80..0xc0 => 0,
            _ => self.s[i..]
                .chars()
                .next()
                .filter(|c| c.is_whitespace())
                .map_or(0, char::len_utf8),
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.s.as_bytes();
        let len = bytes.len();
        let mut i = self.at;
        while i < len {
            match self.space_at(i) {
                0 => break,
                n => i += n,
            }
        }
        if i == len {
            self.at = len;
            return None;
        }
        let start = i;
        i += 1;
        while i < len {
            // Printable ASCII is neither white space nor part of a wider character: skip it
            // without looking closer.
            i += bytes[i..]
                .iter()
                .position(|b| !(b'!'..0x80).contains(b))
                .unwrap_or(len - i);
            if i == len || self.space_at(i) != 0 {
                break;
            }
            i += 1;
        }
        self.at = i;
        Some(&self.s[start..i])
    }
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
    let mut out = String::with_capacity(first.len() + text.len() + text.len() / 8);
    out.push_str(first);
    let mut line_len = first.chars().count();
    let rest_len = rest.chars().count();
    let mut line_has_word = false;
    for word in words(text) {
        let word_len = word.chars().count();
        if line_has_word && line_len + 1 + word_len > width {
            out.push('\n');
            out.push_str(rest);
            line_len = rest_len;
            line_has_word = false;
        }
        if line_has_word {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word_len;
        line_has_word = true;
    }
    // Only a text without words leaves a line without one: the bare prefix, which must not
    // leave trailing blanks.
    if !line_has_word {
        out.truncate(out.trim_end().len());
    }
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
    let mut out = String::with_capacity(s.len());
    if s.starts_with(char::is_whitespace) {
        out.push(' ');
    }
    if !push_collapsed(s, &mut out) {
        return " ".to_string();
    }
    if s.ends_with(char::is_whitespace) {
        out.push(' ');
    }
    out
}

/// The URL, normalised, if it may become a link: absolute http or https with a host. Anything
/// else (`javascript:`, `data:`, relative paths, garbage) is refused, whatever the template does.
pub(crate) fn safe_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if is_plain_http_url(raw) {
        return Some(raw.to_string());
    }
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    Some(url.into())
}

/// Whether `s` is an http(s) URL that `url` would parse and give back unchanged, judged without
/// parsing it: a narrow shape (a lower-case host name, no port or user, a path and query of
/// unreserved characters with no dot segments) that every link we sign has. Each card carries
/// two signed feedback links, and parsing them was a tenth of rendering a digest. Anything
/// outside the shape goes to `url`, so the shape only has to be safe, not complete.
fn is_plain_http_url(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let Some((host, path_and_query)) = rest.find('/').map(|i| rest.split_at(i)) else {
        return false;
    };
    // No label may start with a digit, or the `url` crate might read the host as an IPv4
    // address; `xn--` labels are checked as punycode, and upper case is lowered.
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            label.starts_with(|c: char| c.is_ascii_lowercase())
                && !label.ends_with('-')
                && !label.starts_with("xn--")
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !host_ok {
        return false;
    }
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let segments: Vec<&str> = path[1..].split('/').collect();
    let path_ok = segments.iter().enumerate().all(|(i, segment)| {
        (!segment.is_empty() || i == segments.len() - 1)
            && *segment != "."
            && *segment != ".."
            && segment.bytes().all(unreserved)
    });
    path_ok && query.is_none_or(|q| q.bytes().all(|b| unreserved(b) || matches!(b, b'=' | b'&')))
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
    use rand::{Rng, SeedableRng};

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

    /// What `safe_url` gives without its shortcut.
    fn parsed_url(raw: &str) -> Option<String> {
        let url = url::Url::parse(raw.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return None;
        }
        Some(url.into())
    }

    #[test]
    fn the_plain_url_shortcut_gives_what_parsing_gives() {
        // Our own signed links take the shortcut.
        for url in [
            "https://papers.example.org/feedback/MXwyfDB8fDI0MTAuMDAwMDE.aGVsbG8-_w?vote=more",
            "http://localhost/unsubscribe/abc",
            "https://a-b.example.org/base/manage/x.y~z",
            "https://papers.example.org/",
        ] {
            assert!(is_plain_http_url(url), "{url}");
            assert_eq!(safe_url(url).as_deref(), Some(url));
        }
        // Strings made of the pieces `url` treats specially: whatever takes the shortcut must
        // come back from `url` unchanged. Seeded, so a failure repeats.
        let pieces = [
            "http",
            "https",
            "HTTPS",
            "://",
            ":/",
            "//",
            "/",
            "\\",
            "a",
            "B",
            "z9",
            "1",
            "0x1f",
            "xn--",
            "-",
            "_",
            "~",
            ".",
            "..",
            "%2e",
            "%",
            "?",
            "=",
            "&",
            "#",
            ":",
            "80",
            "@",
            " ",
            "\t",
            "\u{0}",
            "é",
            "'",
            "\"",
            "<",
            "{",
            "example.org",
            "/x/",
            "/./",
            "/../",
        ];
        // Seeded, so every run draws the same inputs.
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x2545_f491_4f6c_dd1d_u64);
        let mut next = move |n: usize| rng.gen_range(0..n);
        let mut plain = 0;
        let host_pieces = [
            "a", "b-c", "x9", "example", ".org", ".", "-", "1", ".2", "0x1f", "xn--a", "B", "é",
            "..", ":", "@", "80",
        ];
        for _ in 0..200_000 {
            let mut url = ["https://", "http://", "", "HTTP://"][next(4)].to_string();
            for _ in 0..1 + next(3) {
                url.push_str(host_pieces[next(host_pieces.len())]);
            }
            if next(4) != 0 {
                url.push('/');
            }
            for _ in 0..next(8) {
                url.push_str(pieces[next(pieces.len())]);
            }
            if is_plain_http_url(&url) {
                plain += 1;
                assert_eq!(parsed_url(&url).as_deref(), Some(url.as_str()), "{url:?}");
            }
        }
        assert!(plain > 1000, "only {plain} strings took the shortcut");
    }

    #[test]
    fn words_and_collapsing_agree_with_split_whitespace() {
        let pieces = [
            " ", "  ", "\t", "\n", "\r\n", "\u{b}", "\u{c}", "\u{85}", "\u{a0}", "\u{2003}",
            "\u{3000}", "a", "bc", "é", "ü", "日本", "\u{200b}", "𝔸", "-", "\u{0}",
        ];
        // Seeded, so every run draws the same inputs.
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15_u64);
        let mut next = move |n: usize| rng.gen_range(0..n);
        for _ in 0..50_000 {
            let s: String = (0..next(12)).map(|_| pieces[next(pieces.len())]).collect();
            let expected: Vec<&str> = s.split_whitespace().collect();
            assert_eq!(words(&s).collect::<Vec<_>>(), expected, "{s:?}");
            assert_eq!(collapse_whitespace(&s), expected.join(" "), "{s:?}");
        }
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
