//! `[[sources.feeds]]`: any RSS or Atom feed, parsed with feed-rs, against a real HTTP server on
//! 127.0.0.1 serving real feed bodies (arXiv's own RSS and Atom listings are real feeds too),
//! with a real SQLite store: keys (arXiv id, DOI, link), merging with the arXiv source,
//! conditional GET, a broken feed leaving the other sources delivering, and the `paperboy
//! papers` and `paperboy fetch --from/--to` commands on the built binary.

use crate::sources_support::*;
use chrono::NaiveDate;
use paperboy::jobs::fetch;
use paperboy::sources::feed::parse_feed;
use std::process::Command;

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn feed_toml(server: &TestServer, name: &str, path: &str) -> String {
    format!(
        "[[sources.feeds]]\nname = \"{name}\"\nurl = \"{}{path}\"\n",
        server.url()
    )
}

fn with_feeds(server: &TestServer, hf: bool, arxiv: bool, feeds: &str) -> String {
    // `[[sources.feeds]]` tables go last so that the keys before them stay in their tables.
    sources_toml(server, hf, arxiv, "") + feeds
}

#[test]
fn real_rss_and_atom_feeds_key_papers_by_arxiv_id() {
    let (papers, skipped) = parse_feed(RSS.as_bytes()).unwrap();
    assert!(skipped.is_empty());
    let ids: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        ["2609.26811", "2609.26820", "2205.06398", "2009.13987"]
    );
    assert_eq!(
        papers[1].authors,
        ["Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan"]
    );
    assert_eq!(papers[0].categories, ["cs.LG"]);

    let (papers, skipped) = parse_feed(ATOM_LISTING.as_bytes()).unwrap();
    assert!(skipped.is_empty());
    let ids: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["2609.28553", "2402.10149", "2401.08875"]);
    assert_eq!(
        papers[0].title,
        "SMILESGNN: Interpretable Clinical Toxicity Prediction via SMILES-Graph Cross-Attention Fusion"
    );
    assert_eq!(papers[1].categories, ["hep-ph", "cs.LG", "hep-ex"]);
}

#[test]
fn without_an_arxiv_id_a_paper_is_keyed_by_doi_else_by_link() {
    // The real Atom listing, its arXiv identity replaced by a journal's DOI link and by a plain
    // link: what a journal feed looks like.
    let doi = ATOM_LISTING
        .replacen(
            "<id>oai:arXiv.org:2609.28553v1</id>",
            "<id>https://doi.org/10.1101/2026.09.25.614001</id>",
            1,
        )
        .replacen(
            "https://arxiv.org/abs/2609.28553",
            "https://www.biorxiv.org/content/10.1101/2026.09.25.614001v1",
            1,
        )
        .replacen(
            "<id>oai:arXiv.org:2402.10149v3</id>",
            "<id>tag:journal.example,2026:42</id>",
            1,
        )
        .replacen(
            "https://arxiv.org/abs/2402.10149",
            "https://journal.example/articles/42",
            1,
        );
    let (papers, _) = parse_feed(doi.as_bytes()).unwrap();
    assert_eq!(papers[0].id.as_str(), "doi:10.1101/2026.09.25.614001");
    assert_eq!(
        papers[0].arxiv.doi.as_deref(),
        Some("10.1101/2026.09.25.614001")
    );
    assert_eq!(
        papers[0].links.abstract_url.as_deref(),
        Some("https://www.biorxiv.org/content/10.1101/2026.09.25.614001v1")
    );
    assert_eq!(
        papers[1].id.as_str(),
        "url:https://journal.example/articles/42"
    );
    assert_eq!(papers[2].id.as_str(), "2401.08875");
}

#[tokio::test]
async fn a_feed_merges_with_the_arxiv_listing_and_answers_304() {
    let server = TestServer::start(|h| {
        if h.path.starts_with("/rss/") {
            Reply::ok(RSS)
        } else if h.path == "/feed/lg" {
            if h.header("if-modified-since") == Some("Fri, 25 Sep 2026 04:00:11 GMT") {
                Reply::status(304)
            } else {
                Reply::ok(RSS).header("last-modified", "Fri, 25 Sep 2026 04:00:11 GMT")
            }
        } else if h.path == "/api/query" {
            Reply::ok(API_EMPTY)
        } else {
            Reply::ok("[]")
        }
    })
    .await;
    let h = Harness::new(&with_feeds(
        &server,
        false,
        true,
        &feed_toml(&server, "lg", "/feed/lg"),
    ))
    .await;
    let app = h.app_at("2026-09-24T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let names: Vec<&str> = sources.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["arxiv", "lg"]);
    let reports = fetch::fetch_scheduled(&app, &sources, date("2026-09-24")).await;
    let feed = reports.iter().find(|r| r.source == "lg").unwrap();
    let o = feed.result.as_ref().unwrap();
    // The feed lists all four: the two arXiv announced as new are merged, the other two are
    // new from the feed (a feed has no announce types).
    assert_eq!((o.counts.new, o.counts.updated), (2, 2), "{o:?}");
    let p = h.store.paper("2609.26811").await.unwrap().unwrap();
    assert_eq!(p.sources, ["arxiv", "lg"]);
    // The feed cannot list past days: no catch-up request for it.
    assert_eq!(server.hits_on("/feed/").len(), 1);

    let app = h.app_at("2026-09-24T13:00:00Z");
    let reports = fetch::fetch_scheduled(&app, &sources, date("2026-09-24")).await;
    let feed = reports.iter().find(|r| r.source == "lg").unwrap();
    assert!(feed.result.as_ref().unwrap().not_modified);
    let hits = server.hits_on("/feed/");
    assert_eq!(
        hits[1].header("if-modified-since"),
        Some("Fri, 25 Sep 2026 04:00:11 GMT")
    );
}

#[tokio::test]
async fn a_broken_feed_fails_alone() {
    let truncated = ATOM_LISTING[..ATOM_LISTING.len() / 3].to_string();
    let server = TestServer::start(move |h| {
        if h.path == "/api/daily_papers" {
            if h.param("date") == "2024-10-25" {
                Reply::ok(HF_DAY_2024)
            } else {
                Reply::ok("[]")
            }
        } else if h.path == "/feed/broken" {
            Reply::ok(truncated.clone())
        } else if h.path == "/feed/good" {
            Reply::ok(ATOM_LISTING)
        } else {
            Reply::status(404)
        }
    })
    .await;
    let feeds =
        feed_toml(&server, "broken", "/feed/broken") + &feed_toml(&server, "good", "/feed/good");
    let h = Harness::new(&with_feeds(&server, true, false, &feeds)).await;
    let app = h.app_at("2024-10-25T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let reports = fetch::fetch_scheduled(&app, &sources, date("2024-10-25")).await;
    let broken = reports.iter().find(|r| r.source == "broken").unwrap();
    let err = broken.result.as_ref().unwrap_err();
    assert!(err.contains("/feed/broken"), "{err}");
    let good = reports.iter().find(|r| r.source == "good").unwrap();
    assert_eq!(good.result.as_ref().unwrap().counts.new, 3);
    let hf = reports.iter().rev().find(|r| r.source == "hf").unwrap();
    assert_eq!(hf.result.as_ref().unwrap().counts.new, 29);
    let state = h.store.source_status("broken").await.unwrap().unwrap();
    assert!(state.last_error.unwrap().contains("/feed/broken"));
}

/// The built binary: `fetch --source arxiv --from --to` backfills through the API, then
/// `papers --source … --format table|json` lists papers with their sources and each source's
/// status.
#[tokio::test]
async fn fetch_backfill_and_papers_on_the_command_line() {
    let server = TestServer::start(|h| {
        if h.path == "/api/query" && h.param("search_query").contains("20251016") {
            Reply::ok(API_2025)
        } else if h.path == "/api/query" {
            Reply::ok(API_EMPTY)
        } else if h.path.starts_with("/rss/") {
            Reply::status(500)
        } else {
            Reply::ok("[]")
        }
    })
    .await;
    let h = Harness::new("").await;
    let config = h.dir.path().join("paperboy.toml");
    let (db, _cli_pg) = crate::common::test_database_url(&h.dir.path().join("cli.db"));
    let toml = format!(
        "[database]\nurl = \"{}\"\n[mail]\ntransport = \"file\"\nfile_dir = \"{}\"\n{}",
        db,
        h.dir.path().join("outbox").display(),
        sources_toml(&server, false, true, "")
    );
    std::fs::write(&config, toml).unwrap();
    let run = move |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_paperboy"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("PAPERBOY_NOW", "2025-10-18T12:00:00Z")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Run blocking commands off the server's runtime thread.
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let a = run(&["migrate"]);
        assert!(a.0, "{a:?}");
        let f = run(&[
            "fetch",
            "--source",
            "arxiv",
            "--from",
            "2025-10-15",
            "--to",
            "2025-10-17",
        ]);
        let p = run(&["papers", "--source", "arxiv-api"]);
        let j = run(&["papers", "--format", "json"]);
        let s = run(&["fetch", "--source", "arxiv"]);
        (f, p, j, s)
    })
    .await
    .map(|(f, p, j, s)| {
        assert!(f.0, "backfill succeeds: {f:?}");
        assert!(f.1.contains("arxiv 2025-10-16: 2 papers (2 new"), "{}", f.1);
        assert!(f.1.contains("arxiv 2025-10-15: 0 papers"), "{}", f.1);
        assert!(p.0, "{p:?}");
        assert!(p.1.contains("2510.14968"), "{}", p.1);
        assert!(p.1.contains("arxiv-api"), "the paper's source: {}", p.1);
        assert!(p.1.contains("2 papers"), "{}", p.1);
        assert!(
            p.1.contains("arxiv: last success"),
            "per-source status: {}",
            p.1
        );
        let json: serde_json::Value = serde_json::from_str(&j.1).unwrap();
        let list = json.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["seen_by"][0]["source"], "arxiv-api");
        assert!(list.iter().any(|p| {
            p["arxiv"]["comment"]
                .as_str()
                .is_some_and(|c| c.contains("NeurIPS"))
        }));
        s
    })
    .unwrap();
    // The scheduled fetch: the listing answers 500, and the command says so and fails.
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("error: source arxiv failed"), "{stderr}");
    assert!(
        stderr.contains("/rss/cs.LG+cs.AI+cs.CL+stat.ML"),
        "{stderr}"
    );
    let api_queries: Vec<String> = server
        .hits_on("/api/query")
        .iter()
        .map(|h| h.param("search_query").to_string())
        .collect();
    assert!(api_queries.iter().any(|q| q.contains("20251015")));
    assert!(api_queries.iter().any(|q| q.contains("20251017")));
}
