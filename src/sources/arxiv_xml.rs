//! Reads arXiv's XML into papers: the daily listing (RSS 2.0 at `/rss/…`, Atom at `/atom/…`),
//! the API's Atom (`/api/query`), classic and 2025 layouts alike, and OAI-PMH `ListRecords`
//! pages in the `arXiv` and `oai_dc` metadata formats ([`parse_oai`]).
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
use chrono::{DateTime, NaiveDate, Utc};
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

    Ok(ArxivEntry {
        paper: arxiv_paper(
            id,
            title,
            abstract_text,
            authors,
            categories,
            published_at,
            arxiv,
        ),
        version,
        announce,
    })
}

/// One page of an OAI-PMH `ListRecords` answer.
#[derive(Debug, Default)]
pub struct OaiPage {
    pub entries: Vec<OaiEntry>,
    pub skipped: Vec<SkippedItem>,
    /// Deleted records (`<header status="deleted">`): withdrawn from the repository, not papers.
    pub deleted: usize,
    /// Where the list goes on; `None` on the last page (the token element is empty or absent).
    pub resumption_token: Option<String>,
    /// `completeListSize` of the token, when the server gives it.
    pub complete_list_size: Option<u64>,
}

/// One OAI-PMH record read into a paper.
#[derive(Clone, Debug, PartialEq)]
pub struct OaiEntry {
    pub paper: Paper,
    /// When the first version was submitted (`arXiv`: `<created>`; `oai_dc`: the first
    /// `dc:date`).
    pub created: Option<NaiveDate>,
    /// Whether the record is about a later version than the first (`arXiv`: an `<updated>`
    /// date; `oai_dc`: more than one `dc:date`). Such a record is a revision, never a new paper.
    pub revised: bool,
    /// The record's datestamp: when arXiv last changed its metadata.
    pub datestamp: Option<NaiveDate>,
}

/// Parses an OAI-PMH `ListRecords` page whose records are in the `arXiv` or the `oai_dc`
/// metadata format (by element name, any namespace prefix). OAI-PMH's `noRecordsMatch` is an
/// empty page (a day without announcements); any other OAI-PMH error fails the page with the
/// server's code and message. `page` only labels skipped items.
pub fn parse_oai(xml: &str, page: u32) -> Result<OaiPage, String> {
    let doc = Document::parse(xml).map_err(|e| format!("not well-formed XML ({e})"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "OAI-PMH" {
        return Err(format!(
            "the root element is <{}>, not an OAI-PMH answer <OAI-PMH>",
            root.tag_name().name()
        ));
    }
    if let Some(error) = child(root, "error") {
        let code = error.attribute("code").unwrap_or("unknown");
        if code == "noRecordsMatch" {
            return Ok(OaiPage::default());
        }
        return Err(format!(
            "the OAI-PMH server answered error `{code}`: {}",
            normalize_whitespace(&text(error))
        ));
    }
    let list = child(root, "ListRecords").ok_or("an OAI-PMH answer without <ListRecords>")?;
    let mut out = OaiPage::default();
    let records = list
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "record");
    for (position, record) in records.enumerate() {
        let header = child(record, "header");
        if header.and_then(|h| h.attribute("status")) == Some("deleted") {
            out.deleted += 1;
            continue;
        }
        match oai_record(record) {
            Ok(e) => out.entries.push(e),
            Err(reason) => out.skipped.push(SkippedItem {
                page,
                position,
                reason,
            }),
        }
    }
    if let Some(token) = child(list, "resumptionToken") {
        let t = text(token).trim().to_string();
        out.resumption_token = (!t.is_empty()).then_some(t);
        out.complete_list_size = token
            .attribute("completeListSize")
            .and_then(|n| n.trim().parse().ok());
    }
    Ok(out)
}

fn oai_record(record: Node) -> Result<OaiEntry, String> {
    let header = child(record, "header").ok_or("a record without a <header>")?;
    let identifier = child(header, "identifier").map(text).unwrap_or_default();
    let datestamp = child(header, "datestamp").and_then(|n| parse_day(&text(n)));
    let metadata = child(record, "metadata")
        .and_then(|m| m.children().find(|n| n.is_element()))
        .ok_or_else(|| format!("{}: a record without <metadata>", identifier.trim()))?;
    let mut entry = match metadata.tag_name().name() {
        "arXiv" => oai_arxiv_format(metadata, &identifier)?,
        "dc" => oai_dc_format(metadata, &identifier)?,
        other => {
            return Err(format!(
                "{}: metadata format <{other}> is neither `arXiv` nor `oai_dc`",
                identifier.trim()
            ));
        }
    };
    entry.datestamp = datestamp;
    Ok(entry)
}

/// The id from the record's own `<id>` or, failing that, the header's `oai:arXiv.org:<id>`.
fn oai_id(own: Option<String>, identifier: &str) -> Result<PaperId, String> {
    let raw = own.unwrap_or_else(|| {
        identifier
            .trim()
            .trim_start_matches("oai:arXiv.org:")
            .into()
    });
    PaperId::parse_arxiv(raw.trim()).map_err(|e| format!("no arXiv id ({e})"))
}

/// `metadataPrefix=arXiv`: authors split into key name and fore names, categories as codes.
fn oai_arxiv_format(m: Node, identifier: &str) -> Result<OaiEntry, String> {
    let id = oai_id(child(m, "id").map(text), identifier)?;
    let title = child(m, "title")
        .map(|n| normalize_whitespace(&text(n)))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{id}: no title"))?;
    let abstract_text = child(m, "abstract")
        .map(|n| normalize_whitespace(&text(n)))
        .unwrap_or_default();
    let authors: Vec<String> = child(m, "authors")
        .map(|a| {
            a.children()
                .filter(|n| n.is_element() && n.tag_name().name() == "author")
                .map(|n| {
                    let part = |name| child(n, name).map(|p| normalize_whitespace(&text(p)));
                    [part("forenames"), part("keyname"), part("suffix")]
                        .into_iter()
                        .flatten()
                        .filter(|p| !p.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // Primary first, as arXiv lists them.
    let mut categories: Vec<String> = Vec::new();
    for c in child(m, "categories")
        .map(text)
        .unwrap_or_default()
        .split_whitespace()
    {
        if is_arxiv_category(c) && !categories.iter().any(|k| k == c) {
            categories.push(c.to_string());
        }
    }
    let optional = |name: &str| {
        child(m, name)
            .map(|n| normalize_whitespace(&text(n)))
            .filter(|s| !s.is_empty())
    };
    let created = child(m, "created").and_then(|n| parse_day(&text(n)));
    let arxiv = ArxivMeta {
        doi: optional("doi"),
        comment: optional("comments"),
        journal_ref: optional("journal-ref"),
    };
    Ok(OaiEntry {
        paper: arxiv_paper(
            id,
            title,
            abstract_text,
            authors,
            categories,
            start_of(created),
            arxiv,
        ),
        created,
        revised: child(m, "updated").is_some(),
        datestamp: None,
    })
}

/// `metadataPrefix=oai_dc`: Dublin Core. Creators are "Last, First"; subjects are prose
/// ("Computer Science - Information Theory"), not category codes, so the paper has none; the
/// authors' comment is the `dc:description` that starts with "Comment:".
fn oai_dc_format(m: Node, identifier: &str) -> Result<OaiEntry, String> {
    let all = |name: &str| -> Vec<String> {
        m.children()
            .filter(|n| n.is_element() && n.tag_name().name() == name)
            .map(|n| normalize_whitespace(&text(n)))
            .filter(|s| !s.is_empty())
            .collect()
    };
    let identifiers = all("identifier");
    let own_id = identifiers
        .iter()
        .find(|i| i.contains("arxiv.org/abs/"))
        .map(|i| i.rsplit("/abs/").next().unwrap_or_default().to_string());
    let id = oai_id(own_id, identifier)?;
    let title = all("title")
        .into_iter()
        .next()
        .ok_or_else(|| format!("{id}: no title"))?;
    let authors = all("creator")
        .into_iter()
        .map(|c| match c.split_once(',') {
            Some((last, first)) if !first.trim().is_empty() => {
                format!("{} {}", first.trim(), last.trim())
            }
            _ => c,
        })
        .collect();
    let descriptions = all("description");
    let comment = descriptions
        .iter()
        .find_map(|d| d.strip_prefix("Comment:"))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let abstract_text = descriptions
        .iter()
        .find(|d| !d.starts_with("Comment:"))
        .cloned()
        .unwrap_or_default();
    let dates: Vec<NaiveDate> = all("date").iter().filter_map(|d| parse_day(d)).collect();
    let doi = identifiers
        .iter()
        .find_map(|i| i.strip_prefix("doi:"))
        .map(|d| d.trim().to_string());
    let arxiv = ArxivMeta {
        doi,
        comment,
        journal_ref: None,
    };
    let created = dates.iter().min().copied();
    Ok(OaiEntry {
        paper: arxiv_paper(
            id,
            title,
            abstract_text,
            authors,
            Vec::new(),
            start_of(created),
            arxiv,
        ),
        created,
        revised: dates.len() > 1,
        datestamp: None,
    })
}

/// A paper as arXiv describes it, with arXiv's links and a code link found in the comment or
/// the abstract; upvotes come from Hugging Face only.
fn arxiv_paper(
    id: PaperId,
    title: String,
    abstract_text: String,
    authors: Vec<String>,
    categories: Vec<String>,
    published_at: Option<DateTime<Utc>>,
    arxiv: ArxivMeta,
) -> Paper {
    let mut links = Paper::arxiv_links(&id);
    links.code_url = find_code_url(&[arxiv.comment.as_deref(), Some(&abstract_text)]);
    Paper {
        id,
        title,
        abstract_text,
        authors,
        categories,
        published_at,
        upvotes: None,
        links,
        arxiv,
    }
}

/// Midnight UTC of `day`.
fn start_of(day: Option<NaiveDate>) -> Option<DateTime<Utc>> {
    day.and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// `2013-03-26`, or the date part of `2013-03-26T10:00:00Z`.
fn parse_day(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    s.get(..10).unwrap_or(s).parse().ok()
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
