//! End to end: the built `paperboy` binary against real parts on loopback: a local HTTP server
//! serving the real Hugging Face payloads, Postfix's `smtp-sink` as the SMTP server, SQLite.
//!
//! Every command runs at a chosen "now" (`PAPERBOY_NOW`). The first tests check the harness
//! itself; the rest follow a digest from fetch to inbox, and what happens when a part fails.

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use crate::common::*;

const DAY1: &str = "2024-10-25";
const DAY2: &str = "2024-10-26";
const FETCH1: &str = "2024-10-25T06:00:00Z";
const SEND1: &str = "2024-10-25T09:00:00Z";
const FETCH2: &str = "2024-10-26T06:00:00Z";
const SEND2: &str = "2024-10-26T09:00:00Z";

/// The paper `ALICE_INTERESTS` must rank first on day 1.
const TOP_DAY1: &str = "2410.17243";
/// The only paper of day 2 (2026 schema).
const ONLY_DAY2: &str = "2602.23229";

const ALICE: &str = "alice@example.org";
/// Matches 2410.17243 ("… Memory Barrier … Contrastive Loss") best on day 1, and on day 2
/// 2602.23229 ("Large Multimodal Models as General In-Context Classifiers", which also says
/// "contrastive"). "classifiers" appears in no day-1 paper.
const ALICE_INTERESTS: &str = r#""contrastive loss" memory "in-context" classifiers"#;
/// What ALICE_INTERESTS asks for, lower case (phrases whole, words by stem): every paper sent
/// to Alice mentions one of them in its title or abstract, or says it was picked by meaning
/// ([`BY_MEANING`]).
const ALICE_TERMS: &[&str] = &[
    "contrastive loss",
    "memor",
    "in-context",
    "in context",
    "classifier",
];

/// The reason a paper sharing no word with the interests gives: close in meaning to one.
const BY_MEANING: &str = "close in meaning to your interest";

/// What a paper sent to Alice must satisfy: it mentions her words, or its reasons (`why`, the
/// text the digest shows around it) say meaning picked it.
fn matches_alice(fixture: &FixturePaper, why: &str) -> bool {
    fixture.mentions_any(ALICE_TERMS) || why.contains(BY_MEANING)
}

const BOB: &str = "bob@example.org";
/// Matches no paper of either fixture.
const BOB_INTERESTS: &str = r#""quantum chromodynamics lattice""#;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn day1_papers() -> Vec<FixturePaper> {
    hf_fixture_papers(HF_DAY_2024_10_25)
}

fn all_papers() -> Vec<FixturePaper> {
    let mut papers = day1_papers();
    papers.extend(hf_fixture_papers(HF_ITEM_2026_03));
    papers
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The papers (of `known`) that a text lists, in the order they first appear. A paper is
/// recognised by its arXiv id or its title (case and white space ignored).
fn papers_listed_in(text: &str, known: &[FixturePaper]) -> Vec<String> {
    let haystack = normalize_ws(text).to_lowercase();
    let mut found: Vec<(usize, String)> = known
        .iter()
        .filter_map(|paper| {
            let by_id = haystack.find(&paper.id);
            let by_title = haystack.find(&paper.title.to_lowercase());
            by_id
                .into_iter()
                .chain(by_title)
                .min()
                .map(|pos| (pos, paper.id.clone()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, id)| id).collect()
}

/// Ways a subject can name a date.
fn date_spellings(date: &str) -> Vec<String> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date");
    [
        "%Y-%m-%d", "%-d %b", "%b %-d", "%-d %B", "%B %-d", "%d.%m.%Y", "%m/%d/%Y",
    ]
    .iter()
    .map(|f| d.format(f).to_string())
    .collect()
}

/// Checks one digest email to `to` for `date` and returns the ids of the papers it lists
/// (text part), best first.
#[track_caller]
fn check_digest_email(
    mail: &ReceivedMail,
    to: &str,
    date: &str,
    known: &[FixturePaper],
) -> Vec<String> {
    mail.assert_alternative();

    let header = |name: &str| {
        mail.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {mail:?}"))
    };
    assert!(header("To").contains(to), "To names {to}: {mail:?}");
    assert!(
        header("From").contains("digest@paperboy.example.org"),
        "From is the configured one: {mail:?}"
    );
    let message_id = header("Message-ID");
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@paperboy.example.org>"),
        "Message-ID uses the From domain: {message_id}"
    );
    let date_header = header("Date");
    assert!(
        chrono::DateTime::parse_from_rfc2822(&date_header).is_ok(),
        "Date is RFC 5322: {date_header}"
    );
    let list_id = header("List-Id");
    assert!(
        list_id.contains('<') && list_id.contains("paperboy.example.org>"),
        "List-Id is <something.paperboy.example.org>: {list_id}"
    );
    let list_unsubscribe = header("List-Unsubscribe");
    assert!(
        list_unsubscribe.contains(&format!("<{BASE_URL}/unsubscribe/")),
        "List-Unsubscribe has an https unsubscribe URL on base_url: {list_unsubscribe}"
    );
    assert_eq!(
        header("List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click",
        "RFC 8058 one-click"
    );
    assert_eq!(
        header("Auto-Submitted").to_ascii_lowercase(),
        "auto-generated"
    );

    let text = mail.text_body().expect("text/plain part");
    let html = mail.html_body().expect("text/html part");
    assert!(
        !text.trim().is_empty() && !html.trim().is_empty(),
        "both parts have content"
    );

    let text_links = find_links(&text);
    let has_link = |prefix: &str| {
        text_links
            .iter()
            .any(|l| l.starts_with(prefix) && l.len() > prefix.len() + 8)
    };
    assert!(
        has_link(&format!("{BASE_URL}/manage/")),
        "text part has a manage link with a token: {text_links:?}"
    );
    assert!(
        has_link(&format!("{BASE_URL}/unsubscribe/")),
        "text part has an unsubscribe link with a token: {text_links:?}"
    );
    assert!(
        find_links(&html)
            .iter()
            .any(|l| l.starts_with(&format!("{BASE_URL}/unsubscribe/"))),
        "HTML part has an unsubscribe link"
    );
    for link in mail.links() {
        let own_route = [
            "/manage",
            "/unsubscribe/",
            "/confirm/",
            "/feedback/",
            "/digest/",
        ]
        .iter()
        .any(|route| link.contains(route));
        if own_route {
            assert!(
                link.starts_with(&format!("{BASE_URL}/")),
                "paperboy's own links start with {BASE_URL}/: {link}"
            );
        }
    }

    let listed = papers_listed_in(&text, known);
    assert!(!listed.is_empty(), "the digest lists papers:\n{text}");
    assert_eq!(
        listed.len(),
        listed.iter().collect::<HashSet<_>>().len(),
        "no paper twice"
    );
    let html_listed = papers_listed_in(&html, known);
    assert_eq!(
        sorted(html_listed),
        sorted(listed.clone()),
        "text and HTML list the same papers"
    );

    let subject = mail.subject().expect("Subject");
    let spellings = date_spellings(date);
    assert!(
        spellings.iter().any(|s| subject.contains(s.as_str())),
        "subject names the date {date} (one of {spellings:?}): {subject}"
    );
    let numbers: Vec<&str> = subject
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(
        numbers.contains(&listed.len().to_string().as_str()),
        "subject names the count {}: {subject}",
        listed.len()
    );
    listed
}

/// Every link in the email is public: paperboy's own under `BASE_URL`, the rest https to a
/// public host. None follows a source's `base_url`: that is where paperboy fetches from (here
/// the local fixture server, elsewhere a mirror or proxy), not an address for subscribers.
#[track_caller]
fn assert_links_public(mail: &ReceivedMail, source: &FixtureServer) {
    let links = mail.links();
    assert!(!links.is_empty());
    for link in &links {
        assert!(
            !link.starts_with(&source.base_url())
                && !link.contains("127.0.0.1")
                && !link.contains("localhost"),
            "a link in the email leads to the source's base_url or to loopback: {link}\n\
             (links for subscribers must be public: {BASE_URL}/… or e.g. \
             https://huggingface.co/papers/ID, whatever sources.hf.base_url says)"
        );
        assert!(
            link.starts_with("https://"),
            "links in the email use https: {link}"
        );
    }
}

#[track_caller]
fn paper<'a>(papers: &'a [FixturePaper], id: &str) -> &'a FixturePaper {
    papers
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("{id} is not a fixture paper"))
}

/// A fixture server serving day 1, an app using it and `sink`, day 1 fetched, Alice confirmed.
#[track_caller]
fn day1_with_alice(sink: &SmtpSink) -> (FixtureServer, TestApp) {
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).smtp(sink).build();
    app.paperboy(["fetch", "--date", DAY1])
        .at(FETCH1)
        .run()
        .assert_success();
    app.add_confirmed_subscriber(FETCH1, ALICE, ALICE_INTERESTS);
    (hf, app)
}

// ---------------------------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------------------------

#[test]
fn harness_smtp_sink_captures_and_parses_messages() {
    let Some(sink) = SmtpSink::start_or_skip("harness_smtp_sink_captures_and_parses_messages")
    else {
        return;
    };
    let alternative = "From: Sender <a@x.org>\n\
        To: b@y.org, c@z.org\n\
        Subject: =?utf-8?q?Caf=C3=A9_digest?=\n\
        Message-ID: <1@x.org>\n\
        List-Unsubscribe: <https://paperboy.example.org/unsubscribe/abc>,\n\
        \x20<mailto:unsub@x.org>\n\
        MIME-Version: 1.0\n\
        Content-Type: multipart/alternative; boundary=\"BOUND\"\n\
        \n\
        --BOUND\n\
        Content-Type: text/plain; charset=utf-8\n\
        \n\
        plain body https://paperboy.example.org/manage/tok123.\n\
        .a line that starts with a dot\n\
        --BOUND\n\
        Content-Type: text/html; charset=utf-8\n\
        \n\
        <p><a href=\"https://paperboy.example.org/digest/t?a=1&amp;b=2\">view</a></p>\n\
        --BOUND--\n";
    smtp_send_raw(sink.port(), "a@x.org", &["b@y.org", "c@z.org"], alternative)
        .expect("send multipart");
    let plain = "From: a@x.org\nTo: d@y.org\nSubject: plain\n\nonly text\n";
    smtp_send_raw(sink.port(), "a@x.org", &["d@y.org"], plain).expect("send plain");

    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let first = messages
        .iter()
        .find(|m| m.envelope_to.len() == 2)
        .expect("the two-recipient message");
    assert_eq!(first.envelope_from, "a@x.org");
    assert_eq!(first.envelope_to, vec!["b@y.org", "c@z.org"]);
    assert_eq!(first.subject().as_deref(), Some("Café digest"));
    assert_eq!(first.header("message-id").as_deref(), Some("<1@x.org>"));
    assert_eq!(
        first.header("List-Unsubscribe").as_deref(),
        Some("<https://paperboy.example.org/unsubscribe/abc>, <mailto:unsub@x.org>"),
        "folded header is unfolded"
    );
    assert!(
        first.header("X-Client-Addr").is_none(),
        "smtp-sink lines stripped"
    );
    assert!(
        first.header("Received").is_none(),
        "smtp-sink's Received stripped"
    );
    first.assert_alternative();
    let text = first.text_body().expect("text part");
    assert!(text.contains("plain body"), "{text}");
    assert!(
        text.contains("\n.a line that starts with a dot"),
        "dot-unstuffed: {text}"
    );
    let html = first.html_body().expect("html part");
    assert!(html.contains("<a href="), "{html}");
    assert_eq!(
        first.links(),
        vec![
            "https://paperboy.example.org/manage/tok123",
            "https://paperboy.example.org/digest/t?a=1&b=2",
        ]
    );

    let second = &sink.messages_to("d@y.org")[0];
    assert_eq!(second.subject().as_deref(), Some("plain"));
    assert_eq!(
        second.text_body().as_deref().map(str::trim),
        Some("only text")
    );
    assert!(second.html_body().is_none(), "no HTML made up from text");
    assert!(
        second.check_alternative().is_err(),
        "a single-part message is not multipart/alternative"
    );
    assert_eq!(sink.wait_for_messages(2, Duration::from_secs(1)).len(), 2);
}

#[test]
fn harness_smtp_sink_on_a_given_port_with_flags_and_stops_on_drop() {
    let test = "harness_smtp_sink_on_a_given_port_with_flags_and_stops_on_drop";
    let port = free_port();
    let Some(sink) = SmtpSink::start_on_or_skip(test, port) else {
        return;
    };
    assert_eq!(sink.port(), port);
    assert_eq!(sink.url(), format!("smtp://127.0.0.1:{port}"));
    assert!(port_accepts(port));
    // Checked by process, not by port: under parallel tests another server may take the freed
    // port at once.
    let pid = sink.pid();
    drop(sink);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "smtp-sink is gone after drop"
    );

    let options = SmtpSinkOptions {
        port: None,
        extra_args: vec!["-r".into(), "RCPT".into()],
    };
    let Some(rejecting) = SmtpSink::start_with_or_skip(test, options) else {
        return;
    };
    let error = smtp_send_raw(
        rejecting.port(),
        "a@x.org",
        &["b@y.org"],
        "Subject: x\n\ny\n",
    )
    .expect_err("RCPT is soft-rejected");
    assert!(error.contains("RCPT") && error.contains("\"4"), "{error}");
    // No message was recorded. (A transaction refused before DATA leaves no dump to count:
    // smtp-sink deletes its empty dump when the session ends.)
    assert!(rejecting.messages().is_empty());
}

#[tokio::test]
async fn harness_fixture_server_serves_real_bodies_and_faults() {
    let server = FixtureServer::start();
    let real = hf_fixture(HF_DAY_2024_10_25);
    server.set_day(DAY1, real.clone());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let get = |query: String| {
        let client = client.clone();
        let url = format!("{}/api/daily_papers?{query}", server.base_url());
        async move { client.get(url).send().await }
    };

    let ok = get(format!("date={DAY1}&limit=100&p=0"))
        .await
        .expect("GET");
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        ok.bytes().await.unwrap().as_ref(),
        real.as_slice(),
        "served unchanged"
    );
    let other_day = get("date=2024-10-27".into())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(other_day, "[]");
    let page1 = get(format!("date={DAY1}&p=1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page1, "[]");

    server.fail(DAY1, Fault::Status(500));
    assert_eq!(get(format!("date={DAY1}")).await.unwrap().status(), 500);

    server.fail(DAY1, Fault::Truncate(100));
    let truncated = get(format!("date={DAY1}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(truncated.as_ref(), &real[..100]);
    assert!(serde_json::from_slice::<serde_json::Value>(&truncated).is_err());

    server.fail(DAY1, Fault::BrokenItem(3));
    let broken: Vec<serde_json::Value> = get(format!("date={DAY1}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(broken.len(), 30);
    assert!(broken[3]["paper"]["id"].is_null());
    assert_eq!(
        broken[4]["paper"]["id"], "2410.18693",
        "the real items follow unchanged"
    );

    server.fail(DAY1, Fault::Delay(Duration::from_secs(3)));
    let slow = get(format!("date={DAY1}")).await.expect_err("times out");
    assert!(slow.is_timeout(), "{slow}");

    server.heal(DAY1);
    assert_eq!(get(format!("date={DAY1}")).await.unwrap().status(), 200);

    assert_eq!(server.request_count(DAY1), 7, "{:?}", server.requests());
    let first = &server.requests()[0];
    assert_eq!(first.path, "/api/daily_papers");
    assert_eq!(first.limit.as_deref(), Some("100"));
    assert_eq!(first.page.as_deref(), Some("0"));
}

#[test]
fn harness_test_app_writes_config_and_isolates_environment() {
    let hf = FixtureServer::start();
    let app = TestApp::builder()
        .hf(&hf)
        .smtp_port(2525)
        .source_timeout_secs(1)
        .extra_toml("[digest]\nmax_papers = 5")
        .build();
    let config: toml::Table = toml::from_str(&app.config_text()).expect("config is TOML");
    assert_eq!(config["secret_key"].as_str(), Some(SECRET_KEY));
    assert_eq!(
        config["database"]["url"].as_str(),
        Some(app.database_url.as_str())
    );
    assert!(app.db_path.starts_with(app.dir()));
    assert_eq!(config["web"]["base_url"].as_str(), Some(BASE_URL));
    assert_eq!(config["mail"]["transport"].as_str(), Some("smtp"));
    assert_eq!(
        config["mail"]["smtp_url"].as_str(),
        Some("smtp://127.0.0.1:2525")
    );
    assert_eq!(config["mail"]["from"].as_str(), Some(FROM));
    assert_eq!(config["sources"]["timeout_secs"].as_integer(), Some(1));
    assert_eq!(config["sources"]["retries"].as_integer(), Some(1));
    assert_eq!(config["sources"]["backoff_ms"].as_integer(), Some(50));
    assert_eq!(
        config["sources"]["hf"]["base_url"]
            .as_str()
            .map(str::to_string),
        Some(hf.base_url())
    );
    assert_eq!(config["sources"]["arxiv"]["enabled"].as_bool(), Some(false));
    assert_eq!(config["digest"]["max_papers"].as_integer(), Some(5));

    let file_app = TestApp::builder().build();
    let file_config: toml::Table = toml::from_str(&file_app.config_text()).unwrap();
    assert_eq!(file_config["mail"]["transport"].as_str(), Some("file"));
    assert_eq!(
        file_config["sources"]["hf"]["enabled"].as_bool(),
        Some(false)
    );

    // Only the PAPERBOY* variables a test sets reach the program.
    let env = find_executable("env", &["/usr/bin", "/bin"]).expect("env(1)");
    let out = app
        .program(&env, Vec::<String>::new())
        .at(SEND1)
        .env("PAPERBOY__MAIL__MAX_CONNECTIONS", "3")
        .run();
    out.assert_success();
    let ours: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.to_ascii_uppercase().starts_with("PAPERBOY"))
        .collect();
    assert_eq!(
        sorted(ours.iter().map(|s| s.to_string()).collect()),
        vec![
            "PAPERBOY_NOW=2024-10-25T09:00:00Z".to_string(),
            "PAPERBOY__MAIL__MAX_CONNECTIONS=3".to_string(),
        ]
    );
    assert!(out.stdout.lines().any(|l| l == "NO_COLOR=1"));

    // A program that fails is reported as such; one that hangs is killed.
    let sh = find_executable("sh", &["/bin", "/usr/bin"]).expect("sh");
    let failed = app.program(&sh, ["-c", "echo oops >&2; exit 3"]).run();
    failed.assert_failure();
    assert_eq!(failed.stderr.trim(), "oops");
    let hung = std::panic::catch_unwind(|| {
        app.program(&sh, ["-c", "sleep 30"])
            .timeout(Duration::from_millis(300))
            .run()
    });
    assert!(hung.is_err(), "a hanging program fails the test");
}

#[test]
fn harness_finds_papers_and_links_in_text() {
    let papers = day1_papers();
    assert_eq!(papers.len(), 29);
    let text = "1. Breaking the Memory Barrier: Near Infinite Batch Size Scaling\n   for \
                Contrastive Loss\n2. https://arxiv.org/abs/2410.18572 (Taipan)\n";
    assert_eq!(
        papers_listed_in(text, &papers),
        vec![TOP_DAY1, "2410.18572"]
    );
    assert!(paper(&papers, TOP_DAY1).mentions_any(ALICE_TERMS));
    assert!(
        !paper(&papers, "2410.18978").mentions_any(ALICE_TERMS),
        "Framer does not"
    );
    assert_eq!(
        find_links("see (https://a.org/x), <http://b.org/y?q=1&amp;r=2>."),
        vec!["https://a.org/x", "http://b.org/y?q=1&r=2"]
    );
    assert!(date_spellings(DAY1).contains(&"25 October".to_string()));
}

// ---------------------------------------------------------------------------------------------
// The whole path
// ---------------------------------------------------------------------------------------------

#[test]
fn whole_path_fetch_subscribe_send_and_next_day() {
    let Some(sink) = SmtpSink::start_or_skip("whole_path_fetch_subscribe_send_and_next_day") else {
        return;
    };
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).smtp(&sink).build();
    let day1 = day1_papers();

    // Fetch day 1: every real paper stored once.
    app.paperboy(["fetch", "--date", DAY1])
        .at(FETCH1)
        .run()
        .assert_success();
    assert!(hf.request_count(DAY1) >= 1, "{:?}", hf.requests());
    assert_eq!(
        sorted(app.paper_ids(FETCH1)),
        sorted(day1.iter().map(|p| p.id.clone()).collect())
    );

    app.add_confirmed_subscriber(FETCH1, ALICE, ALICE_INTERESTS);
    app.add_confirmed_subscriber(FETCH1, BOB, BOB_INTERESTS);
    let subscribers = app.subscribers_json(FETCH1);
    assert_eq!(subscribers.len(), 2, "{subscribers:?}");
    for s in &subscribers {
        assert_eq!(s["status"], "active", "--confirmed makes it active: {s}");
    }

    // Send at 09:00: one email, to Alice; Bob's interests match nothing.
    app.paperboy(["send", "--now"])
        .at(SEND1)
        .run()
        .assert_success();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "exactly one email: {messages:#?}");
    let first = &messages[0];
    assert_eq!(first.envelope_to, vec![ALICE]);
    let listed = check_digest_email(first, ALICE, DAY1, &day1);
    assert_eq!(listed[0], TOP_DAY1, "best first: {listed:?}");
    let text = normalize_ws(&first.text_body().expect("a text part"));
    for id in &listed {
        let fixture = paper(&day1, id);
        // The part of the text that follows the paper's title: its card, with its reasons.
        let card: String = text
            .find(&fixture.title)
            .map(|at| text[at..].chars().take(900).collect())
            .unwrap_or_default();
        assert!(
            matches_alice(fixture, &card),
            "{id} mentions none of Alice's interests and is not close in meaning, but was sent"
        );
    }
    let html = first.html_body().unwrap();
    assert!(
        normalize_ws(&html).contains(&paper(&day1, TOP_DAY1).title),
        "the HTML part shows the top paper's title"
    );

    // Again the same day: nothing new.
    app.paperboy(["send", "--now"])
        .at("2024-10-25T09:30:00Z")
        .run()
        .assert_success();
    assert_eq!(
        sink.messages().len(),
        1,
        "a second run the same day sends nothing"
    );

    // Day 2: one new paper (2026 schema); Alice gets it and nothing from day 1.
    hf.set_day_fixture(DAY2, HF_ITEM_2026_03);
    app.paperboy(["fetch", "--date", DAY2])
        .at(FETCH2)
        .run()
        .assert_success();
    let stored = app.paper_ids(FETCH2);
    assert!(stored.contains(&ONLY_DAY2.to_string()), "{stored:?}");
    assert_eq!(stored.len(), 30, "{stored:?}");

    app.paperboy(["send", "--now"])
        .at(SEND2)
        .run()
        .assert_success();
    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "one more email on day 2: {messages:#?}");
    let second = messages
        .iter()
        .find(|m| m.file != first.file)
        .expect("the day-2 email");
    assert_eq!(second.envelope_to, vec![ALICE]);
    let listed2 = check_digest_email(second, ALICE, DAY2, &all_papers());
    assert_eq!(
        listed2,
        vec![ONLY_DAY2],
        "only the new paper, none of day 1's"
    );
    assert_ne!(
        first.header("Message-ID"),
        second.header("Message-ID"),
        "each email has its own Message-ID"
    );

    // Last, so that a failure here does not hide the checks above.
    assert_links_public(first, &hf);
    assert_links_public(second, &hf);
}

#[test]
fn preview_ranks_papers_and_records_nothing() {
    let Some(sink) = SmtpSink::start_or_skip("preview_ranks_papers_and_records_nothing") else {
        return;
    };
    let (_hf, app) = day1_with_alice(&sink);
    let day1 = day1_papers();

    let preview = || {
        let out = app
            .paperboy(["preview", ALICE, "--format", "json"])
            .at(SEND1)
            .run();
        out.assert_success();
        out.json()
    };
    let first = preview();
    assert_eq!(first["email"], ALICE, "{first}");
    assert_eq!(first["date"], DAY1, "{first}");
    let papers = first["papers"].as_array().expect("papers array").clone();
    assert!(!papers.is_empty(), "{first}");
    let mut previous_score = f64::INFINITY;
    for (i, p) in papers.iter().enumerate() {
        assert_eq!(p["rank"].as_u64(), Some(i as u64 + 1), "ranks 1, 2, …: {p}");
        let id = p["id"].as_str().expect("id");
        let fixture = paper(&day1, id);
        assert_eq!(
            p["title"].as_str().map(normalize_ws),
            Some(fixture.title.clone()),
            "title of {id}"
        );
        let reasons = p["reasons"].as_array().expect("reasons array");
        assert!(!reasons.is_empty(), "every pick says why: {p}");
        let why = serde_json::Value::Array(reasons.clone()).to_string();
        assert!(matches_alice(fixture, &why), "{id} matches nothing: {p}");
        let score = p["score"].as_f64().expect("numeric score");
        assert!(score > 0.0, "{p}");
        assert!(score <= previous_score, "scores descend: {papers:?}");
        previous_score = score;
    }
    assert_eq!(papers[0]["id"], TOP_DAY1);
    let ids: Vec<String> = papers
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();

    assert!(sink.messages().is_empty(), "preview sends nothing");
    assert_eq!(
        preview(),
        first,
        "preview recorded nothing: same answer twice"
    );

    app.paperboy(["send", "--now"])
        .at(SEND1)
        .run()
        .assert_success();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "the send after a preview still sends");
    let listed = check_digest_email(&messages[0], ALICE, DAY1, &day1);
    assert_eq!(listed, ids, "the email is what preview showed");
}

// ---------------------------------------------------------------------------------------------
// Bad inputs: a clear error and nothing half-written
// ---------------------------------------------------------------------------------------------

/// An app whose HF source serves day 1 with `fault`, using the file transport.
#[track_caller]
fn faulty_source(fault: Fault, timeout_secs: u64) -> (FixtureServer, TestApp) {
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    hf.fail(DAY1, fault);
    let app = TestApp::builder()
        .hf(&hf)
        .source_timeout_secs(timeout_secs)
        .build();
    (hf, app)
}

#[track_caller]
fn assert_names_source(out: &CmdOutput, hf: &FixtureServer) {
    let stderr = out.stderr.to_lowercase();
    let host = hf.base_url().trim_start_matches("http://").to_string();
    assert!(
        out.stderr.contains(&host),
        "stderr names the URL ({host}):\n{out}"
    );
    assert!(
        stderr.contains("hf") || stderr.contains("hugging"),
        "stderr names the source:\n{out}"
    );
}

#[test]
fn fetch_malformed_json_fails_and_stores_nothing() {
    let (hf, app) = faulty_source(Fault::Truncate(100), 2);
    let out = app.paperboy(["fetch", "--date", DAY1]).at(FETCH1).run();
    out.assert_failure();
    assert_names_source(&out, &hf);
    assert!(hf.request_count(DAY1) >= 1);
    assert!(app.papers_json(FETCH1).is_empty(), "no paper stored");
}

#[test]
fn fetch_http_500_fails_names_it_and_stores_nothing() {
    let (hf, app) = faulty_source(Fault::Status(500), 2);
    let out = app.paperboy(["fetch", "--date", DAY1]).at(FETCH1).run();
    out.assert_failure();
    assert_names_source(&out, &hf);
    assert!(out.stderr.contains("500"), "stderr says 500:\n{out}");
    assert_eq!(
        hf.request_count(DAY1),
        2,
        "sources.retries = 1: one retry after a 5xx, then give up"
    );
    assert!(app.papers_json(FETCH1).is_empty(), "no paper stored");
}

#[test]
fn fetch_timeout_fails_in_time_and_stores_nothing() {
    let (hf, app) = faulty_source(Fault::Delay(Duration::from_secs(5)), 1);
    let out = app.paperboy(["fetch", "--date", DAY1]).at(FETCH1).run();
    out.assert_failure();
    assert_names_source(&out, &hf);
    let stderr = out.stderr.to_lowercase();
    assert!(
        [
            "timed out",
            "timeout",
            "time out",
            "did not answer",
            "no answer"
        ]
        .iter()
        .any(|w| stderr.contains(w)),
        "stderr says the source did not answer in time:\n{out}"
    );
    assert!(
        out.elapsed < Duration::from_millis(4500),
        "timeout_secs = 1 with one retry gives up well before the 5 s answer:\n{out}"
    );
    assert!(app.papers_json(FETCH1).is_empty(), "no paper stored");
}

#[test]
fn fetch_one_broken_item_keeps_the_good_ones() {
    let (hf, app) = faulty_source(Fault::BrokenItem(5), 2);
    let out = app.paperboy(["fetch", "--date", DAY1]).at(FETCH1).run();
    out.assert_success();
    assert!(
        out.all_output().to_lowercase().contains("skipped"),
        "the skipped item is reported:\n{out}"
    );
    assert_eq!(
        hf.request_count(DAY1),
        1,
        "a broken item is no reason to ask again"
    );
    assert_eq!(
        sorted(app.paper_ids(FETCH1)),
        sorted(day1_papers().into_iter().map(|p| p.id).collect()),
        "all 29 good papers stored"
    );
}

#[test]
fn subscriber_add_rejects_an_invalid_email() {
    let app = TestApp::builder().build();
    for bad in ["not-an-email", "alice@@example.org"] {
        let out = app
            .paperboy([
                "subscriber",
                "add",
                bad,
                "--interests",
                "memory",
                "--confirmed",
            ])
            .at(FETCH1)
            .run();
        out.assert_failure();
        assert!(out.stderr.contains(bad), "the error names {bad}:\n{out}");
    }
    assert!(app.subscribers_json(FETCH1).is_empty(), "nobody was added");
}

#[test]
fn invalid_config_value_names_the_key_and_the_value() {
    let app = TestApp::builder()
        .sqlite_only("it shows that a bad config never creates the SQLite file")
        .build();
    for (var, key, value) in [
        (
            "PAPERBOY__MAIL__MAX_CONNECTIONS",
            "mail.max_connections",
            "lots",
        ),
        (
            "PAPERBOY__SCHEDULE__TIMEZONE",
            "schedule.timezone",
            "Mars/Base",
        ),
    ] {
        let out = app
            .paperboy(["subscriber", "list", "--format", "json"])
            .at(FETCH1)
            .env(var, value)
            .run();
        out.assert_failure();
        assert!(out.stderr.contains(key), "stderr names {key}:\n{out}");
        assert!(out.stderr.contains(value), "stderr names {value}:\n{out}");
        assert!(
            !app.db_path.exists(),
            "a bad config stops paperboy before it touches the database"
        );
    }
    // The same config without the bad value works.
    assert!(app.subscribers_json(FETCH1).is_empty());
}

#[test]
fn send_with_smtp_down_fails_then_delivers_exactly_once() {
    let test = "send_with_smtp_down_fails_then_delivers_exactly_once";
    if SmtpSink::binary().is_none() {
        missing_tool(test, "Postfix's smtp-sink", SMTP_SINK_INSTALL);
        return;
    }
    let port = free_port();
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).smtp_port(port).build();
    app.paperboy(["fetch", "--date", DAY1])
        .at(FETCH1)
        .run()
        .assert_success();
    app.add_confirmed_subscriber(FETCH1, ALICE, ALICE_INTERESTS);

    assert!(!port_accepts(port), "nothing listens on {port} yet");
    let down = app.paperboy(["send", "--now"]).at(SEND1).run();
    down.assert_failure();
    assert!(
        !down.stderr.trim().is_empty(),
        "the failure is explained:\n{down}"
    );

    let Some(sink) = SmtpSink::start_on_or_skip(test, port) else {
        return;
    };
    assert!(sink.messages().is_empty());
    app.paperboy(["send", "--now"])
        .at("2024-10-25T09:15:00Z")
        .run()
        .assert_success();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "the delivery stayed due: {messages:#?}");
    assert_eq!(messages[0].envelope_to, vec![ALICE]);
    let listed = check_digest_email(&messages[0], ALICE, DAY1, &day1_papers());
    assert_eq!(listed[0], TOP_DAY1);

    app.paperboy(["send", "--now"])
        .at("2024-10-25T09:30:00Z")
        .run()
        .assert_success();
    assert_eq!(sink.messages().len(), 1, "sent exactly once");
}

#[test]
fn send_dry_run_writes_eml_files_and_records_nothing() {
    let Some(sink) = SmtpSink::start_or_skip("send_dry_run_writes_eml_files_and_records_nothing")
    else {
        return;
    };
    let (_hf, app) = day1_with_alice(&sink);
    let dry_dir = app.dir().join("dry-run");
    fs::create_dir(&dry_dir).expect("create dry-run dir");

    app.paperboy([
        "send",
        "--now",
        "--dry-run",
        dry_dir.to_str().expect("utf-8 path"),
    ])
    .at(SEND1)
    .run()
    .assert_success();
    let written = eml_files(&dry_dir);
    assert_eq!(
        written.len(),
        1,
        "one .eml for the one subscriber: {written:#?}"
    );
    let dry = &written[0];
    assert!(
        dry.header("To").is_some_and(|to| to.contains(ALICE)),
        "{dry:?}"
    );
    let dry_listed = check_digest_email(dry, ALICE, DAY1, &day1_papers());
    assert!(sink.messages().is_empty(), "a dry run sends nothing");

    app.paperboy(["send", "--now"])
        .at("2024-10-25T09:05:00Z")
        .run()
        .assert_success();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "the real send after a dry run delivers");
    assert_eq!(messages[0].envelope_to, vec![ALICE]);
    let listed = check_digest_email(&messages[0], ALICE, DAY1, &day1_papers());
    assert_eq!(listed, dry_listed, "the dry run showed what was then sent");
    assert_eq!(messages[0].subject(), dry.subject());
}

// ---------------------------------------------------------------------------------------------
// Addresses: one normal form (the domain in ASCII), what cannot be mailed is refused
// ---------------------------------------------------------------------------------------------

/// `ann@EXÄMPLE.org` in its ASCII form.
const ANN_IDN: &str = "ann@xn--exmple-cua.org";

#[test]
fn subscriber_add_with_the_idn_then_the_punycode_form_gives_one_subscriber() {
    let app = TestApp::builder().build();
    app.add_confirmed_subscriber(FETCH1, "Ann@EXÄMPLE.org", ALICE_INTERESTS);
    let again = app
        .paperboy([
            "subscriber",
            "add",
            ANN_IDN,
            "--interests",
            "memory",
            "--confirmed",
        ])
        .at(FETCH1)
        .run();
    again.assert_failure();
    assert!(
        again.stderr.contains("already subscribed"),
        "the punycode form is the same subscriber:\n{again}"
    );
    let list = app.subscribers_json(FETCH1);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["email"], ANN_IDN, "stored with the ASCII domain");
    // Either form finds it.
    app.paperboy(["subscriber", "remove", "ann@exämple.org"])
        .at(FETCH1)
        .run()
        .assert_success();
    assert!(app.subscribers_json(FETCH1).is_empty());
}

#[test]
fn subscriber_add_refuses_quoted_and_invisible_addresses_with_a_reason() {
    let app = TestApp::builder().build();
    for (bad, says) in [
        ("\"john doe\"@example.org", "quoted local part"),
        ("\"john\"@example.org", "quoted local part"),
        ("ann\u{202E}gro@example.org", "ann<U+202E>gro@example.org"),
        ("ann\u{200B}@example.org", "a zero-width character"),
    ] {
        let out = app
            .paperboy(["subscriber", "add", bad, "--interests", "memory"])
            .at(FETCH1)
            .run();
        out.assert_failure();
        assert!(out.stderr.contains(says), "{bad:?}: says {says}:\n{out}");
    }
    assert!(app.subscribers_json(FETCH1).is_empty(), "nobody was added");
}

#[test]
fn a_digest_to_an_idn_address_goes_out_with_the_ascii_domain() {
    let Some(sink) =
        SmtpSink::start_or_skip("a_digest_to_an_idn_address_goes_out_with_the_ascii_domain")
    else {
        return;
    };
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).smtp(&sink).build();
    app.paperboy(["fetch", "--date", DAY1])
        .at(FETCH1)
        .run()
        .assert_success();
    app.add_confirmed_subscriber(FETCH1, "Ann@EXÄMPLE.org", ALICE_INTERESTS);
    app.paperboy(["send", "--now"])
        .at(SEND1)
        .run()
        .assert_success();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].envelope_to, vec![ANN_IDN], "RCPT TO");
    let to = messages[0].header("To").expect("a To header");
    assert_eq!(to.trim(), ANN_IDN, "To");
    check_digest_email(&messages[0], ANN_IDN, DAY1, &day1_papers());
}

/// A database as the previous version left it: the address migration not applied yet.
fn forget_the_address_migration(db: &crate::delivery_support::Db) {
    db.exec("DROP TABLE address_collisions");
    db.exec("DROP TABLE data_migrations");
    db.exec("DELETE FROM _sqlx_migrations WHERE description = 'address normal form'");
}

#[test]
fn stored_addresses_are_brought_to_their_normal_form_and_collisions_paused_and_recorded() {
    let app = TestApp::builder().build();
    app.paperboy(["migrate"]).at(FETCH1).run().assert_success();
    let db = crate::delivery_support::Db::open(&app);
    forget_the_address_migration(&db);
    // What the previous version stored: ASCII lower-cased, the rest as typed. Rows 1-3 are one
    // mailbox; 3 holds the normal form but is unsubscribed; 2 is active and confirmed last.
    for (id, email, status, confirmed_at) in [
        (1, "ann@exÄmple.org", "active", "100"),
        (2, "ann@exämple.org", "active", "200"),
        (3, ANN_IDN, "unsubscribed", "300"),
        (4, "bob@bücher.example", "active", "100"),
        (5, "carol@example.org", "pending", "NULL"),
        (6, "\"john doe\"@example.org", "active", "100"),
    ] {
        db.exec(&format!(
            "INSERT INTO subscribers (id, email, status, interests, frequency, send_time, timezone,
                max_papers, created_at, confirmed_at, updated_at)
             VALUES ({id}, '{email}', '{status}', 'memory', 'daily', '07:00', 'UTC', 10, 0,
                {confirmed_at}, 0)"
        ));
    }

    // The next start (any command) applies it.
    let out = app.paperboy(["migrate"]).at(FETCH1).run();
    out.assert_success();
    assert!(out.stdout.contains("address normal form"), "{out}");
    let list = app.subscribers_json(FETCH1);
    let row = |id: i64| {
        let r = list
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("subscriber {id} is kept: {list:#?}"));
        (
            r["email"].as_str().unwrap().to_string(),
            r["status"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(list.len(), 6, "no row is lost: {list:#?}");
    assert_eq!(
        row(2),
        (ANN_IDN.into(), "active".into()),
        "kept: active, confirmed last"
    );
    assert_eq!(
        row(1),
        ("ann@exÄmple.org".into(), "paused".into()),
        "the other active row keeps its address and is paused: one mailbox, one digest"
    );
    assert_eq!(
        row(3),
        (
            format!("{ANN_IDN} (duplicate of subscriber 2)"),
            "unsubscribed".into()
        ),
        "the row that held the normal form gives it up and keeps its status"
    );
    assert_eq!(
        row(4),
        ("bob@xn--bcher-kva.example".into(), "active".into())
    );
    assert_eq!(row(5), ("carol@example.org".into(), "pending".into()));
    assert_eq!(
        row(6),
        ("\"john doe\"@example.org".into(), "active".into()),
        "an address that cannot be mailed is left for the operator"
    );
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM address_collisions WHERE kept_id = 2 AND (
               (subscriber_id = 1 AND stored_email = 'ann@exÄmple.org' AND stored_status = 'active')
            OR (subscriber_id = 3 AND stored_email = 'ann@xn--exmple-cua.org'
                AND stored_status = 'unsubscribed'))"
        ),
        2,
        "each collision is recorded with the address and status it had"
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM address_collisions"), 2);

    // The owner's address in any form finds the kept row.
    let preview = app
        .paperboy(["preview", "ANN@EXÄMPLE.ORG", "--format", "json"])
        .at(FETCH1)
        .run();
    preview.assert_success();

    // Once only: a later start changes nothing, even a row written by hand in an old form.
    db.exec("UPDATE subscribers SET email = 'dave@exÄmple.org' WHERE id = 5");
    app.paperboy(["migrate"]).at(FETCH1).run().assert_success();
    assert_eq!(db.scalar("SELECT COUNT(*) FROM data_migrations"), 1);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM subscribers WHERE email = 'dave@exÄmple.org'"),
        1
    );
}
