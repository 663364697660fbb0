//! arXiv's OAI-PMH interface: both real `ListRecords` fixtures (`metadataPrefix=arXiv` and
//! `oai_dc`) read into the right papers, OAI-PMH errors, and past days harvested end to end
//! (`sources.arxiv.past_days = "oai"`) from a real HTTP server on 127.0.0.1 into a real SQLite
//! store, following the fixture's real `resumptionToken`.
//!
//! Not here: the listing and the search API (`source_arxiv`).

use crate::sources_support::*;
use chrono::NaiveDate;
use paperboy::jobs::fetch;
use paperboy::sources::arxiv_xml::{self, OaiEntry};

const OAI_ARXIV: &str = include_str!("../fixtures/arxiv/oai_listrecords_arXiv_astro-ph.xml");
const OAI_DC: &str = include_str!("../fixtures/arxiv/oai_listrecords_oai_dc_cs.xml");

fn ids(entries: &[OaiEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.paper.id.as_str()).collect()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn the_arxiv_format_fixture_reads_into_one_paper_with_its_metadata() {
    let page = arxiv_xml::parse_oai(OAI_ARXIV, 0).unwrap();
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    assert_eq!(page.resumption_token, None, "a one-page list");
    assert_eq!(ids(&page.entries), ["0801.3931"]);
    let e = &page.entries[0];
    let p = &e.paper;
    assert_eq!(p.title, "Dynamical study of 2D and 3D barred galaxy models");
    assert_eq!(p.authors, ["T. Manos", "E. Athanassoula"]);
    assert_eq!(p.categories, ["astro-ph"]);
    assert!(
        p.abstract_text
            .starts_with("We study the dynamics of 2D and 3D barred galaxy")
    );
    assert!(
        !p.abstract_text.contains('\n') && !p.abstract_text.contains("  "),
        "white space normalised: {}",
        p.abstract_text
    );
    assert_eq!(p.arxiv.doi.as_deref(), Some("10.1007/978-3-540-75826-6_11"));
    assert_eq!(
        p.arxiv.journal_ref.as_deref(),
        Some("Chaos in Astronomy Astrophysics and Space Science Proceedings 2009, pp 115-122")
    );
    assert!(
        p.arxiv
            .comment
            .as_deref()
            .unwrap()
            .starts_with("8 pages, 3 figures, to appear in the proceedings of the international conference \"Chaos in Astronomy\""),
        "{:?}",
        p.arxiv.comment
    );
    assert_eq!(e.created, Some(day("2008-01-25")));
    assert_eq!(e.datestamp, Some(day("2013-03-26")));
    assert!(!e.revised, "no <updated>: a first version");
    assert_eq!(
        p.links.abstract_url.as_deref(),
        Some("https://arxiv.org/abs/0801.3931")
    );
}

#[test]
fn the_oai_dc_fixture_reads_into_five_papers_and_a_resumption_token() {
    let page = arxiv_xml::parse_oai(OAI_DC, 0).unwrap();
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    assert_eq!(
        ids(&page.entries),
        [
            "1303.2033",
            "2401.14034",
            "2401.14036",
            "2401.14038",
            "2401.14040"
        ]
    );
    assert_eq!(page.resumption_token.as_deref(), Some("6960524|1001"));
    assert_eq!(page.complete_list_size, Some(1162));

    let first = &page.entries[0];
    assert_eq!(first.paper.title, "Extended Fourier analysis of signals");
    assert_eq!(
        first.paper.authors,
        ["Vilnis Liepins"],
        "\"Last, First\" turned round"
    );
    assert!(first.revised, "two dc:date values: a later version");
    assert_eq!(first.created, Some(day("2013-03-08")));
    assert_eq!(
        first.paper.arxiv.comment.as_deref(),
        Some("32 pages, 9 figures")
    );
    assert!(
        first
            .paper
            .abstract_text
            .starts_with("This summary of the doctoral thesis"),
        "the abstract is the description that is not the comment"
    );
    assert!(
        first.paper.categories.is_empty(),
        "dc:subject is prose, not category codes"
    );

    let last = &page.entries[4];
    assert_eq!(
        last.paper.title,
        "(Chat)GPT v BERT: Dawn of Justice for Semantic Change Detection"
    );
    assert_eq!(
        last.paper.authors,
        ["Francesco Periti", "Haim Dubossarsky", "Nina Tahmasebi"]
    );
    assert_eq!(
        last.paper.arxiv.comment.as_deref(),
        Some("Accepted to the Findings of EACL 2024")
    );
    for e in &page.entries[1..] {
        assert!(!e.revised, "{}: one dc:date, a first version", e.paper.id);
        assert_eq!(e.created, Some(day("2024-01-25")));
        assert_eq!(e.datestamp, Some(day("2024-01-26")));
        assert!(!e.paper.abstract_text.is_empty());
    }
}

#[test]
fn oai_errors_name_the_code_and_no_records_is_an_empty_day() {
    let no_records = r#"<?xml version="1.0" encoding="UTF-8"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>2024-01-28T00:00:00Z</responseDate>
<request verb="ListRecords">http://export.arxiv.org/oai2</request>
<error code="noRecordsMatch">No records match</error></OAI-PMH>"#;
    let page = arxiv_xml::parse_oai(no_records, 0).unwrap();
    assert!(page.entries.is_empty() && page.resumption_token.is_none());

    let bad_token = no_records.replace(
        r#"<error code="noRecordsMatch">No records match</error>"#,
        r#"<error code="badResumptionToken">The token 6960524|1001 has expired</error>"#,
    );
    let err = arxiv_xml::parse_oai(&bad_token, 0).unwrap_err();
    assert!(
        err.contains("badResumptionToken") && err.contains("expired"),
        "{err}"
    );
    let err = arxiv_xml::parse_oai(API_EMPTY, 0).unwrap_err();
    assert!(err.contains("<feed>"), "{err}");
}

#[test]
fn a_broken_or_deleted_record_is_skipped_not_the_page() {
    // The real oai_dc page with its first record's metadata removed and a deleted record added.
    let start = OAI_DC.find("<metadata>").unwrap();
    let end = OAI_DC.find("</metadata>").unwrap() + "</metadata>".len();
    let deleted = r#"<record><header status="deleted"><identifier>oai:arXiv.org:2401.00001</identifier><datestamp>2024-01-26</datestamp></header></record>"#;
    let broken = format!(
        "{}{}",
        &OAI_DC[..start],
        &OAI_DC[end..].replacen("<record>", &format!("{deleted}<record>"), 1)
    );
    let page = arxiv_xml::parse_oai(&broken, 3).unwrap();
    assert_eq!(page.entries.len(), 4);
    assert_eq!(page.deleted, 1);
    assert_eq!(page.skipped.len(), 1);
    assert_eq!((page.skipped[0].page, page.skipped[0].position), (3, 0));
    assert!(
        page.skipped[0].reason.contains("1303.2033"),
        "{}",
        page.skipped[0].reason
    );
}

/// `paperboy fetch --from 2024-01-26 --to 2024-01-26` with `past_days = "oai"`: one request
/// for the `cs` set, one for the resumption token; new first versions become papers recorded
/// under `arxiv-oai`, the revision of a paper paperboy never had is ignored, and a record of
/// another archive's category is dropped.
#[tokio::test]
async fn past_days_are_harvested_through_oai_pmh_following_the_token() {
    let server = TestServer::start(|h| {
        if h.path != "/oai" || h.param("verb") != "ListRecords" {
            return Reply::status(404);
        }
        match h.param("resumptionToken") {
            "" if h.param("from") == "2024-01-26"
                && h.param("until") == "2024-01-26"
                && h.param("metadataPrefix") == "arXiv"
                && h.param("set") == "cs" =>
            {
                Reply::ok(OAI_DC)
            }
            "6960524|1001" => Reply::ok(OAI_ARXIV),
            _ => Reply::status(400),
        }
    })
    .await;
    let toml = format!(
        "[sources]\ntimeout_secs = 2\nretries = 1\nbackoff_ms = 10\n\
         [sources.hf]\nenabled = false\n\
         [sources.arxiv]\nenabled = true\ncategories = [\"cs.CV\", \"cs.LG\", \"cs.CL\"]\n\
         rss_base_url = \"{url}\"\napi_base_url = \"{url}\"\napi_interval_ms = 200\n\
         past_days = \"oai\"\noai_base_url = \"{url}/oai\"\n",
        url = server.url()
    );
    let h = Harness::new(&toml).await;
    let app = h.app_at("2024-01-27T12:00:00Z");
    let sources = fetch::sources(&app, None).unwrap();
    let reports = fetch::fetch_day(&app, &sources, day("2024-01-26")).await;

    let arxiv = reports
        .iter()
        .find(|r| r.source == "arxiv")
        .unwrap()
        .result
        .as_ref()
        .unwrap();
    assert_eq!(
        (arxiv.counts.new, arxiv.counts.ignored),
        (4, 1),
        "four first versions new, the revision of an unknown paper ignored: {arxiv:?}"
    );
    let hits = server.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[1].param("resumptionToken"), "6960524|1001");
    assert_eq!(
        hits[1].param("set"),
        "",
        "a resumption request carries only the verb and the token"
    );
    assert!(
        hits[1].at.duration_since(hits[0].at).as_millis() >= 190,
        "paced like the API"
    );

    let via_oai = h
        .store
        .papers_listed(Default::default(), Some("arxiv-oai"))
        .await
        .unwrap();
    let mut keys: Vec<&str> = via_oai.iter().map(|p| p.paper.id.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["2401.14034", "2401.14036", "2401.14038", "2401.14040"]
    );
    assert!(
        h.store.paper("0801.3931").await.unwrap().is_none(),
        "astro-ph is not a configured category"
    );
    let stored = h.store.paper("2401.14040").await.unwrap().unwrap();
    assert_eq!(
        stored.paper.arxiv.comment.as_deref(),
        Some("Accepted to the Findings of EACL 2024")
    );
    assert_eq!(stored.paper.authors[0], "Francesco Periti");
}

#[tokio::test]
async fn an_unknown_past_days_value_names_the_key() {
    let server = TestServer::start(|_| Reply::status(404)).await;
    let toml = format!(
        "[sources.arxiv]\nenabled = true\npast_days = \"oaipmh\"\napi_base_url = \"{}\"\n",
        server.url()
    );
    let h = Harness::new(&toml).await;
    let path = h.dir.path().join("paperboy.toml");
    std::fs::write(&path, &toml).unwrap();
    let err =
        paperboy::config::Settings::load_with_env(Some(&path), Vec::<(String, String)>::new())
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("sources.arxiv.past_days") && err.contains("\"oai\""),
        "{err}"
    );
}
