//! `[sources]`: where papers come from (Hugging Face, arXiv, any RSS/Atom feed) and how
//! patiently they are asked.
//! Not for: fetching (that is `sources` and `jobs::fetch`).

use super::ConfigError;
use super::values::{invalid, parse_bool, parse_http_url, parse_range};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SourcesSettings {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub contact: String,
    /// A source that should have produced papers and has produced none for this many of its
    /// announcement days is logged as an error and shown stale by `check` and `papers`.
    pub stale_after_days: u32,
    /// The most missed days one scheduled fetch catches up on after downtime.
    pub catch_up_days: u32,
    pub hf: HfSettings,
    pub arxiv: ArxivSettings,
    /// `[[sources.feeds]]`: any RSS or Atom feed, by name.
    pub feeds: Vec<FeedSettings>,
}

#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// The source name (`paperboy fetch --source NAME`, `source_state`, `paper_sources`).
    pub name: String,
    pub url: url::Url,
}

#[derive(Debug, Clone)]
pub struct HfSettings {
    pub enabled: bool,
    pub base_url: url::Url,
}

#[derive(Debug, Clone)]
pub struct ArxivSettings {
    pub enabled: bool,
    pub categories: Vec<String>,
    pub rss_base_url: url::Url,
    pub api_base_url: url::Url,
    /// Take `cross` announcements (papers cross-listed into the categories) as new papers too.
    pub cross_lists: bool,
    /// The least time between two arXiv API requests, process-wide (arXiv asks for 3 s).
    pub api_interval: Duration,
    /// `max_results` per API page.
    pub api_page_size: u32,
    /// Where past days (catch-up, backfill) come from.
    pub past_days: ArxivPastDays,
    /// The OAI-PMH endpoint, used with `past_days = "oai"`.
    pub oai_base_url: url::Url,
}

/// `sources.arxiv.past_days`: how the arXiv source lists a day it did not see announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArxivPastDays {
    /// The search API by submission date.
    Api,
    /// OAI-PMH `ListRecords` by datestamp (arXiv's recommended bulk interface).
    Oai,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSources {
    timeout_secs: String,
    retries: String,
    backoff_ms: String,
    contact: String,
    stale_after_days: String,
    catch_up_days: String,
    hf: RawHf,
    arxiv: RawArxiv,
    #[serde(default)]
    feeds: Vec<RawFeed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: String,
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHf {
    enabled: String,
    base_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArxiv {
    enabled: String,
    categories: Vec<String>,
    rss_base_url: String,
    api_base_url: String,
    cross_lists: String,
    api_interval_ms: String,
    api_page_size: String,
    past_days: String,
    oai_base_url: String,
}

impl SourcesSettings {
    pub(super) fn parse(raw: &RawSources) -> Result<SourcesSettings, ConfigError> {
        let arxiv = ArxivSettings::parse(&raw.arxiv)?;
        let feeds = FeedSettings::parse_all(&raw.feeds)?;
        Ok(SourcesSettings {
            timeout: Duration::from_secs(u64::from(parse_range(
                "sources.timeout_secs",
                &raw.timeout_secs,
                1,
                600,
            )?)),
            retries: parse_range("sources.retries", &raw.retries, 0, 10)?,
            backoff: Duration::from_millis(u64::from(parse_range(
                "sources.backoff_ms",
                &raw.backoff_ms,
                0,
                600_000,
            )?)),
            contact: raw.contact.trim().to_string(),
            stale_after_days: parse_range(
                "sources.stale_after_days",
                &raw.stale_after_days,
                1,
                365,
            )?,
            catch_up_days: parse_range("sources.catch_up_days", &raw.catch_up_days, 0, 366)?,
            hf: HfSettings {
                enabled: parse_bool("sources.hf.enabled", &raw.hf.enabled)?,
                base_url: parse_http_url("sources.hf.base_url", &raw.hf.base_url)?,
            },
            arxiv,
            feeds,
        })
    }
}

impl ArxivSettings {
    fn parse(raw: &RawArxiv) -> Result<ArxivSettings, ConfigError> {
        let enabled = parse_bool("sources.arxiv.enabled", &raw.enabled)?;
        let categories = parse_arxiv_categories(&raw.categories)?;
        if enabled && categories.is_empty() {
            return Err(invalid(
                "sources.arxiv.categories",
                "[]",
                "at least one arXiv category such as \"cs.LG\" when `sources.arxiv.enabled` is true",
            ));
        }
        Ok(ArxivSettings {
            enabled,
            categories,
            rss_base_url: parse_http_url("sources.arxiv.rss_base_url", &raw.rss_base_url)?,
            api_base_url: parse_http_url("sources.arxiv.api_base_url", &raw.api_base_url)?,
            cross_lists: parse_bool("sources.arxiv.cross_lists", &raw.cross_lists)?,
            api_interval: Duration::from_millis(u64::from(parse_range(
                "sources.arxiv.api_interval_ms",
                &raw.api_interval_ms,
                0,
                600_000,
            )?)),
            api_page_size: parse_range("sources.arxiv.api_page_size", &raw.api_page_size, 1, 2000)?,
            past_days: match raw.past_days.trim() {
                "api" => ArxivPastDays::Api,
                "oai" => ArxivPastDays::Oai,
                other => {
                    return Err(invalid(
                        "sources.arxiv.past_days",
                        other,
                        "\"api\" (the search API by submission date) or \"oai\" (OAI-PMH by datestamp)",
                    ));
                }
            },
            oai_base_url: parse_http_url("sources.arxiv.oai_base_url", &raw.oai_base_url)?,
        })
    }
}

/// arXiv categories as the listing URL and the API query need them: `cs.LG`, `math.AP`,
/// `hep-th`, `q-bio.NC`.
fn parse_arxiv_categories(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for c in raw {
        let c = c.trim();
        let ok = !c.is_empty()
            && c.as_bytes()[0].is_ascii_alphabetic()
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            return Err(invalid(
                "sources.arxiv.categories",
                c,
                "arXiv category names such as \"cs.LG\", \"math.AP\" or \"hep-th\"",
            ));
        }
        if !out.iter().any(|o: &String| o == c) {
            out.push(c.to_string());
        }
    }
    Ok(out)
}

impl FeedSettings {
    /// `[[sources.feeds]]`: names are source names, so they must be unique, short, and not
    /// clash with the built-in sources.
    fn parse_all(raw: &[RawFeed]) -> Result<Vec<FeedSettings>, ConfigError> {
        let mut out: Vec<FeedSettings> = Vec::new();
        for (i, f) in raw.iter().enumerate() {
            let key = format!("sources.feeds[{i}].name");
            let name = f.name.trim();
            let ok = !name.is_empty()
                && name.len() <= 40
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(invalid(
                    &key,
                    name,
                    "a short name of lowercase letters, digits, - and _, such as \"biorxiv-neuro\"",
                ));
            }
            if matches!(name, "hf" | "arxiv" | "arxiv-api") || out.iter().any(|o| o.name == name) {
                return Err(invalid(
                    &key,
                    name,
                    "a name no other source has (hf, arxiv and arxiv-api are taken)",
                ));
            }
            let url = parse_http_url(&format!("sources.feeds[{i}].url"), &f.url)?;
            out.push(FeedSettings {
                name: name.to_string(),
                url,
            });
        }
        Ok(out)
    }
}
