//! Reads arXiv's XML into papers: the daily listing (RSS 2.0 at `/rss/…`, Atom at `/atom/…`)
//! and the API's Atom (`/api/query`), classic and 2025 layouts alike.
//!
//! Everything is read by element name, never by position: the API changed its element order in
//! 2025, and the listing and the API name the same things differently (`guid` or `id`,
//! `description` or `summary`, `dc:creator` or `author/name`, `arxiv:DOI` or `arxiv:doi`). An item
//! that cannot be read is skipped with a reason; only a body that is not XML, or not a feed,
//! fails the whole page.
//!
//! It is not for HTTP (see `arxiv_api` and `arxiv_rss`) or for deciding what an announcement
//! means for the store (the listing source does that with [`AnnounceType`]).

use super::SkippedItem;
use crate::model::{ArxivMeta, Paper, PaperId, normalize_whitespace};
use chrono::{DateTime, Utc};
use roxmltree::{Document, Node};

/// What the daily listing says happened to a paper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnounceType {
    /// First announced today in one of the categories.
    New,
    /// Announced today in another category and cross-listed into one of ours.
    Cross,
    /// A new version of a paper announced before.
    Replace,
    /// A new version of a paper cross-listed before.
    ReplaceCross,
    /// Anything else arXiv may add; treated like a replacement (never new).
    Other(String),
}

impl AnnounceType {
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "new" => AnnounceType::New,
            "cross" => AnnounceType::Cross,
            "replace" => AnnounceType::Replace,
            "replace-cross" => AnnounceType::ReplaceCross,
            other => AnnounceType::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            AnnounceType::New => "new",
            AnnounceType::Cross => "cross",
            AnnounceType::Replace => "replace",
            AnnounceType::ReplaceCross => "replace-cross",
            AnnounceType::Other(s) => s,
        }
    }
}

/// One paper as arXiv lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ArxivEntry {
    pub paper: Paper,
    /// The version the entry is about (`v3`), when the id carried one.
    pub version: Option<u32>,
    /// Only the daily listing has one.
    pub announce: Option<AnnounceType>,
}

/// One page of arXiv XML.
#[derive(Debug, Default)]
pub struct ArxivPage {
    pub entries: Vec<ArxivEntry>,
    pub skipped: Vec<SkippedItem>,
    /// `opensearch:totalResults` of an API answer: how many results the query has in all.
    pub total_results: Option<u64>,
}

/// Parses a listing (RSS or Atom) or an API answer. `page` only labels skipped items.
pub fn parse(xml: &str, page: u32) -> Result<ArxivPage, String> {
    let doc = Document::parse(xml).map_err(|e| format!("not well-formed XML ({e})"))?;
    let root = doc.root_element();
    let items: Vec<Node> = match root.tag_name().name() {
        "rss" => child(root, "channel")
            .ok_or("an RSS document without a <channel>")?
            .children()
            .filter(|n| n.has_tag_name("item"))
            .collect(),
        "feed" => root
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "entry")
            .collect(),
        other => {
            return Err(format!(
                "the root element is <{other}>, not an RSS <rss> or Atom <feed>"
            ));
        }
    };
    let mut out = ArxivPage {
        total_results: child(root, "totalResults")
            .map(text)
            .and_then(|t| t.trim().parse().ok()),
        ..ArxivPage::default()
    };
    for (position, item) in items.into_iter().enumerate() {
        // The API reports a bad query as a feed with one entry whose id is an error URL.
        if let Some(id) = child(item, "id").map(text)
            && id.contains("arxiv.org/api/errors")
        {
            let why = child(item, "summary")
                .map(|n| normalize_whitespace(&text(n)))
                .unwrap_or_default();
            return Err(format!("the arXiv API reported an error: {why}"));
        }
        match entry(item) {
            Ok(e) => out.entries.push(e),
            Err(reason) => out.skipped.push(SkippedItem {
                page,
                position,
                reason,
            }),
        }
    }
    Ok(out)
}

fn entry(item: Node) -> Result<ArxivEntry, String> {
    // Where the id is: Atom `id` (API: an abs URL; listing: `oai:arXiv.org:…`), RSS `guid`, or
    // the abstract link.
    let candidates: Vec<String> = ["id", "guid"]
        .iter()
        .filter_map(|name| child(item, name).map(text))
        .chain(links(item).into_iter().map(|(_, href)| href))
        .collect();
    let raw_id = candidates
        .iter()
        .map(|c| c.trim().trim_start_matches("oai:arXiv.org:").to_string())
        .find(|c| PaperId::parse_arxiv(c).is_ok())
        .ok_or_else(|| match candidates.first() {
            Some(c) => format!("no arXiv id (id `{}`)", c.trim()),
            None => "no id, guid or link".to_string(),
        })?;
    let id = PaperId::parse_arxiv(&raw_id).map_err(|e| e.to_string())?;
    let version = version_of(&raw_id);

    let title = child(item, "title")
        .map(|n| normalize_whitespace(&text(n)))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{id}: no title"))?;

    let body = child(item, "summary")
        .or_else(|| child(item, "description"))
        .map(text)
        .unwrap_or_default();
    // The listing prefixes the abstract: "arXiv:2609.26811v1 Announce Type: new \nAbstract: …".
    let (prefix, abstract_raw) = match body.split_once("Abstract:") {
        Some((head, rest)) if head.trim_start().starts_with("arXiv:") => (head, rest),
        _ => ("", body.as_str()),
    };
    let abstract_text = normalize_whitespace(abstract_raw);

    let announce = child(item, "announce_type")
        .map(|n| AnnounceType::parse(&text(n)))
        .or_else(|| {
            prefix
                .split_once("Announce Type:")
                .map(|(_, t)| AnnounceType::parse(t))
        });

    let mut authors: Vec<String> = item
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "author")
        .filter_map(|a| child(a, "name").map(|n| normalize_whitespace(&text(n))))
        .filter(|a| !a.is_empty())
        .collect();
    if authors.is_empty() {
        // The listing: one `dc:creator` with the names joined by commas.
        for c in item
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "creator")
        {
            authors.extend(
                text(c)
                    .split(',')
                    .map(normalize_whitespace)
                    .filter(|a| !a.is_empty()),
            );
        }
    }

    let mut categories: Vec<String> = Vec::new();
    let mut add_category = |c: String| {
        let c = c.trim().to_string();
        if is_arxiv_category(&c) && !categories.contains(&c) {
            categories.push(c);
        }
    };
    if let Some(primary) = child(item, "primary_category").and_then(|n| n.attribute("term")) {
        add_category(primary.to_string());
    }
    for c in item
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "category")
    {
        // Atom carries the category in `term`, RSS as text.
        add_category(
            c.attribute("term")
                .map(str::to_string)
                .unwrap_or_else(|| text(c)),
        );
    }

    let published_at = child(item, "published")
        .and_then(|n| DateTime::parse_from_rfc3339(text(n).trim()).ok())
        .or_else(|| {
            child(item, "pubDate").and_then(|n| DateTime::parse_from_rfc2822(text(n).trim()).ok())
        })
        .map(|t| t.with_timezone(&Utc));

    let optional = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| child(item, name))
            .map(|n| normalize_whitespace(&text(n)))
            .filter(|s| !s.is_empty())
    };
    let arxiv = ArxivMeta {
        doi: optional(&["doi", "DOI"]),
        comment: optional(&["comment"]),
        journal_ref: optional(&["journal_ref", "journal_reference"]),
    };

    let mut links = Paper::arxiv_links(&id);
    links.code_url = find_code_url(&[arxiv.comment.as_deref(), Some(&abstract_text)]);

    Ok(ArxivEntry {
        paper: Paper {
            id,
            title,
            abstract_text,
            authors,
            categories,
            published_at,
            upvotes: None,
            links,
            arxiv,
        },
        version,
        announce,
    })
}

/// The first element child named `name` (any namespace).
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// All the text inside a node (CDATA included).
fn text(node: Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// (rel, href) of the entry's links: Atom `<link href>` or RSS `<link>text</link>`.
fn links(item: Node) -> Vec<(String, String)> {
    item.children()
        .filter(|n| n.is_element() && n.tag_name().name() == "link")
        .filter_map(|n| {
            let href = n
                .attribute("href")
                .map(str::to_string)
                .unwrap_or_else(|| text(n));
            let href = href.trim().to_string();
            (!href.is_empty()).then(|| (n.attribute("rel").unwrap_or("alternate").into(), href))
        })
        .collect()
}

/// `3` from `2009.13987v3`.
fn version_of(raw: &str) -> Option<u32> {
    let pos = raw.rfind('v')?;
    raw[pos + 1..].parse().ok()
}

/// arXiv categories (`cs.LG`, `hep-th`, `physics.soc-ph`), not the MSC or ACM classes the API
/// also lists as categories (`03B70, 68Q99`, `F.4.1; K.2`).
fn is_arxiv_category(c: &str) -> bool {
    let (archive, sub) = match c.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (c, None),
    };
    let archive_ok = !archive.is_empty()
        && archive.len() > 1
        && archive.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    let sub_ok = sub.is_none_or(|s| {
        !s.is_empty() && s.len() > 1 && s.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
    });
    archive_ok && sub_ok
}

/// A code repository link in the authors' comment or the abstract ("Code: github.com/…").
fn find_code_url(texts: &[Option<&str>]) -> Option<String> {
    for t in texts.iter().flatten() {
        for word in t.split_whitespace() {
            let w = word.trim_matches(|c: char| matches!(c, '.' | ',' | ';' | ')' | '(' | '"'));
            let w = w
                .strip_prefix("https://")
                .or_else(|| w.strip_prefix("http://"))
                .unwrap_or(w);
            if (w.starts_with("github.com/") || w.starts_with("gitlab.com/"))
                && w.split('/').filter(|s| !s.is_empty()).count() >= 3
            {
                let url = url::Url::parse(&format!("https://{w}")).ok()?;
                return Some(url.into());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arxiv_categories_and_not_msc_or_acm_classes() {
        for ok in [
            "cs.LG",
            "hep-th",
            "physics.soc-ph",
            "quant-ph",
            "stat.ML",
            "q-bio.NC",
        ] {
            assert!(is_arxiv_category(ok), "{ok}");
        }
        for bad in ["03B70, 68Q99", "F.4.1; F.4.m; K.2", "", "H.2.8", "62A01"] {
            assert!(!is_arxiv_category(bad), "{bad}");
        }
    }

    #[test]
    fn code_links_from_comments() {
        assert_eq!(
            find_code_url(&[Some("12 pages. Code: https://github.com/a/b.")]).as_deref(),
            Some("https://github.com/a/b")
        );
        assert_eq!(find_code_url(&[Some("see github.com/a")]), None);
        assert_eq!(find_code_url(&[None, Some("nothing here")]), None);
    }

    #[test]
    fn a_broken_item_is_skipped_not_the_page() {
        let xml = r#"<rss><channel>
            <item><title>No id</title></item>
            <item><title>Fine</title><link>https://arxiv.org/abs/2609.26811</link>
              <description>arXiv:2609.26811v2 Announce Type: replace
Abstract: Text
  here.</description></item>
        </channel></rss>"#;
        let page = parse(xml, 0).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.skipped.len(), 1);
        assert_eq!(page.skipped[0].position, 0);
        let e = &page.entries[0];
        assert_eq!(e.paper.abstract_text, "Text here.");
        assert_eq!(e.announce, Some(AnnounceType::Replace));
    }

    #[test]
    fn not_xml_or_not_a_feed_fails_the_page() {
        assert!(
            parse("<rss><channel><item>", 0)
                .unwrap_err()
                .contains("XML")
        );
        assert!(parse("<html/>", 0).unwrap_err().contains("<html>"));
    }

    #[test]
    fn an_api_error_entry_is_an_error() {
        let xml = r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry>
            <id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345</id>
            <title>Error</title><summary>incorrect id format for 1234.12345</summary>
        </entry></feed>"#;
        let err = parse(xml, 0).unwrap_err();
        assert!(err.contains("incorrect id format"), "{err}");
    }
}
