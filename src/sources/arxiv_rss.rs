//! The arXiv source (`arxiv`): the daily announcement of the configured categories from
//! `{sources.arxiv.rss_base_url}/rss/<cat>+<cat>…`, and, for past days, the arXiv API.
//!
//! In the listing, `new` papers (and `cross` ones with `sources.arxiv.cross_lists`) are new
//! papers; `replace` and `replace-cross` only update papers paperboy already has, so a revised
//! paper never reaches a digest twice. arXiv announces Sunday to Thursday evening (US Eastern),
//! that is Monday to Friday in UTC: an empty feed on a weekend or a holiday is a normal answer,
//! not an error. The listing is fetched with a conditional GET.
//!
//! Past days (catch-up after downtime, `paperboy fetch --from/--to`) come from the API by
//! submission date, recorded under `arxiv-api`, or, with `sources.arxiv.past_days = "oai"`, from
//! OAI-PMH by datestamp, recorded under `arxiv-oai`. Not for parsing (`arxiv_xml`) or storing.

use super::arxiv_api::ArxivApi;
use super::arxiv_oai::ArxivOai;
use super::arxiv_xml::{self, AnnounceType};
use super::http::{Fetched, HttpClient, Validators};
use super::{BoxFuture, Source, SourceBatch, SourceError};
use chrono::{NaiveDate, Weekday};
use url::Url;

/// The name papers from the API are recorded under.
pub const API_SOURCE: &str = "arxiv-api";

/// The name papers harvested through OAI-PMH are recorded under.
pub const OAI_SOURCE: &str = "arxiv-oai";

pub struct ArxivSource {
    rss_base_url: Url,
    categories: Vec<String>,
    cross_lists: bool,
    client: HttpClient,
    api: ArxivApi,
    /// Set when past days come from OAI-PMH rather than the API.
    oai: Option<ArxivOai>,
}

impl ArxivSource {
    pub fn new(
        rss_base_url: Url,
        categories: Vec<String>,
        cross_lists: bool,
        client: HttpClient,
        api: ArxivApi,
    ) -> Self {
        ArxivSource {
            rss_base_url,
            categories,
            cross_lists,
            client,
            api,
            oai: None,
        }
    }

    /// Lists past days through OAI-PMH instead of the search API.
    pub fn with_oai(mut self, oai: ArxivOai) -> Self {
        self.oai = Some(oai);
        self
    }

    /// `{rss_base_url}/rss/cs.LG+stat.ML`.
    pub fn listing_url(&self) -> Result<Url, SourceError> {
        let mut url = self.rss_base_url.clone();
        url.path_segments_mut()
            .map_err(|_| {
                SourceError::Config(format!(
                    "`sources.arxiv.rss_base_url` is `{}`; it must be an http(s) URL such as \
                     https://rss.arxiv.org",
                    self.rss_base_url
                ))
            })?
            .pop_if_empty()
            .push("rss")
            .push(&self.categories.join("+"));
        url.set_query(None);
        Ok(url)
    }

    /// Splits a listing page into new papers and updates, by announce type.
    pub fn read_listing(&self, body: &str, url: &Url) -> Result<SourceBatch, SourceError> {
        let page = arxiv_xml::parse(body, 0).map_err(|detail| SourceError::Malformed {
            url: url.to_string(),
            detail,
        })?;
        let mut batch = SourceBatch {
            skipped: page.skipped,
            requests: 1,
            ..SourceBatch::default()
        };
        for entry in page.entries {
            let announce = entry.announce.unwrap_or(AnnounceType::New);
            batch
                .announce_types
                .insert(entry.paper.id.to_string(), announce.as_str().to_string());
            let is_new = match announce {
                AnnounceType::New => true,
                AnnounceType::Cross => self.cross_lists,
                AnnounceType::Replace | AnnounceType::ReplaceCross | AnnounceType::Other(_) => {
                    false
                }
            };
            if is_new {
                batch.papers.push(entry.paper);
            } else {
                batch.updates.push(entry.paper);
            }
        }
        Ok(batch)
    }

    async fn latest(&self, validators: Validators) -> Result<SourceBatch, SourceError> {
        let url = self.listing_url()?;
        match self.client.get_conditional(&url, &validators).await? {
            Fetched::NotModified => Ok(SourceBatch {
                requests: 1,
                not_modified: true,
                validators,
                ..SourceBatch::default()
            }),
            Fetched::Body { text, validators } => {
                let mut batch = self.read_listing(&text, &url)?;
                batch.validators = validators;
                tracing::debug!(
                    source = "arxiv",
                    url = %url,
                    new = batch.papers.len(),
                    updates = batch.updates.len(),
                    skipped = batch.skipped.len(),
                    "read the arXiv listing"
                );
                Ok(batch)
            }
        }
    }

    async fn past_day(&self, date: NaiveDate) -> Result<SourceBatch, SourceError> {
        if let Some(oai) = &self.oai {
            let harvest = oai.day(date, &self.categories).await?;
            tracing::debug!(
                source = "arxiv",
                date = %date,
                new = harvest.new.len(),
                updates = harvest.updates.len(),
                other_categories = harvest.other_categories,
                "harvested a past day through OAI-PMH"
            );
            return Ok(SourceBatch {
                papers: harvest.new.into_iter().map(|e| e.paper).collect(),
                updates: harvest.updates.into_iter().map(|e| e.paper).collect(),
                skipped: harvest.skipped,
                requests: harvest.requests,
                via: Some(OAI_SOURCE.to_string()),
                ..SourceBatch::default()
            });
        }
        let result = self.api.submitted_on(date, &self.categories).await?;
        Ok(SourceBatch {
            papers: result.entries.into_iter().map(|e| e.paper).collect(),
            skipped: result.skipped,
            requests: result.requests,
            via: Some(API_SOURCE.to_string()),
            ..SourceBatch::default()
        })
    }
}

impl Source for ArxivSource {
    fn name(&self) -> &str {
        "arxiv"
    }

    fn fetch_day(&self, date: NaiveDate) -> BoxFuture<'_, Result<SourceBatch, SourceError>> {
        Box::pin(self.past_day(date))
    }

    fn fetch_latest(
        &self,
        _today: NaiveDate,
        validators: Validators,
    ) -> BoxFuture<'_, Result<SourceBatch, SourceError>> {
        Box::pin(self.latest(validators))
    }

    fn announces_on(&self, weekday: Weekday) -> bool {
        // Sunday to Thursday evening in New York is Monday to Friday in UTC.
        !matches!(weekday, Weekday::Sat | Weekday::Sun)
    }

    fn location(&self) -> String {
        self.listing_url()
            .map(String::from)
            .unwrap_or_else(|_| self.rss_base_url.to_string())
    }
}
