//! The arXiv source and the merge across sources, against a real HTTP server on 127.0.0.1
//! serving the real arXiv and Hugging Face fixture bodies, with a real SQLite store: every
//! fixture parsed into the right papers, one row per paper across Hugging Face, the listing and
//! the API, replacements never new, the API's 3-second spacing, conditional GET, catch-up after
//! a gap, each failure mode with the other sources still delivering, staleness.
//!
//! Not here: any RSS/Atom feed (`source_feeds`), the Hugging Face source alone (`source_hf`).

use crate::sources_support::*;
use chrono::NaiveDate;
use paperboy::jobs::fetch::{self, SourceReport};
use paperboy::sources::arxiv_api::{ArxivApi, shared_spacing};
use paperboy::sources::arxiv_xml::{self, AnnounceType};
use paperboy::sources::http::{HttpClient, HttpSettings, RequestSpacing};
use std::time::Duration;
use url::Url;

fn ids(entries: &[arxiv_xml::ArxivEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.paper.id.as_str()).collect()
}

fn report<'a>(reports: &'a [SourceReport], source: &str) -> &'a SourceReport {
    reports
        .iter()
        .rev()
        .find(|r| r.source == source)
        .unwrap_or_else(|| panic!("no report for {source}: {reports:?}"))
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn the_rss_listing_fixture_reads_into_four_papers() {
    let page = arxiv_xml::parse(RSS, 0).unwrap();
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    assert_eq!(
        ids(&page.entries),
        ["2609.26811", "2609.26820", "2205.06398", "2009.13987"]
    );
    let versions: Vec<_> = page.entries.iter().map(|e| e.version).collect();
    assert_eq!(versions, [Some(1), Some(1), Some(2), Some(3)]);
    let announce: Vec<_> = page.entries.iter().map(|e| e.announce.clone()).collect();
    assert_eq!(
        announce,
        [
            Some(AnnounceType::New),
            Some(AnnounceType::New),
            Some(AnnounceType::Cross),
            Some(AnnounceType::Replace)
        ]
    );
    let first = &page.entries[0].paper;
    assert_eq!(
        first.title,
        "The Drift Contract: Spectral Updates for Depth-Robust Local Learning"
    );
    assert!(
        first
            .abstract_text
            .starts_with("Local learning trains each layer"),
        "the `arXiv:… Announce Type: … Abstract:` prefix is gone: {}",
        first.abstract_text
    );
    assert!(!first.abstract_text.contains('\n'));
    assert_eq!(first.authors, ["Fabien Polly"]);
    assert_eq!(first.categories, ["cs.LG"]);
    assert_eq!(
        first.links.abstract_url.as_deref(),
        Some("https://arxiv.org/abs/2609.26811")
    );
    assert_eq!(
        first.published_at.unwrap().to_rfc3339(),
        "2026-09-24T04:00:00+00:00"
    );
    let second = &page.entries[1].paper;
    assert_eq!(
        second.authors,
        ["Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan"]
    );
    assert_eq!(second.categories, ["cs.LG", "cs.AI"]);
    let cross = &page.entries[2].paper;
    assert_eq!(cross.categories, ["stat.ME", "stat.AP", "stat.ML"]);
    assert_eq!(
        cross.arxiv.doi.as_deref(),
        Some("10.1093/bioinformatics/btac431")
    );
    assert_eq!(
        cross.authors,
        ["Pritam Dey", "Zhengwu Zhang", "David B. Dunson"]
    );
}

#[test]
fn the_atom_listing_fixture_reads_into_three_papers() {
    let page = arxiv_xml::parse(ATOM_LISTING, 0).unwrap();
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    assert_eq!(
        ids(&page.entries),
        ["2609.28553", "2402.10149", "2401.08875"]
    );
    let announce: Vec<_> = page
        .entries
        .iter()
        .map(|e| e.announce.clone().unwrap())
        .collect();
    assert_eq!(
        announce,
        [
            AnnounceType::New,
            AnnounceType::Cross,
            AnnounceType::Replace
        ]
    );
    let first = &page.entries[0].paper;
    assert_eq!(
        first.arxiv.journal_ref.as_deref(),
        Some("2026 International Conference on Multimedia Analysis and Pattern Recognition (MAPR)")
    );
    assert_eq!(
        first.arxiv.doi.as_deref(),
        Some("10.1109/MAPR72750.2026.11685822")
    );
    assert_eq!(first.authors.len(), 6);
    assert_eq!(first.categories, ["cs.LG", "cs.AI"]);
    assert!(first.abstract_text.starts_with("Drug toxicity prediction"));
    assert_eq!(
        page.entries[1].paper.categories,
        ["hep-ph", "cs.LG", "hep-ex"]
    );
    assert_eq!(page.entries[2].version, Some(3));
}

#[test]
fn the_classic_api_fixture_reads_into_ten_papers_with_old_style_ids() {
    let page = arxiv_xml::parse(API_CLASSIC, 0).unwrap();
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    assert_eq!(page.total_results, Some(120839));
    assert_eq!(
        ids(&page.entries),
        [
            "1501.05039",
            "1503.01162",
            "quant-ph/0210005",
            "0808.0631",
            "0808.0638",
            "0808.0639",
            "0705.1367",
            "1802.03292",
            "physics/0507092",
            "1312.7288"
        ]
    );
    for e in &page.entries {
        assert!(!e.paper.title.contains('\n') && !e.paper.title.contains("  "));
        assert!(!e.paper.abstract_text.starts_with(' ') && !e.paper.abstract_text.contains('\n'));
        assert!(!e.paper.authors.is_empty());
        assert!(!e.paper.categories.is_empty(), "{}", e.paper.id);
        assert_eq!(e.announce, None, "the API has no announce type");
        for c in &e.paper.categories {
            assert!(
                !c.contains(' ') && !c.contains(';'),
                "MSC/ACM classes are not arXiv categories: {c}"
            );
        }
    }
    let second = &page.entries[1].paper;
    assert_eq!(
        second.title,
        "Report on a Boston University Conference December 7-8, 2012 on 'How Can the History and \
         Philosophy of Science Contribute to Contemporary U.S. Science Teaching?'"
    );
    assert_eq!(
        second.arxiv.doi.as_deref(),
        Some("10.1007/s11191-014-9716-8")
    );
    assert_eq!(
        second.arxiv.journal_ref.as_deref(),
        Some("Science & Education, September 2014, 23(9): 1853-1873")
    );
    assert_eq!(page.entries[0].paper.categories, ["cs.DB", "cs.CY"]);
    assert_eq!(page.entries[0].paper.authors, ["Yangyong Zhu", "Yun Xiong"]);
    let dois = page
        .entries
        .iter()
        .filter(|e| e.paper.arxiv.doi.is_some())
        .count();
    let refs = page
        .entries
        .iter()
        .filter(|e| e.paper.arxiv.journal_ref.is_some())
        .count();
    assert_eq!((dois, refs), (6, 5));
}

#[test]
fn the_2025_api_fixture_reads_by_element_name() {
    let page = arxiv_xml::parse(API_2025, 0).unwrap();
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    assert_eq!(page.entries.len(), 2);
    let rdd = &page.entries[0].paper;
    assert_eq!(rdd.id.as_str(), "2510.14968");
    assert_eq!(
        rdd.title,
        "RDD: Retrieval-Based Demonstration Decomposer for Planner Alignment in Long-Horizon Tasks"
    );
    assert!(
        rdd.abstract_text
            .starts_with("To tackle long-horizon tasks")
    );
    assert_eq!(
        rdd.authors,
        ["Mingxuan Yan", "Yuping Wang", "Zechun Liu", "Jiachen Li"]
    );
    assert_eq!(rdd.categories[0], "cs.RO", "primary category first");
    assert_eq!(
        rdd.arxiv.comment.as_deref(),
        Some(
            "39th Conference on Neural Information Processing Systems (NeurIPS 2025); Project \
             Website: rdd-neurips.github.io"
        )
    );
    assert_eq!(page.entries[0].version, Some(1));
}

/// Hugging Face lists two papers the arXiv fixtures also have; the listing and the API add what
/// they know; each paper is one row, new once.
#[tokio::test]
async fn one_paper_many_sources_merged_and_new_once() {
    let server = TestServer::start(route(
        |h| {
            if h.param("date") == "2026-09-24" {
                Reply::ok(hf_items_for(&["2609.26811", "2510.14968"]))
            } else {
                Reply::ok("[]")
            }
        },
        |_| Reply::ok(RSS),
        |h| {
            if h.param("id_list").contains("2510.14968") {
                Reply::ok(API_2025)
            } else {
                Reply::ok(API_EMPTY)
            }
        },
    ))
    .await;
    let h = Harness::new(&sources_toml(&server, true, true, "")).await;
    let app = h.app_at("2026-09-24T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let reports = fetch::fetch_scheduled(&app, &sources, date("2026-09-24")).await;

    let hf = report(&reports, "hf").result.as_ref().unwrap();
    assert_eq!(hf.counts.new, 2);
    let arxiv = report(&reports, "arxiv").result.as_ref().unwrap();
    // new 2609.26811 (known from hf: merged), new 2609.26820; cross and replace only update,
    // and neither paper is known.
    assert_eq!(
        (arxiv.counts.new, arxiv.counts.updated, arxiv.counts.ignored),
        (1, 1, 2),
        "{arxiv:?}"
    );
    let enrich = report(&reports, "arxiv-api").result.as_ref().unwrap();
    assert_eq!(enrich.counts.updated, 1, "{enrich:?}");
    assert_eq!(
        enrich.counts.ignored, 1,
        "the other API entry is not a known paper"
    );
    // id_list asked for exactly the paper that had no categories.
    let api_hits = server.hits_on("/api/query");
    assert!(
        api_hits.iter().any(|h| h.param("id_list") == "2510.14968"),
        "{:?}",
        api_hits.iter().map(|h| h.query.clone()).collect::<Vec<_>>()
    );

    let all = h
        .store
        .papers_listed(Default::default(), None)
        .await
        .unwrap();
    let mut keys: Vec<&str> = all.iter().map(|p| p.paper.id.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["2510.14968", "2609.26811", "2609.26820"]);

    let rdd = h.store.paper("2510.14968").await.unwrap().unwrap();
    assert!(rdd.paper.upvotes.is_some(), "upvotes from Hugging Face");
    assert_eq!(rdd.paper.categories[0], "cs.RO", "categories from arXiv");
    assert!(
        rdd.paper
            .arxiv
            .comment
            .as_deref()
            .unwrap()
            .contains("NeurIPS")
    );
    assert!(rdd.paper.links.hf_url.is_some() && rdd.paper.links.code_url.is_some());
    assert_eq!(rdd.sources, ["hf", "arxiv-api"]);

    let drift = h.store.paper("2609.26811").await.unwrap().unwrap();
    assert_eq!(drift.sources, ["hf", "arxiv"]);
    assert_eq!(drift.paper.categories, ["cs.LG"]);
    let seen = h
        .store
        .paper_sources(&["2609.26811".to_string()])
        .await
        .unwrap();
    let rows = &seen["2609.26811"];
    assert_eq!(rows.len(), 2);
    let listing = rows.iter().find(|r| r.source == "arxiv").unwrap();
    assert_eq!(listing.announce_type.as_deref(), Some("new"));
    assert!(
        rows.iter()
            .any(|r| r.source == "hf" && r.announce_type.is_none())
    );
    let first_seen = drift.first_seen_at;

    // The next day the listing announces a new version of 2609.26811: it updates, never new.
    let replaced = RSS
        .replacen(
            "arXiv:2609.26811v1 Announce Type: new",
            "arXiv:2609.26811v2 Announce Type: replace",
            1,
        )
        .replacen(
            "<arxiv:announce_type>new</arxiv:announce_type>",
            "<arxiv:announce_type>replace</arxiv:announce_type>",
            1,
        );
    server.set(route(
        |_| Reply::ok("[]"),
        move |_| Reply::ok(replaced.clone()),
        |_| Reply::ok(API_EMPTY),
    ));
    let app = h.app_at("2026-09-25T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let reports = fetch::fetch_scheduled(&app, &sources, date("2026-09-25")).await;
    let arxiv = report(&reports, "arxiv").result.as_ref().unwrap();
    assert_eq!(arxiv.counts.new, 0, "{arxiv:?}");
    let drift = h.store.paper("2609.26811").await.unwrap().unwrap();
    assert_eq!(drift.first_seen_at, first_seen, "first_seen_at is set once");
    let new_today = h
        .store
        .papers_first_seen_since("2026-09-25T00:00:00Z".parse().unwrap())
        .await
        .unwrap();
    assert!(
        new_today.is_empty(),
        "nothing is new for the second day's digest: {new_today:?}"
    );
}

#[tokio::test]
async fn cross_lists_are_new_only_when_configured() {
    let server = TestServer::start(route(
        |_| Reply::ok("[]"),
        |_| Reply::ok(RSS),
        |_| Reply::ok(API_EMPTY),
    ))
    .await;
    for (cross_lists, want_new) in [(false, 2), (true, 3)] {
        let toml =
            sources_toml(&server, false, true, "") + &format!("cross_lists = {cross_lists}\n");
        let h = Harness::new(&toml).await;
        let app = h.app_at("2026-09-24T12:00:00Z");
        let sources = fetch::sources(&app, None).unwrap();
        let r = fetch::fetch_day(&app, &sources, date("2026-09-24")).await;
        // fetch_day of today for arXiv is the API; the listing is fetch_scheduled's job.
        assert!(r[0].result.is_ok());
        let r = fetch::fetch_scheduled(&app, &sources, date("2026-09-24")).await;
        let o = report(&r, "arxiv").result.as_ref().unwrap();
        assert_eq!(o.counts.new, want_new, "cross_lists = {cross_lists}: {o:?}");
        let listing = server.hits_on("/rss/");
        assert_eq!(
            listing.last().unwrap().path,
            "/rss/cs.LG+cs.AI+cs.CL+stat.ML",
            "the categories joined by + in the listing URL"
        );
    }
}

/// Three API requests through the default 3 s spacing, two of them racing from two tasks:
/// one at a time, each at least 3 s after the one before, as the server measured them.
#[tokio::test]
async fn api_requests_are_three_seconds_apart_process_wide() {
    let server = TestServer::start(|_| Reply::ok(API_EMPTY)).await;
    let client = HttpClient::new(&HttpSettings::default()).unwrap();
    let base = Url::parse(&server.url()).unwrap();
    // The default interval of `sources.arxiv.api_interval_ms`, read from the shipped defaults.
    let settings = paperboy::config::Settings::load_with_env(None, Vec::new()).unwrap();
    let interval = settings.sources.arxiv.api_interval;
    assert_eq!(interval, Duration::from_secs(3));
    let a = ArxivApi::new(base.clone(), client.clone(), shared_spacing(interval), 10);
    let b = ArxivApi::new(base, client, shared_spacing(interval), 10);
    a.by_ids(&["2510.14968".into()]).await.unwrap();
    let ids_b = ["2609.26811".to_string()];
    let cats = ["cs.LG".to_string()];
    let (ra, rb) = tokio::join!(a.by_ids(&ids_b), b.submitted_on(date("2026-09-24"), &cats));
    ra.unwrap();
    rb.unwrap();
    let hits = server.hits();
    assert_eq!(hits.len(), 3);
    for pair in hits.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(2950),
            "requests {gap:?} apart; arXiv asks for 3 s"
        );
    }
    let query = hits
        .iter()
        .find(|h| !h.param("search_query").is_empty())
        .unwrap();
    assert_eq!(
        query.param("search_query"),
        "(cat:cs.LG) AND submittedDate:[202609240000 TO 202609242359]"
    );
    assert_eq!(query.param("start"), "0");
    assert_eq!(query.param("max_results"), "10");
}

/// A spacing with a short interval spaces retries too (a 503 answered, then retried).
#[tokio::test]
async fn retries_wait_for_the_pacer_too() {
    let server = TestServer::start(|_| Reply::ok(API_EMPTY)).await;
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    server.set(move |_| {
        if n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::status(503)
        } else {
            Reply::ok(API_EMPTY)
        }
    });
    let client = HttpClient::new(&HttpSettings {
        backoff: Duration::from_millis(1),
        ..HttpSettings::default()
    })
    .unwrap();
    let api = ArxivApi::new(
        Url::parse(&server.url()).unwrap(),
        client,
        RequestSpacing::new(Duration::from_millis(400)),
        10,
    );
    api.by_ids(&["2510.14968".into()]).await.unwrap();
    let hits = server.hits();
    assert_eq!(hits.len(), 2);
    assert!(hits[1].at.duration_since(hits[0].at) >= Duration::from_millis(390));
}

#[tokio::test]
async fn api_paging_follows_start_until_the_total() {
    // The classic fixture claims 120839 results; page 2 is past what the server has.
    let server = TestServer::start(|h| {
        if h.param("start") == "0" {
            Reply::ok(API_CLASSIC)
        } else {
            Reply::ok(API_EMPTY)
        }
    })
    .await;
    let client = HttpClient::new(&HttpSettings::default()).unwrap();
    let api = ArxivApi::new(
        Url::parse(&server.url()).unwrap(),
        client,
        RequestSpacing::new(Duration::from_millis(10)),
        10,
    );
    let r = api.search("all:science").await.unwrap();
    assert_eq!(r.entries.len(), 10);
    let starts: Vec<String> = server
        .hits()
        .iter()
        .map(|h| h.param("start").to_string())
        .collect();
    assert_eq!(starts, ["0", "10"]);
}

#[tokio::test]
async fn the_listing_is_fetched_with_a_conditional_get() {
    let server = TestServer::start(route(
        |_| Reply::ok("[]"),
        |h| {
            if h.header("if-none-match") == Some("\"listing-1\"") {
                Reply::status(304)
            } else {
                Reply::ok(RSS)
                    .header("etag", "\"listing-1\"")
                    .header("last-modified", "Thu, 24 Sep 2026 08:58:05 GMT")
            }
        },
        |_| Reply::ok(API_EMPTY),
    ))
    .await;
    let h = Harness::new(&sources_toml(&server, false, true, "")).await;
    let app = h.app_at("2026-09-24T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let first = fetch::fetch_scheduled(&app, &sources, date("2026-09-24")).await;
    assert!(
        !report(&first, "arxiv")
            .result
            .as_ref()
            .unwrap()
            .not_modified
    );
    let state = h.store.source_status("arxiv").await.unwrap().unwrap();
    assert_eq!(state.etag.as_deref(), Some("\"listing-1\""));
    assert_eq!(
        state.last_modified.as_deref(),
        Some("Thu, 24 Sep 2026 08:58:05 GMT")
    );

    let app = h.app_at("2026-09-24T13:00:00Z");
    let second = fetch::fetch_scheduled(&app, &sources, date("2026-09-24")).await;
    let o = report(&second, "arxiv").result.as_ref().unwrap();
    assert!(o.not_modified, "{o:?}");
    assert_eq!(o.fetched, 0);
    let listing = server.hits_on("/rss/");
    assert_eq!(listing.len(), 2);
    assert_eq!(listing[0].header("if-none-match"), None);
    assert_eq!(listing[1].header("if-none-match"), Some("\"listing-1\""));
    assert_eq!(
        listing[1].header("if-modified-since"),
        Some("Thu, 24 Sep 2026 08:58:05 GMT")
    );
    assert!(
        listing[1]
            .header("user-agent")
            .unwrap()
            .ends_with("; mailto:ops@example.org"),
        "the User-Agent carries sources.contact"
    );
    // A 304 is a success that keeps the validators and does not look stale.
    let state = h.store.source_status("arxiv").await.unwrap().unwrap();
    assert_eq!(state.etag.as_deref(), Some("\"listing-1\""));
    assert_eq!(state.last_fetched, Some(4));
    assert!(report(&second, "arxiv").stale.is_none());
}

/// Down from the 24th to the 28th: the next run fetches each missed day once (Hugging Face by
/// date, arXiv through the API by submission date), and the run after fetches only today.
#[tokio::test]
async fn catch_up_after_a_gap_fetches_each_missed_day_once() {
    let server = TestServer::start(route(
        |h| {
            if h.param("date") == "2024-10-25" {
                Reply::ok(HF_DAY_2024)
            } else {
                Reply::ok("[]")
            }
        },
        |_| Reply::ok(RSS),
        |_| Reply::ok(API_EMPTY),
    ))
    .await;
    let h = Harness::new(&sources_toml(&server, true, true, "")).await;
    let app = h.app_at("2024-10-22T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    fetch::fetch_scheduled(&app, &sources, date("2024-10-22")).await;
    assert_eq!(
        h.store
            .source_status("hf")
            .await
            .unwrap()
            .unwrap()
            .checkpoint,
        Some(date("2024-10-22"))
    );
    server.clear();

    let app = h.app_at("2024-10-27T12:00:00Z");
    let reports = fetch::fetch_scheduled(&app, &sources, date("2024-10-27")).await;
    let hf_dates: Vec<String> = server
        .hits_on("/api/daily_papers")
        .iter()
        .map(|h| h.param("date").to_string())
        .collect();
    assert_eq!(
        hf_dates,
        [
            "2024-10-22",
            "2024-10-23",
            "2024-10-24",
            "2024-10-25",
            "2024-10-26",
            "2024-10-27"
        ]
    );
    let api_days: Vec<String> = server
        .hits_on("/api/query")
        .iter()
        .map(|h| h.param("search_query").to_string())
        .filter(|q| q.contains("submittedDate"))
        .map(|q| q.split('[').nth(1).unwrap()[..8].to_string())
        .collect();
    assert_eq!(
        api_days,
        ["20241022", "20241023", "20241024", "20241025", "20241026"]
    );
    let missed = reports
        .iter()
        .find(|r| r.source == "hf" && r.date == date("2024-10-25"))
        .unwrap();
    assert_eq!(
        missed.result.as_ref().unwrap().counts.new,
        29,
        "the missed day's papers arrive"
    );
    assert_eq!(
        h.store
            .source_status("arxiv")
            .await
            .unwrap()
            .unwrap()
            .checkpoint,
        Some(date("2024-10-27"))
    );

    server.clear();
    let app = h.app_at("2024-10-27T18:00:00Z");
    fetch::fetch_scheduled(&app, &sources, date("2024-10-27")).await;
    let hf_dates: Vec<String> = server
        .hits_on("/api/daily_papers")
        .iter()
        .map(|h| h.param("date").to_string())
        .collect();
    assert_eq!(hf_dates, ["2024-10-27"], "caught up: today only");
    assert!(
        server
            .hits_on("/api/query")
            .iter()
            .all(|h| !h.param("search_query").contains("submittedDate")),
        "no API catch-up once caught up"
    );
}

/// Each way the arXiv listing can fail: the failure is reported and recorded, Hugging Face
/// still delivers in the same run.
#[tokio::test]
async fn each_failure_of_the_listing_leaves_the_other_sources_delivering() {
    let truncated = RSS[..RSS.len() / 2].to_string();
    type Answer = Box<dyn Fn() -> Reply + Send + Sync>;
    let cases: Vec<(&str, Answer)> = vec![
        ("500", Box::new(|| Reply::status(500))),
        (
            "timeout",
            Box::new(|| Reply::ok(RSS).after(Duration::from_secs(4))),
        ),
        (
            "malformed",
            Box::new(|| Reply::ok("<html><body>Service Unavailable</body></html>")),
        ),
        ("truncated", Box::new(move || Reply::ok(truncated.clone()))),
        (
            "429",
            Box::new(|| Reply::status(429).header("retry-after", "0")),
        ),
    ];
    for (what, answer) in cases {
        let answer = std::sync::Arc::new(answer);
        let server = TestServer::start(route(
            |h| {
                if h.param("date") == "2024-10-25" {
                    Reply::ok(HF_DAY_2024)
                } else {
                    Reply::ok("[]")
                }
            },
            move |_| answer(),
            |_| Reply::ok(API_EMPTY),
        ))
        .await;
        let h = Harness::new(&sources_toml(&server, true, true, "")).await;
        let app = h.app_at("2024-10-25T12:00:00Z");
        let sources = fetch::sources(&app, None).unwrap();
        let reports = fetch::fetch_scheduled(&app, &sources, date("2024-10-25")).await;
        let err = report(&reports, "arxiv").result.as_ref().unwrap_err();
        assert!(
            err.contains("/rss/"),
            "{what}: the error names the URL: {err}"
        );
        let hf = report(&reports, "hf").result.as_ref().unwrap();
        assert_eq!(hf.counts.new, 29, "{what}: Hugging Face still delivers");
        let state = h.store.source_status("arxiv").await.unwrap().unwrap();
        assert!(state.last_error.is_some(), "{what}: recorded");
        let hf_state = h.store.source_status("hf").await.unwrap().unwrap();
        assert!(hf_state.last_error.is_none() && hf_state.last_success_at.is_some());
    }
}

#[tokio::test]
async fn a_tls_failure_is_a_failure_of_that_source_only() {
    let server = TestServer::start(route(
        |h| {
            if h.param("date") == "2024-10-25" {
                Reply::ok(HF_DAY_2024)
            } else {
                Reply::ok("[]")
            }
        },
        |_| Reply::ok(RSS),
        |_| Reply::ok(API_EMPTY),
    ))
    .await;
    // https:// to a plain-HTTP server: the TLS handshake fails.
    let toml = sources_toml(&server, true, true, "").replace(
        &format!("rss_base_url = \"{}\"", server.url()),
        &format!("rss_base_url = \"https://{}\"", server.addr),
    );
    let h = Harness::new(&toml).await;
    let app = h.app_at("2024-10-25T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let reports = fetch::fetch_scheduled(&app, &sources, date("2024-10-25")).await;
    let err = report(&reports, "arxiv").result.as_ref().unwrap_err();
    assert!(err.contains("https://127.0.0.1"), "{err}");
    assert_eq!(
        report(&reports, "hf").result.as_ref().unwrap().counts.new,
        29
    );
}

#[tokio::test]
async fn one_bad_item_is_skipped_and_counted() {
    // The second item loses everything that carries its id.
    let broken = RSS
        .replacen("<link>https://arxiv.org/abs/2609.26820</link>", "", 1)
        .replacen(
            "<guid isPermaLink=\"false\">oai:arXiv.org:2609.26820v1</guid>",
            "",
            1,
        )
        .replacen("arXiv:2609.26820v1 Announce Type", "Announce Type", 1);
    let server = TestServer::start(route(
        |_| Reply::ok("[]"),
        move |_| Reply::ok(broken.clone()),
        |_| Reply::ok(API_EMPTY),
    ))
    .await;
    let h = Harness::new(&sources_toml(&server, false, true, "")).await;
    let app = h.app_at("2026-09-24T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let reports = fetch::fetch_scheduled(&app, &sources, date("2026-09-24")).await;
    let o = report(&reports, "arxiv").result.as_ref().unwrap();
    assert_eq!(o.skipped.len(), 1, "{o:?}");
    assert!(o.skipped[0].contains("item 1"), "{:?}", o.skipped);
    assert_eq!(o.counts.new, 1, "the other new paper still arrives");
    let state = h.store.source_status("arxiv").await.unwrap().unwrap();
    assert_eq!(state.last_skipped, Some(1));
}

/// An empty weekend feed is normal; two announcement days without papers are stale.
#[tokio::test]
async fn empty_weekends_are_normal_and_empty_weekdays_go_stale() {
    let empty = RSS.split("<item>").next().unwrap().to_string() + "</channel>\n</rss>\n";
    let server = TestServer::start(route(
        |_| Reply::ok("[]"),
        |_| Reply::ok(RSS),
        |_| Reply::ok(API_EMPTY),
    ))
    .await;
    let h = Harness::new(&sources_toml(&server, false, true, "stale_after_days = 2")).await;
    // Friday 2026-09-25: papers.
    let app = h.app_at("2026-09-25T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let r = fetch::fetch_scheduled(&app, &sources, date("2026-09-25")).await;
    assert!(report(&r, "arxiv").stale.is_none());
    server.set(route(
        |_| Reply::ok("[]"),
        move |_| Reply::ok(empty.clone()),
        |_| Reply::ok(API_EMPTY),
    ));
    // Saturday, Sunday, Monday: empty, and fine (Monday is one announcement day).
    for day in ["2026-09-26", "2026-09-27", "2026-09-28"] {
        let app = h.app_at(&format!("{day}T12:00:00Z"));
        let r = fetch::fetch_scheduled(&app, &sources, date(day)).await;
        let o = report(&r, "arxiv").result.as_ref().unwrap();
        assert_eq!(o.fetched, 0, "{day}");
        assert!(report(&r, "arxiv").stale.is_none(), "{day} is not stale");
    }
    // Tuesday: the second announcement day without a paper.
    let app = h.app_at("2026-09-29T12:00:00Z");
    let r = fetch::fetch_scheduled(&app, &sources, date("2026-09-29")).await;
    let stale = report(&r, "arxiv")
        .stale
        .as_ref()
        .expect("stale on Tuesday");
    assert!(stale.contains("sources.stale_after_days"), "{stale}");
    assert!(stale.contains("2 announcement days"), "{stale}");
}
