//! The Hugging Face daily papers source (`hf`).
//!
//! It asks `GET {base_url}/api/daily_papers?date=YYYY-MM-DD&limit=100&p=N` for one day's list,
//! page after page, and reads each item into a [`Paper`]: arXiv id, title, abstract, authors,
//! publication time, upvotes (the popularity signal) and links (arXiv, the Hugging Face page,
//! code, project page). It reads both schema generations seen so far (2024 and 2026) and skips,
//! with a reason, any item it cannot read.
//!
//! It is not for arXiv categories (Hugging Face has none; the arXiv source supplies them when the
//! two are merged), for deciding what is new (the fetch job does), or for storing anything.

use super::http::HttpClient;
use super::{BoxFuture, SkippedItem, Source, SourceBatch, SourceError};
use crate::model::{Paper, PaperId, normalize_whitespace};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use url::Url;

/// Hugging Face's largest page. A page shorter than this is the last one.
pub const PAGE_SIZE: usize = 100;

/// A day has a few dozen papers; 50 full pages would mean the server ignores `p` and answers the
/// same page forever, so stop rather than loop.
pub const MAX_PAGES: u32 = 50;

/// Where papers link when no configured base URL is at hand (see [`parse_daily_papers`]).
const PUBLIC_SITE: &str = "https://huggingface.co";

pub struct HfSource {
    base_url: Url,
    client: HttpClient,
}

impl HfSource {
    /// `base_url` is the site root, `https://huggingface.co` in production; it may carry a path
    /// prefix (`http://127.0.0.1:8000/mirror`), which is kept.
    pub fn new(base_url: Url, client: HttpClient) -> Self {
        HfSource { base_url, client }
    }

    /// The URL of one page of one day's list.
    pub fn page_url(&self, date: NaiveDate, page: u32) -> Result<Url, SourceError> {
        let mut url = under_base(&self.base_url, &["api", "daily_papers"])?;
        url.query_pairs_mut()
            .append_pair("date", &date.format("%Y-%m-%d").to_string())
            .append_pair("limit", &PAGE_SIZE.to_string())
            .append_pair("p", &page.to_string());
        Ok(url)
    }

    async fn fetch(&self, date: NaiveDate) -> Result<SourceBatch, SourceError> {
        let mut batch = SourceBatch::default();
        let mut seen = std::collections::HashSet::new();
        for page in 0..MAX_PAGES {
            let url = self.page_url(date, page)?;
            let body = self.client.get_text(&url).await?;
            batch.requests += 1;
            let (papers, skipped) =
                parse_daily_papers(&body, page).map_err(|detail| SourceError::Malformed {
                    url: url.to_string(),
                    detail,
                })?;
            let items = papers.len() + skipped.len();
            tracing::debug!(
                source = "hf",
                url = %url,
                page,
                papers = papers.len(),
                skipped = skipped.len(),
                "read a page of daily papers"
            );
            for item in &skipped {
                tracing::debug!(
                    source = "hf",
                    page = item.page,
                    position = item.position,
                    reason = %item.reason,
                    "skipped an item"
                );
            }
            // The list can shift while we page through it, repeating a paper at a page boundary.
            batch
                .papers
                .extend(papers.into_iter().filter(|p| seen.insert(p.id.clone())));
            batch.skipped.extend(skipped);
            if items < PAGE_SIZE {
                return Ok(batch);
            }
        }
        tracing::warn!(
            source = "hf",
            %date,
            pages = MAX_PAGES,
            papers = batch.papers.len(),
            "every page was full up to the page limit; stopped paging (is the server ignoring `p`?)"
        );
        Ok(batch)
    }
}

impl Source for HfSource {
    fn name(&self) -> &str {
        "hf"
    }

    fn announces_on(&self, weekday: chrono::Weekday) -> bool {
        // Hugging Face's daily papers are curated on working days; weekends list nothing.
        !matches!(weekday, chrono::Weekday::Sat | chrono::Weekday::Sun)
    }

    fn location(&self) -> String {
        self.base_url.to_string()
    }

    fn fetch_day(&self, date: NaiveDate) -> BoxFuture<'_, Result<SourceBatch, SourceError>> {
        Box::pin(self.fetch(date))
    }
}

/// `base` with `segments` appended to its path; its own path prefix stays, its query and fragment
/// go. (`Url::join` would drop the last segment of a prefix without a trailing slash.)
fn under_base(base: &Url, segments: &[&str]) -> Result<Url, SourceError> {
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(SourceError::Config(format!(
            "`sources.hf.base_url` is `{base}`; it must be an http:// or https:// URL such as \
             https://huggingface.co"
        )));
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| {
            SourceError::Config(format!(
                "`sources.hf.base_url` is `{base}`, which cannot take a path; use a URL such as \
                 https://huggingface.co"
            ))
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Reads one page of `/api/daily_papers`. Papers link to `https://huggingface.co/papers/<id>`
/// whatever address they were fetched from: `sources.hf.base_url` may be a mirror or a proxy
/// that readers cannot reach.
///
/// `Err` only when the body as a whole is not the expected JSON array; an item that cannot be
/// read is returned among the skipped ones with its reason.
pub fn parse_daily_papers(body: &str, page: u32) -> Result<(Vec<Paper>, Vec<SkippedItem>), String> {
    let site = Url::parse(PUBLIC_SITE).expect("the public site URL is valid");
    parse_page(body, page, &site)
}

fn parse_page(body: &str, page: u32, site: &Url) -> Result<(Vec<Paper>, Vec<SkippedItem>), String> {
    let value: Value = serde_json::from_str(body).map_err(|e| {
        format!("it is not JSON ({e}); expected the JSON array that /api/daily_papers returns")
    })?;
    let items = match value {
        Value::Array(items) => items,
        other => {
            // Error answers are objects such as {"error": "..."}: show the server's own words.
            let said = other
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!(" (the server said: {})", truncate(e, 200)))
                .unwrap_or_default();
            return Err(format!(
                "expected a JSON array of daily papers, got {}{said}",
                kind(&other)
            ));
        }
    };
    let mut papers = Vec::with_capacity(items.len());
    let mut skipped = Vec::new();
    for (position, item) in items.iter().enumerate() {
        match parse_item(item, site) {
            Ok(paper) => papers.push(paper),
            Err(reason) => skipped.push(SkippedItem {
                page,
                position,
                reason,
            }),
        }
    }
    Ok((papers, skipped))
}

fn parse_item(item: &Value, site: &Url) -> Result<Paper, String> {
    if !item.is_object() {
        return Err(format!("the item is {}, not an object", kind(item)));
    }
    let paper = item.get("paper").filter(|p| p.is_object());
    let field = |name: &str| paper.and_then(|p| p.get(name));

    let raw_id = match field("id") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(format!("`paper.id` is {}, not a string", kind(other))),
        None => return Err("the item has no `paper.id`, so it cannot be keyed".to_string()),
    };
    let id = PaperId::parse_arxiv(raw_id).map_err(|e| format!("`paper.id`: {e}"))?;

    // `paper.title` keeps arXiv's hard line breaks, the top-level copy is already normalised;
    // either reads the same once white space is collapsed.
    let title = text(field("title"))
        .or_else(|| text(item.get("title")))
        .ok_or_else(|| format!("paper {id} has no title"))?;
    let abstract_text = text(field("summary"))
        .or_else(|| text(item.get("summary")))
        .unwrap_or_default();

    // Every listed author is kept: `hidden` concerns the link to a Hugging Face account, not
    // the authorship.
    let authors = field("authors")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| text(a.get("name")))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();

    let published_at = field("publishedAt")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.with_timezone(&Utc));
    let upvotes = field("upvotes").and_then(Value::as_i64);

    let mut links = Paper::arxiv_links(&id);
    links.hf_url = under_base(site, &["papers", id.as_str()])
        .ok()
        .map(String::from);
    links.code_url = field("githubRepo").and_then(web_url);
    links.project_url = field("projectPage").and_then(web_url);

    Ok(Paper {
        id,
        title,
        abstract_text,
        authors,
        categories: Vec::new(),
        published_at,
        upvotes,
        links,
        arxiv: Default::default(),
    })
}

/// A string field, white space normalised; `None` when absent, not a string, or blank.
fn text(value: Option<&Value>) -> Option<String> {
    let s = normalize_whitespace(value?.as_str()?);
    (!s.is_empty()).then_some(s)
}

/// Links end up in emails: only absolute http(s) URLs get through, never `javascript:` and the
/// like, and they come back in the URL crate's escaped form.
fn web_url(value: &Value) -> Option<String> {
    let url = Url::parse(value.as_str()?.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then(|| url.into())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a JSON object",
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_2024: &str = include_str!("../../tests/fixtures/hf/daily_papers_2024-10-25.json");
    const ITEM_2026: &str = include_str!("../../tests/fixtures/hf/daily_papers_item_2026-03.json");

    fn parse_ok(body: &str) -> (Vec<Paper>, Vec<SkippedItem>) {
        parse_daily_papers(body, 0).expect("the page parses")
    }

    #[test]
    fn reads_the_2024_day() {
        let (papers, skipped) = parse_ok(DAY_2024);
        assert_eq!(papers.len(), 29);
        assert!(skipped.is_empty(), "{skipped:?}");

        let first = &papers[0];
        assert_eq!(first.id.as_str(), "2410.17243");
        assert_eq!(
            first.title,
            "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"
        );
        assert!(
            first
                .abstract_text
                .starts_with("Contrastive loss is a powerful approach for representation learning, where larger batch sizes")
        );
        assert!(!first.abstract_text.contains('\n'));
        assert!(
            first
                .abstract_text
                .ends_with("The code will be made publicly available.")
        );
        assert_eq!(first.authors.len(), 9);
        assert_eq!(first.authors[0], "Zesen Cheng");
        assert_eq!(first.authors[8], "Lidong Bing");
        assert_eq!(first.upvotes, Some(64));
        assert_eq!(
            first.published_at.map(|t| t.to_rfc3339()),
            Some("2024-10-22T17:59:30+00:00".to_string())
        );
        assert!(first.categories.is_empty());
        assert_eq!(
            first.links.abstract_url.as_deref(),
            Some("https://arxiv.org/abs/2410.17243")
        );
        assert_eq!(
            first.links.pdf_url.as_deref(),
            Some("https://arxiv.org/pdf/2410.17243")
        );
        assert_eq!(
            first.links.hf_url.as_deref(),
            Some("https://huggingface.co/papers/2410.17243")
        );
        assert_eq!(first.links.code_url, None);
        assert_eq!(first.links.project_url, None);

        let last = &papers[28];
        assert_eq!(last.id.as_str(), "2410.18234");
        assert_eq!(
            last.title,
            "Multi-Draft Speculative Sampling: Canonical Architectures and Theoretical Limits"
        );
        assert_eq!(last.upvotes, Some(2));
        assert_eq!(last.authors.len(), 6);

        // The single-author paper keeps its one author.
        let solo = papers
            .iter()
            .find(|p| p.id.as_str() == "2410.18441")
            .unwrap();
        assert_eq!(solo.authors.len(), 1);

        for p in &papers {
            assert!(
                !p.title.contains('\n') && !p.title.contains("  "),
                "{}",
                p.title
            );
            assert!(!p.abstract_text.is_empty(), "{}", p.id);
            assert!(p.published_at.is_some(), "{}", p.id);
        }
    }

    #[test]
    fn reads_the_2026_item_with_its_links() {
        let (papers, skipped) = parse_ok(ITEM_2026);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(papers.len(), 1);
        let p = &papers[0];
        assert_eq!(p.id.as_str(), "2602.23229");
        assert_eq!(
            p.title,
            "Large Multimodal Models as General In-Context Classifiers"
        );
        assert_eq!(
            p.authors,
            [
                "Marco Garosi",
                "Matteo Farina",
                "Alessandro Conti",
                "Massimiliano Mancini",
                "Elisa Ricci"
            ]
        );
        assert_eq!(p.upvotes, Some(10));
        assert!(
            p.abstract_text
                .starts_with("Which multimodal model should we use")
        );
        // `paper.publishedAt`, not the item's top-level one (which is five hours off).
        assert_eq!(
            p.published_at.map(|t| t.to_rfc3339()),
            Some("2026-02-26T17:08:18+00:00".to_string())
        );
        assert_eq!(
            p.links.code_url.as_deref(),
            Some("https://github.com/marco-garosi/CIRCLE")
        );
        assert_eq!(
            p.links.project_url.as_deref(),
            Some("https://circle-lmm.github.io/")
        );
        assert_eq!(
            p.links.hf_url.as_deref(),
            Some("https://huggingface.co/papers/2602.23229")
        );
    }

    #[test]
    fn a_body_that_is_not_an_array_fails_the_page() {
        let err = parse_daily_papers("<html>Bad gateway</html>", 0).unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
        let err = parse_daily_papers(r#"{"error":"Invalid date"}"#, 0).unwrap_err();
        assert!(err.contains("JSON array"), "{err}");
        assert!(err.contains("Invalid date"), "{err}");
        let err = parse_daily_papers("null", 0).unwrap_err();
        assert!(err.contains("null"), "{err}");
    }

    #[test]
    fn an_empty_day_is_no_papers() {
        let (papers, skipped) = parse_ok("[]");
        assert!(papers.is_empty() && skipped.is_empty());
    }

    #[test]
    fn bad_items_are_skipped_with_a_reason() {
        let body = r#"[
            {"paper": {"title": "no id"}},
            {"paper": {"id": "not-an-id", "title": "bad id"}},
            {"paper": {"id": 2410.17243, "title": "numeric id"}},
            {"paper": {"id": "2410.17243"}},
            "just a string",
            {"title": "no paper object"},
            {"paper": {"id": "2410.18533v2", "title": "  Fine \n  item "}}
        ]"#;
        let (papers, skipped) = parse_daily_papers(body, 3).unwrap();
        assert_eq!(papers.len(), 1);
        assert_eq!(papers[0].id.as_str(), "2410.18533");
        assert_eq!(papers[0].title, "Fine item");
        assert_eq!(papers[0].abstract_text, "");
        assert!(papers[0].authors.is_empty());
        assert_eq!(papers[0].upvotes, None);
        assert_eq!(papers[0].published_at, None);

        let positions: Vec<usize> = skipped.iter().map(|s| s.position).collect();
        assert_eq!(positions, [0, 1, 2, 3, 4, 5]);
        assert!(skipped.iter().all(|s| s.page == 3));
        assert!(
            skipped[0].reason.contains("paper.id"),
            "{}",
            skipped[0].reason
        );
        assert!(
            skipped[1].reason.contains("not-an-id"),
            "{}",
            skipped[1].reason
        );
        assert!(
            skipped[2].reason.contains("not a string"),
            "{}",
            skipped[2].reason
        );
        assert!(
            skipped[3].reason.contains("no title"),
            "{}",
            skipped[3].reason
        );
        assert!(
            skipped[4].reason.contains("not an object"),
            "{}",
            skipped[4].reason
        );
        assert!(
            skipped[5].reason.contains("paper.id"),
            "{}",
            skipped[5].reason
        );
    }

    #[test]
    fn falls_back_to_top_level_title_and_summary() {
        let body = r#"[{"paper": {"id": "2410.17243", "upvotes": 3},
                        "title": "Top  level", "summary": "From\nthe item."}]"#;
        let (papers, _) = parse_ok(body);
        assert_eq!(papers[0].title, "Top level");
        assert_eq!(papers[0].abstract_text, "From the item.");
        assert_eq!(papers[0].upvotes, Some(3));
    }

    #[test]
    fn only_web_links_are_kept() {
        let body = r#"[{"paper": {"id": "2410.17243", "title": "t",
            "githubRepo": "javascript:alert(1)", "projectPage": "not a url",
            "publishedAt": "yesterday", "authors": [{"name": " Ada \n Lovelace "}, {"hidden": true}, {"name": ""}]}},
          {"paper": {"id": "2410.18533", "title": "t", "githubRepo": "", "projectPage": "http://example.org/a b"}}]"#;
        let (papers, skipped) = parse_ok(body);
        assert!(skipped.is_empty());
        assert_eq!(papers[0].links.code_url, None);
        assert_eq!(papers[0].links.project_url, None);
        assert_eq!(papers[0].published_at, None);
        assert_eq!(papers[0].authors, ["Ada Lovelace"]);
        assert_eq!(papers[1].links.code_url, None);
        assert_eq!(
            papers[1].links.project_url.as_deref(),
            Some("http://example.org/a%20b")
        );
    }

    fn source(base: &str) -> HfSource {
        let client = HttpClient::new(&crate::sources::http::HttpSettings::default()).unwrap();
        HfSource::new(Url::parse(base).unwrap(), client)
    }

    #[test]
    fn page_urls_keep_the_base_path_prefix() {
        let date = NaiveDate::from_ymd_opt(2024, 10, 25).unwrap();
        for (base, want) in [
            (
                "https://huggingface.co",
                "https://huggingface.co/api/daily_papers?date=2024-10-25&limit=100&p=0",
            ),
            (
                "https://huggingface.co/",
                "https://huggingface.co/api/daily_papers?date=2024-10-25&limit=100&p=0",
            ),
            (
                "http://127.0.0.1:1234/mirror",
                "http://127.0.0.1:1234/mirror/api/daily_papers?date=2024-10-25&limit=100&p=0",
            ),
            (
                "http://127.0.0.1:1234/mirror/?x=1#top",
                "http://127.0.0.1:1234/mirror/api/daily_papers?date=2024-10-25&limit=100&p=0",
            ),
        ] {
            assert_eq!(
                source(base).page_url(date, 0).unwrap().as_str(),
                want,
                "{base}"
            );
        }
        assert!(
            source("https://huggingface.co")
                .page_url(date, 7)
                .unwrap()
                .as_str()
                .ends_with("&p=7")
        );
        let err = source("mailto:ops@example.org")
            .page_url(date, 0)
            .unwrap_err();
        assert!(matches!(err, SourceError::Config(_)), "{err}");
        assert!(err.to_string().contains("sources.hf.base_url"));
    }

    #[test]
    fn hf_links_point_to_the_public_site() {
        let (papers, _) = parse_daily_papers(ITEM_2026, 0).unwrap();
        assert_eq!(
            papers[0].links.hf_url.as_deref(),
            Some("https://huggingface.co/papers/2602.23229")
        );
    }

    #[test]
    fn the_source_is_named_hf() {
        assert_eq!(source("https://huggingface.co").name(), "hf");
    }
}
