//! arXiv's OAI-PMH interface (`{sources.arxiv.oai_base_url}?verb=ListRecords`): the papers
//! arXiv announced or revised on a past day, for catch-up and backfill when
//! `sources.arxiv.past_days = "oai"`.
//!
//! arXiv recommends OAI-PMH over the search API for harvesting in bulk. A record's datestamp is
//! when arXiv last changed its metadata, which for recent papers is the evening they were
//! announced, so one day's `from`/`until` lists that day's new papers and revisions. The sets
//! are archives (`cs`, `math`, `physics:astro-ph`), coarser than categories, so records are
//! kept only when one of their categories is configured. A record is a new paper only when it
//! is about a first version submitted shortly before the day; a revision, or an old paper whose
//! metadata arXiv touched, only updates a paper paperboy already has.
//!
//! Requests share the arXiv API's process-wide [`RequestSpacing`] (arXiv's 3-second rule covers all its
//! legacy APIs) and follow `resumptionToken` until the list ends. Not for parsing
//! (`arxiv_xml::parse_oai`) or for the daily listing (`arxiv_rss`).

use super::arxiv_xml::{self, OaiEntry};
use super::http::{HttpClient, RequestSpacing};
use super::{SkippedItem, SourceError};
use chrono::NaiveDate;
use url::Url;

/// A day's harvest with more pages than this is cut short with a warning (arXiv pages hold
/// about a thousand records; a day in one archive has hundreds).
pub const MAX_PAGES: u32 = 100;

/// How long before the harvested day a first version may have been submitted and still count
/// as new: arXiv announces a submission within a few days, so an older v1 whose record changed
/// is a metadata fix, not news.
pub const NEW_WITHIN_DAYS: i64 = 7;

/// What one day's harvest returned.
#[derive(Debug, Default)]
pub struct OaiHarvest {
    /// New papers in the configured categories.
    pub new: Vec<OaiEntry>,
    /// Revisions and metadata changes in the configured categories: updates only.
    pub updates: Vec<OaiEntry>,
    pub skipped: Vec<SkippedItem>,
    /// Records of the archives outside the configured categories.
    pub other_categories: usize,
    pub requests: u32,
}

#[derive(Clone, Debug)]
pub struct ArxivOai {
    base_url: Url,
    client: HttpClient,
    spacing: RequestSpacing,
}

impl ArxivOai {
    pub fn new(base_url: Url, client: HttpClient, spacing: RequestSpacing) -> Self {
        ArxivOai {
            base_url,
            client,
            spacing,
        }
    }

    /// The OAI-PMH sets that hold `categories`: the archive, under `physics:` for the physics
    /// archives (`astro-ph.GA` → `physics:astro-ph`, `cs.LG` → `cs`), each once.
    pub fn sets_for(categories: &[String]) -> Vec<String> {
        const PHYSICS: &[&str] = &[
            "astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math-ph",
            "nlin", "nucl-ex", "nucl-th", "physics", "quant-ph",
        ];
        let mut sets: Vec<String> = Vec::new();
        for c in categories {
            let archive = c.split('.').next().unwrap_or(c);
            let set = if PHYSICS.contains(&archive) {
                format!("physics:{archive}")
            } else {
                archive.to_string()
            };
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        sets
    }

    /// The base URL with these query parameters (the base URL is the whole endpoint).
    pub fn request_url(&self, params: &[(&str, &str)]) -> Url {
        let mut url = self.base_url.clone();
        url.set_fragment(None);
        url.query_pairs_mut().clear().extend_pairs(params);
        url
    }

    /// Every record of `date` in the sets of `categories`, split into new papers and updates.
    pub async fn day(
        &self,
        date: NaiveDate,
        categories: &[String],
    ) -> Result<OaiHarvest, SourceError> {
        let mut out = OaiHarvest::default();
        let day = date.format("%Y-%m-%d").to_string();
        for set in Self::sets_for(categories) {
            let mut url = self.request_url(&[
                ("verb", "ListRecords"),
                ("metadataPrefix", "arXiv"),
                ("set", &set),
                ("from", &day),
                ("until", &day),
            ]);
            let mut pages = 0;
            loop {
                let body = self.client.get_text_paced(&url, &self.spacing).await?;
                out.requests += 1;
                let page = arxiv_xml::parse_oai(&body, pages).map_err(|detail| {
                    SourceError::Malformed {
                        url: url.to_string(),
                        detail,
                    }
                })?;
                tracing::debug!(
                    source = "arxiv",
                    url = %url,
                    records = page.entries.len(),
                    skipped = page.skipped.len(),
                    deleted = page.deleted,
                    complete = page.complete_list_size,
                    "read a page of arXiv's OAI-PMH"
                );
                out.skipped.extend(page.skipped);
                for entry in page.entries {
                    classify(entry, date, categories, &mut out);
                }
                pages += 1;
                let Some(token) = page.resumption_token else {
                    break;
                };
                if pages >= MAX_PAGES {
                    tracing::warn!(
                        source = "arxiv",
                        set = %set,
                        pages,
                        "arXiv's OAI-PMH list has more pages than paperboy follows; stopped"
                    );
                    break;
                }
                // OAI-PMH: a resumption request carries the verb and the token only.
                url = self.request_url(&[("verb", "ListRecords"), ("resumptionToken", &token)]);
            }
        }
        Ok(out)
    }
}

/// Files `entry` as new, an update, or outside the categories.
fn classify(entry: OaiEntry, date: NaiveDate, categories: &[String], out: &mut OaiHarvest) {
    // `oai_dc` records carry no category codes: the set they came from is all we know.
    let in_categories = entry.paper.categories.is_empty()
        || entry
            .paper
            .categories
            .iter()
            .any(|c| categories.contains(c));
    if !in_categories {
        out.other_categories += 1;
        return;
    }
    let recent = entry
        .created
        .is_some_and(|c| c <= date && (date - c).num_days() <= NEW_WITHIN_DAYS);
    if recent && !entry.revised {
        out.new.push(entry);
    } else {
        out.updates.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Paper, PaperId};

    fn entry(cats: &[&str], created: &str, revised: bool) -> OaiEntry {
        let id = PaperId::parse_arxiv("2401.00001").unwrap();
        OaiEntry {
            paper: Paper {
                links: Paper::arxiv_links(&id),
                id,
                title: "T".into(),
                abstract_text: String::new(),
                authors: vec![],
                categories: cats.iter().map(|c| c.to_string()).collect(),
                published_at: None,
                upvotes: None,
                arxiv: Default::default(),
            },
            created: created.parse().ok(),
            revised,
            datestamp: None,
        }
    }

    #[test]
    fn sets_are_archives_with_physics_prefixed() {
        let cats: Vec<String> = ["cs.LG", "cs.CL", "stat.ML", "astro-ph.GA", "quant-ph"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            ArxivOai::sets_for(&cats),
            ["cs", "stat", "physics:astro-ph", "physics:quant-ph"]
        );
    }

    #[test]
    fn new_only_for_a_recent_first_version_in_our_categories() {
        let day: NaiveDate = "2024-01-26".parse().unwrap();
        let ours = vec!["cs.LG".to_string()];
        let mut out = OaiHarvest::default();
        classify(entry(&["cs.LG"], "2024-01-24", false), day, &ours, &mut out);
        classify(entry(&["cs.LG"], "2024-01-24", true), day, &ours, &mut out);
        classify(entry(&["cs.LG"], "2013-03-08", false), day, &ours, &mut out);
        classify(entry(&["cs.DS"], "2024-01-24", false), day, &ours, &mut out);
        classify(entry(&[], "2024-01-25", false), day, &ours, &mut out);
        assert_eq!(
            out.new.len(),
            2,
            "the recent v1 and the uncategorised oai_dc record"
        );
        assert_eq!(out.updates.len(), 2, "the revision and the old paper");
        assert_eq!(out.other_categories, 1);
    }

    #[test]
    fn a_resumption_request_carries_only_the_verb_and_token() {
        let oai = ArxivOai::new(
            Url::parse("https://oaipmh.arxiv.org/oai?stale=1").unwrap(),
            HttpClient::new(&Default::default()).unwrap(),
            RequestSpacing::new(std::time::Duration::ZERO),
        );
        let url = oai.request_url(&[("verb", "ListRecords"), ("resumptionToken", "6960524|1001")]);
        assert_eq!(
            url.as_str(),
            "https://oaipmh.arxiv.org/oai?verb=ListRecords&resumptionToken=6960524%7C1001"
        );
    }
}
