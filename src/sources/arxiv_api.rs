//! The arXiv API (`{sources.arxiv.api_base_url}/api/query`): papers submitted on given days in
//! the configured categories (catch-up and backfill), and papers by id (to give papers that
//! Hugging Face knows only by id their categories, DOI, comment and journal reference).
//!
//! arXiv asks for one request at a time, at least 3 seconds apart: every request of the process
//! goes through one shared [`RequestSpacing`] ([`shared_spacing`]), whichever source or job makes it,
//! retries included. Pages follow `start` / `max_results` until `opensearch:totalResults`.
//!
//! It is not for the daily listing (`arxiv_rss`) or for parsing (`arxiv_xml`).

use super::arxiv_xml::{self, ArxivEntry};
use super::http::{HttpClient, RequestSpacing};
use super::{SkippedItem, SourceError};
use chrono::NaiveDate;
use std::sync::LazyLock;
use std::time::Duration;
use url::Url;

/// The arXiv API's own limit per request.
pub const MAX_PAGE_SIZE: u32 = 2000;

/// A query with more pages than this is cut short with a warning: a day in a few categories has
/// hundreds of papers, not hundreds of thousands.
pub const MAX_PAGES: u32 = 200;

/// The one turn every arXiv API request of this process waits for.
static API_TURN: LazyLock<RequestSpacing> =
    LazyLock::new(|| RequestSpacing::new(Duration::from_secs(3)));

/// The process-wide arXiv API request spacing, one request every `interval`.
pub fn shared_spacing(interval: Duration) -> RequestSpacing {
    API_TURN.with_interval(interval)
}

/// What a query returned, over all its pages.
#[derive(Debug, Default)]
pub struct ApiResult {
    pub entries: Vec<ArxivEntry>,
    pub skipped: Vec<SkippedItem>,
    pub requests: u32,
}

#[derive(Clone, Debug)]
pub struct ArxivApi {
    base_url: Url,
    client: HttpClient,
    spacing: RequestSpacing,
    page_size: u32,
}

impl ArxivApi {
    pub fn new(base_url: Url, client: HttpClient, spacing: RequestSpacing, page_size: u32) -> Self {
        ArxivApi {
            base_url,
            client,
            spacing,
            page_size: page_size.clamp(1, MAX_PAGE_SIZE),
        }
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// `…/api/query` with these parameters; the base URL's own path prefix stays.
    pub fn query_url(&self, params: &[(&str, &str)]) -> Result<Url, SourceError> {
        let mut url = self.base_url.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|_| {
                SourceError::Config(format!(
                    "`sources.arxiv.api_base_url` is `{}`; it must be an http(s) URL such as \
                     https://export.arxiv.org",
                    self.base_url
                ))
            })?;
            segments.pop_if_empty().push("api").push("query");
        }
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// The search for papers submitted on `date` (UTC) in any of `categories`.
    pub fn submitted_on_query(date: NaiveDate, categories: &[String]) -> String {
        let cats: Vec<String> = categories.iter().map(|c| format!("cat:{c}")).collect();
        let day = date.format("%Y%m%d");
        format!(
            "({}) AND submittedDate:[{day}0000 TO {day}2359]",
            cats.join(" OR ")
        )
    }

    /// Every paper submitted on `date` in `categories`, page after page.
    pub async fn submitted_on(
        &self,
        date: NaiveDate,
        categories: &[String],
    ) -> Result<ApiResult, SourceError> {
        self.search(&Self::submitted_on_query(date, categories))
            .await
    }

    /// Every result of `search_query`, page after page.
    pub async fn search(&self, search_query: &str) -> Result<ApiResult, SourceError> {
        let mut out = ApiResult::default();
        let size = self.page_size.to_string();
        for page in 0..MAX_PAGES {
            let start = (page as u64 * self.page_size as u64).to_string();
            let url = self.query_url(&[
                ("search_query", search_query),
                ("start", &start),
                ("max_results", &size),
                ("sortBy", "submittedDate"),
                ("sortOrder", "ascending"),
            ])?;
            let parsed = self.get_page(&url, page).await?;
            out.requests += 1;
            let got = parsed.entries.len() + parsed.skipped.len();
            // A server that ignores `start` sends the same page again: keep each paper once and
            // stop when a full page brings nothing new, rather than loop to MAX_PAGES.
            let before = out.entries.len();
            for e in parsed.entries {
                if !out
                    .entries
                    .iter()
                    .any(|o: &ArxivEntry| o.paper.id == e.paper.id)
                {
                    out.entries.push(e);
                }
            }
            if got > 0 && out.entries.len() == before && parsed.skipped.is_empty() {
                tracing::warn!(source = "arxiv", url = %url, "the arXiv API repeated a page; stopped paging");
                return Ok(out);
            }
            out.skipped.extend(parsed.skipped);
            let seen = start.parse::<u64>().unwrap_or(0) + got as u64;
            // Stop at the total the API announced, or at a short page when it gave none.
            let done = match parsed.total_results {
                Some(total) => seen >= total || got == 0,
                None => got < self.page_size as usize,
            };
            if done {
                return Ok(out);
            }
        }
        tracing::warn!(
            source = "arxiv",
            query = search_query,
            pages = MAX_PAGES,
            "the arXiv API query has more pages than paperboy follows; stopped"
        );
        Ok(out)
    }

    /// The papers with these arXiv ids (without versions), `page_size` ids per request.
    pub async fn by_ids(&self, ids: &[String]) -> Result<ApiResult, SourceError> {
        let mut out = ApiResult::default();
        for (page, chunk) in ids.chunks(self.page_size as usize).enumerate() {
            let list = chunk.join(",");
            let size = chunk.len().to_string();
            let url = self.query_url(&[("id_list", &list), ("max_results", &size)])?;
            let parsed = self.get_page(&url, page as u32).await?;
            out.requests += 1;
            out.entries.extend(parsed.entries);
            out.skipped.extend(parsed.skipped);
        }
        Ok(out)
    }

    async fn get_page(&self, url: &Url, page: u32) -> Result<arxiv_xml::ArxivPage, SourceError> {
        let body = self.client.get_text_paced(url, &self.spacing).await?;
        let parsed = arxiv_xml::parse(&body, page).map_err(|detail| SourceError::Malformed {
            url: url.to_string(),
            detail,
        })?;
        tracing::debug!(
            source = "arxiv",
            url = %url,
            entries = parsed.entries.len(),
            skipped = parsed.skipped.len(),
            total = parsed.total_results,
            "read a page of the arXiv API"
        );
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::http::HttpSettings;

    #[test]
    fn the_query_url_keeps_a_path_prefix_and_encodes_the_query() {
        let client = HttpClient::new(&HttpSettings::default()).unwrap();
        let api = ArxivApi::new(
            Url::parse("http://127.0.0.1:9/mirror/").unwrap(),
            client,
            RequestSpacing::new(Duration::ZERO),
            50,
        );
        let q = ArxivApi::submitted_on_query(
            NaiveDate::from_ymd_opt(2026, 9, 24).unwrap(),
            &["cs.LG".into(), "stat.ML".into()],
        );
        assert_eq!(
            q,
            "(cat:cs.LG OR cat:stat.ML) AND submittedDate:[202609240000 TO 202609242359]"
        );
        let url = api
            .query_url(&[("search_query", &q), ("start", "0")])
            .unwrap();
        assert_eq!(url.path(), "/mirror/api/query");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("search_query".into(), q));
    }
}
