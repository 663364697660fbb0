//! Any RSS or Atom feed (`[[sources.feeds]]`): bioRxiv, a journal's table of contents, a lab's
//! blog. Parsed with feed-rs, fetched with a conditional GET.
//!
//! A paper's key is its arXiv id when the entry's id or a link carries one (so a feed that
//! relays arXiv merges with the arXiv and Hugging Face sources), else its DOI (an id or link on
//! doi.org, or a `doi:` id), else its link. HTML in summaries becomes plain text. An entry
//! without a title or a link is skipped and counted.
//!
//! A feed lists what is current: it cannot list a past day, so catch-up and backfill leave it
//! alone. Not for arXiv's own listing, whose `arxiv:` elements feed-rs does not keep
//! (`arxiv_rss`).

use super::http::{Fetched, HttpClient, Validators};
use super::{BoxFuture, SkippedItem, Source, SourceBatch, SourceError};
use crate::model::{Paper, PaperId, PaperLinks, normalize_whitespace};
use chrono::NaiveDate;
use url::Url;

pub struct FeedSource {
    name: String,
    url: Url,
    client: HttpClient,
}

impl FeedSource {
    pub fn new(name: String, url: Url, client: HttpClient) -> Self {
        FeedSource { name, url, client }
    }

    async fn latest(&self, validators: Validators) -> Result<SourceBatch, SourceError> {
        match self.client.get_conditional(&self.url, &validators).await? {
            Fetched::NotModified => Ok(SourceBatch {
                requests: 1,
                not_modified: true,
                validators,
                ..SourceBatch::default()
            }),
            Fetched::Body { text, validators } => {
                let (papers, skipped) =
                    parse_feed(text.as_bytes()).map_err(|detail| SourceError::Malformed {
                        url: self.url.to_string(),
                        detail,
                    })?;
                Ok(SourceBatch {
                    papers,
                    skipped,
                    requests: 1,
                    validators,
                    ..SourceBatch::default()
                })
            }
        }
    }
}

impl Source for FeedSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fetch_day(&self, _date: NaiveDate) -> BoxFuture<'_, Result<SourceBatch, SourceError>> {
        Box::pin(self.latest(Validators::default()))
    }

    fn fetch_latest(
        &self,
        _today: NaiveDate,
        validators: Validators,
    ) -> BoxFuture<'_, Result<SourceBatch, SourceError>> {
        Box::pin(self.latest(validators))
    }

    fn can_fetch_past_days(&self) -> bool {
        false
    }

    fn location(&self) -> String {
        self.url.to_string()
    }
}

/// Reads a feed body into papers and the entries it had to skip.
pub fn parse_feed(body: &[u8]) -> Result<(Vec<Paper>, Vec<SkippedItem>), String> {
    let feed = feed_rs::parser::parse(body).map_err(|e| format!("not a readable feed ({e})"))?;
    let mut papers = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (position, entry) in feed.entries.into_iter().enumerate() {
        match paper(entry) {
            Ok(p) => {
                if seen.insert(p.id.clone()) {
                    papers.push(p);
                }
            }
            Err(reason) => skipped.push(SkippedItem {
                page: 0,
                position,
                reason,
            }),
        }
    }
    Ok((papers, skipped))
}

fn paper(entry: feed_rs::model::Entry) -> Result<Paper, String> {
    let title = entry
        .title
        .as_ref()
        .map(|t| normalize_whitespace(&strip_tags(&t.content)))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("entry `{}` has no title", entry.id))?;
    let link = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(entry.links.first())
        .map(|l| l.href.trim().to_string())
        .filter(|h| web_url(h).is_some());

    // Which key: an arXiv id, else a DOI, else the link.
    let mut candidates: Vec<&str> = vec![entry.id.as_str()];
    candidates.extend(entry.links.iter().map(|l| l.href.as_str()));
    let arxiv = candidates
        .iter()
        .filter(|c| c.contains("arxiv") || c.starts_with(|ch: char| ch.is_ascii_digit()))
        .find_map(|c| PaperId::parse_arxiv(c.trim_start_matches("oai:arXiv.org:")).ok());
    let doi = candidates.iter().find_map(|c| doi_in(c));
    let id = match (&arxiv, &doi, &link) {
        (Some(a), _, _) => a.clone(),
        (None, Some(d), _) => PaperId::from_doi(d),
        (None, None, Some(l)) => PaperId::from_url(l),
        (None, None, None) => {
            return Err(format!(
                "entry `{title}` has no arXiv id, DOI or http(s) link to key it by"
            ));
        }
    };

    let abstract_text = entry
        .summary
        .as_ref()
        .map(|t| t.content.clone())
        .or_else(|| entry.content.as_ref().and_then(|c| c.body.clone()))
        .map(|s| normalize_whitespace(&strip_tags(&s)))
        .unwrap_or_default();
    let authors = entry
        .authors
        .iter()
        .filter_map(|p| p.name.as_deref())
        .flat_map(|n| n.split(','))
        .map(normalize_whitespace)
        .filter(|n| !n.is_empty())
        .collect();
    let categories = entry
        .categories
        .iter()
        .map(|c| normalize_whitespace(&c.term))
        .filter(|c| !c.is_empty())
        .collect();
    let mut links = match &arxiv {
        Some(a) => Paper::arxiv_links(a),
        None => PaperLinks {
            abstract_url: link.clone(),
            ..PaperLinks::default()
        },
    };
    if links.abstract_url.is_none() {
        links.abstract_url = link;
    }
    Ok(Paper {
        id,
        title,
        abstract_text,
        authors,
        categories,
        published_at: entry.published.or(entry.updated),
        upvotes: None,
        links,
        arxiv: crate::model::ArxivMeta {
            doi,
            ..Default::default()
        },
    })
}

/// A DOI in an id or link: `https://doi.org/10.1101/…`, `doi:10.1101/…` or a bare `10.1101/…`.
fn doi_in(s: &str) -> Option<String> {
    let s = s.trim();
    let rest = [
        "https://doi.org/",
        "http://doi.org/",
        "https://dx.doi.org/",
        "http://dx.doi.org/",
        "doi:",
    ]
    .iter()
    .find_map(|p| s.strip_prefix(p))
    .or_else(|| s.starts_with("10.").then_some(s))?;
    let (prefix, suffix) = rest.split_once('/')?;
    (prefix.starts_with("10.")
        && prefix[3..].bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !suffix.is_empty())
    .then(|| rest.to_string())
}

fn web_url(s: &str) -> Option<Url> {
    let url = Url::parse(s.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then_some(url)
}

/// Plain text from a summary that may hold HTML: tags dropped, the common entities decoded.
/// Digests escape what they show, so this is about readability, not safety.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dois_in_ids_and_links() {
        assert_eq!(
            doi_in("https://doi.org/10.1101/2024.01.02.123456").as_deref(),
            Some("10.1101/2024.01.02.123456")
        );
        assert_eq!(
            doi_in("doi:10.1038/s41586-024-1").as_deref(),
            Some("10.1038/s41586-024-1")
        );
        assert_eq!(doi_in("https://example.org/10.1/x"), None);
        assert_eq!(doi_in("10.x/abc"), None);
    }

    #[test]
    fn tags_are_dropped() {
        assert_eq!(
            normalize_whitespace(&strip_tags("<p>A &amp; B</p><p>C</p>")),
            "A & B C"
        );
    }
}
