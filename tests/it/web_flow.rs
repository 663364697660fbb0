//! The web pages end to end: the real `paperboy run` daemon on a free port, Postfix's
//! smtp-sink receiving the confirmation and digest emails, SQLite, the real Hugging Face
//! payloads served locally. Every link the tests open was taken from a received email (or from
//! a page that an emailed link opened); none is built by the test.
//!
//! This file follows a researcher's whole journey and proves invariants 3 (nothing mailed before
//! confirming or after unsubscribing), 4 (a GET never changes state) and 6 (nothing typed
//! reaches a header or unescaped HTML). `web_rules.rs` covers tokens and abuse.

use crate::common::*;
use crate::web_common::*;
use std::time::Duration;

const DAY1: &str = "2024-10-25";
const FETCH1: &str = "2024-10-25T06:00:00Z";
/// A Friday.
const SEND1: &str = "2024-10-25T09:00:00Z";
/// Ranks 2410.17243 first on day 1 (see digest_flow.rs).
const INTERESTS: &str = r#""contrastive loss" memory"#;

fn setup(test: &str) -> Option<(SmtpSink, FixtureServer, TestApp)> {
    let sink = SmtpSink::start_or_skip(test)?;
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).smtp(&sink).build();
    fetch_fixture_day(&app, DAY1, FETCH1);
    Some((sink, hf, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researchers_whole_journey_through_emailed_links() {
    let Some((sink, _hf, app)) = setup("a_researchers_whole_journey_through_emailed_links") else {
        return;
    };
    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let alice = "alice@example.org";

    // The front page has the form with the documented field names.
    let front = get(&c, &d.url("/")).await;
    assert_eq!(front.status, 200);
    for field in [
        "name=\"email\"",
        "name=\"interests\"",
        "name=\"time\"",
        "name=\"timezone\"",
        "name=\"frequency\"",
        "<option selected>UTC</option>",
    ] {
        assert!(
            front.body.contains(field),
            "{field} missing:\n{}",
            front.body
        );
    }

    // Sign up for Friday mornings in Paris.
    let answer = post_form(
        &c,
        &d.url("/subscribe"),
        &[
            ("email", "Alice@Example.org"),
            ("interests", INTERESTS),
            ("time", "08:30"),
            ("timezone", "Europe/Paris"),
            ("frequency", "weekly"),
            ("weekday", "fri"),
            ("website", ""),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("Check your inbox"));
    let confirmation = wait_for_mail_to(&sink, alice, 1);
    assert_eq!(confirmation.envelope_to, vec![alice.to_string()]);
    assert!(
        confirmation.header("List-Unsubscribe").is_none(),
        "transactional"
    );
    let raw = String::from_utf8_lossy(&confirmation.raw);
    assert!(
        !raw.contains("contrastive") && !raw.contains("memory"),
        "the confirmation carries nothing the visitor typed but the address:\n{raw}"
    );
    assert_eq!(status_of(&app, SEND1, alice).as_deref(), Some("pending"));

    // Opening the link shows a page; only the button confirms.
    let confirm = d.local(&link_to(&confirmation, "confirm"));
    let page = get(&c, &confirm).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<form method=\"post\">"),
        "{}",
        page.body
    );
    assert!(page.body.contains(">Confirm</button>"));
    assert!(page.body.contains("Europe&#x2F;Paris"), "{}", page.body);
    assert_eq!(status_of(&app, SEND1, alice).as_deref(), Some("pending"));
    let done = post_form(&c, &confirm, &[]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let row = subscriber_row(&app, SEND1, alice).expect("alice");
    assert_eq!(row["status"], "active");
    assert_eq!(row["interests"], INTERESTS);
    assert_eq!(row["send_time"], "08:30");
    assert_eq!(row["timezone"], "Europe/Paris");
    assert_eq!(row["frequency"], "weekly:fri");
    // The link works once.
    let again = post_form(&c, &confirm, &[]).await;
    assert_eq!(again.status, 410, "{}", again.body);

    // The digest.
    send_now(&app, SEND1);
    let digest = wait_for_mail_to(&sink, alice, 2);
    let list_unsubscribe = digest.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert!(
        list_unsubscribe.starts_with(&format!("<{BASE_URL}/unsubscribe/")),
        "{list_unsubscribe}"
    );
    assert_eq!(
        digest.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let header_url = list_unsubscribe
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    let html = digest.html_body().expect("html part");
    let text = digest.text_body().expect("text part");
    assert!(
        find_links(&html).contains(&header_url),
        "footer link = header link"
    );
    assert!(find_links(&text).contains(&header_url));
    let feedback: Vec<String> = digest
        .links()
        .into_iter()
        .filter(|l| l.starts_with(&format!("{BASE_URL}/feedback/")))
        .collect();
    assert!(
        feedback.iter().any(|l| l.ends_with("?vote=more"))
            && feedback.iter().any(|l| l.ends_with("?vote=less")),
        "{feedback:?}"
    );

    // View in browser: the same papers.
    let view = get(&c, &d.local(&link_to(&digest, "digest"))).await;
    assert_eq!(view.status, 200);
    assert!(view.body.contains("2410.17243"), "{}", view.body);
    assert!(
        view.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // Feedback: the page, then the vote.
    let more = feedback
        .iter()
        .find(|l| l.ends_with("?vote=more"))
        .unwrap()
        .clone();
    let page = get(&c, &d.local(&more)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("value=\"more\""));
    // It names the paper the link was for (the first one, 2410.17243).
    assert!(
        page.body.contains("Breaking the Memory Barrier"),
        "{}",
        page.body
    );
    let voted = post_form(&c, &d.local(&more), &[("vote", "more")]).await;
    assert_eq!(voted.status, 200, "{}", voted.body);
    assert!(voted.body.contains("Thanks"));

    // Manage: change interests; the CSRF token is required.
    let manage = d.local(&link_to(&digest, "manage"));
    let page = get(&c, &manage).await;
    assert_eq!(page.status, 200);
    let csrf = page.hidden("csrf");
    let refused = post_form(
        &c,
        &manage,
        &[("action", "save"), ("interests", "diffusion")],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        subscriber_row(&app, SEND1, alice).unwrap()["interests"],
        INTERESTS
    );
    let saved = post_form(
        &c,
        &manage,
        &[
            ("csrf", &csrf),
            ("action", "save"),
            ("interests", "diffusion"),
            ("time", "07:15"),
            ("timezone", "America/New_York"),
            ("frequency", "weekdays"),
            ("max_papers", "3"),
        ],
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("Your changes are saved"));
    let row = subscriber_row(&app, SEND1, alice).unwrap();
    assert_eq!(row["interests"], "diffusion");
    assert_eq!(row["send_time"], "07:15");
    assert_eq!(row["timezone"], "America/New_York");
    assert_eq!(row["frequency"], "weekdays");
    assert_eq!(row["max_papers"], 3);

    // Export shows the delivery, the papers sent and the vote.
    let export = post_form(&c, &manage, &[("csrf", &csrf), ("action", "export")]).await;
    assert_eq!(export.status, 200);
    assert!(
        export
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    let data: serde_json::Value = serde_json::from_str(&export.body).expect("JSON export");
    assert_eq!(data["subscriber"]["email"], alice);
    assert_eq!(data["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(data["papers_sent"][0]["paper_id"], "2410.17243");
    assert_eq!(data["feedback"].as_array().unwrap().len(), 1);
    assert_eq!(data["feedback"][0]["vote"], 1);

    // One-click unsubscribe (RFC 8058): multipart body, no cookie, 200 and no redirect.
    let unsubscribe = d.local(&header_url);
    let gone = post_multipart(&c, &unsubscribe, &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(gone.header("location").is_none());
    assert!(gone.header("set-cookie").is_none());
    assert!(gone.body.contains("You are unsubscribed"));
    assert_eq!(
        status_of(&app, SEND1, alice).as_deref(),
        Some("unsubscribed")
    );
    // Idempotent, and url-encoded works too.
    let again = post_form(&c, &unsubscribe, &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(again.status, 200);
    // The GET page offers the way back: the manage link by email (never on the page, which
    // any holder of an old email can open).
    let page = get(&c, &unsubscribe).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("resubscribe"), "{}", page.body);
    assert!(page_links(&d, &page, "manage").is_empty(), "{}", page.body);
    assert_eq!(
        status_of(&app, SEND1, alice).as_deref(),
        Some("unsubscribed")
    );
    // The way back: the page's button has the manage link mailed; its page resubscribes.
    let before = sink.messages_to(alice).len();
    let asked = post_form(&c, &d.url("/manage"), &[("email", &page.hidden("email"))]).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let back = d.local(&link_to(
        &wait_for_mail_to(&sink, alice, before + 1),
        "manage",
    ));
    let manage_page = get(&c, &back).await;
    assert!(manage_page.body.contains("value=\"resume\""));
    let csrf = manage_page.hidden("csrf");
    let resumed = post_form(&c, &back, &[("csrf", &csrf), ("action", "resume")]).await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(status_of(&app, SEND1, alice).as_deref(), Some("active"));
}

/// Invariant 3: no email goes to an address that has not confirmed, or that unsubscribed. A
/// confirmed address with the same interests is the control: it does get its digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariant_3_nothing_is_mailed_before_confirming_or_after_unsubscribing() {
    let Some((sink, _hf, app)) = setup("invariant_3") else {
        return;
    };
    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let (pending, left, paused, stays) = (
        "pending@example.org",
        "left@example.org",
        "paused@example.org",
        "stays@example.org",
    );

    let answer = post_form(
        &c,
        &d.url("/subscribe"),
        &[("email", pending), ("interests", INTERESTS)],
    )
    .await;
    assert_eq!(answer.status, 200);
    wait_for_mail_to(&sink, pending, 1);

    let manage_left = subscribe_and_confirm(&d, &c, &sink, left, INTERESTS, &[], 1).await;
    let page = get(&c, &manage_left).await;
    let unsubscribe = page_links(&d, &page, "unsubscribe")
        .pop()
        .expect("the manage page links to unsubscribe");
    let done = post_form(&c, &unsubscribe, &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(done.status, 200);

    let manage_paused = subscribe_and_confirm(&d, &c, &sink, paused, INTERESTS, &[], 1).await;
    let page = get(&c, &manage_paused).await;
    let csrf = page.hidden("csrf");
    let p = post_form(&c, &manage_paused, &[("csrf", &csrf), ("action", "pause")]).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(status_of(&app, SEND1, paused).as_deref(), Some("paused"));

    subscribe_and_confirm(&d, &c, &sink, stays, INTERESTS, &[], 1).await;

    send_now(&app, SEND1);
    // The control got its digest, so the sender did run and had papers to send.
    let digest = wait_for_mail_to(&sink, stays, 2);
    assert!(digest.header("List-Unsubscribe").is_some());
    for (who, expected) in [(pending, 1), (left, 1), (paused, 1)] {
        let got = sink.messages_to(who);
        assert_eq!(
            got.len(),
            expected,
            "{who} must get nothing but its confirmation: {got:?}"
        );
        assert!(got[0].header("List-Unsubscribe").is_none());
    }
}

/// Invariant 4: every emailed link opens a page and changes nothing; only the POST acts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariant_4_opening_any_emailed_link_changes_nothing() {
    let Some((sink, _hf, app)) = setup("invariant_4") else {
        return;
    };
    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let bob = "bob@example.org";

    post_form(
        &c,
        &d.url("/subscribe"),
        &[("email", bob), ("interests", INTERESTS)],
    )
    .await;
    let confirmation = wait_for_mail_to(&sink, bob, 1);
    let confirm = d.local(&link_to(&confirmation, "confirm"));
    for _ in 0..3 {
        assert_eq!(get(&c, &confirm).await.status, 200);
    }
    assert_eq!(status_of(&app, SEND1, bob).as_deref(), Some("pending"));
    assert_eq!(post_form(&c, &confirm, &[]).await.status, 200);

    send_now(&app, SEND1);
    let digest = wait_for_mail_to(&sink, bob, 2);
    let mut links: Vec<String> = digest
        .links()
        .into_iter()
        .filter(|l| l.starts_with(BASE_URL))
        .collect();
    links.sort();
    links.dedup();
    for route in ["manage", "unsubscribe", "digest", "feedback"] {
        assert!(
            links
                .iter()
                .any(|l| l.starts_with(&format!("{BASE_URL}/{route}/"))),
            "{route} link in the digest: {links:?}"
        );
    }
    let manage = d.local(&link_to(&digest, "manage"));
    let export = |c: reqwest::Client, manage: String| async move {
        let page = get(&c, &manage).await;
        let csrf = page.hidden("csrf");
        post_form(&c, &manage, &[("csrf", &csrf), ("action", "export")])
            .await
            .body
    };
    let state = |app: &TestApp| subscriber_row(app, SEND1, bob).unwrap().to_string();
    let before = (state(&app), export(c.clone(), manage.clone()).await);

    for link in &links {
        let page = get(&c, &d.local(link)).await;
        assert_eq!(page.status, 200, "GET {link}: {}", page.body);
        assert!(page.header("location").is_none());
    }
    let after = (state(&app), export(c.clone(), manage.clone()).await);
    // The export says when it was made; everything else must be identical.
    let strip = |s: &str| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        v.as_object_mut().unwrap().remove("exported_at");
        v
    };
    assert_eq!(before.0, after.0, "GETs changed the subscriber");
    assert_eq!(
        strip(&before.1),
        strip(&after.1),
        "GETs changed the history"
    );
    assert_eq!(status_of(&app, SEND1, bob).as_deref(), Some("active"));
    assert!(strip(&after.1)["feedback"].as_array().unwrap().is_empty());
}

/// Invariant 6: what a visitor types never reaches an email header and is escaped in every
/// page and email that shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariant_6_typed_text_is_escaped_and_kept_out_of_headers() {
    let Some((sink, _hf, app)) = setup("invariant_6") else {
        return;
    };
    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let eve = "eve@example.org";
    // Quoted, so that the matcher takes it as a phrase rather than as range syntax.
    let hostile = r#"contrastive "<img src=x onerror=alert(1)>" memory"#;

    // A form error shows the typed values back, escaped.
    let bad = post_form(
        &c,
        &d.url("/subscribe"),
        &[
            ("email", "<script>alert(1)</script>"),
            ("interests", hostile),
        ],
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(!bad.body.contains("<script>alert(1)</script>"));
    assert!(!bad.body.contains("<img src=x"));
    assert!(bad.body.contains("&lt;script&gt;"), "{}", bad.body);
    // An address with a header in it is refused, not mailed.
    let injected = post_form(
        &c,
        &d.url("/subscribe"),
        &[
            ("email", "eve@example.org\r\nBcc: victim@example.org"),
            ("interests", "memory"),
        ],
    )
    .await;
    assert_eq!(injected.status, 422);

    // The live preview ranks with it and never shows it raw.
    let preview = get(
        &c,
        &d.url(&format!("/preview?interests={}", encode(hostile))),
    )
    .await;
    assert_eq!(preview.status, 200);
    assert!(
        preview.body.contains("<ol class=\"papers\">"),
        "{}",
        preview.body
    );
    assert!(!preview.body.contains("<img src=x"), "{}", preview.body);

    let manage = subscribe_and_confirm(&d, &c, &sink, eve, hostile, &[], 1).await;
    let page = get(&c, &manage).await;
    assert!(!page.body.contains("<img src=x"));
    assert!(page.body.contains("&lt;img src=x"), "{}", page.body);

    send_now(&app, SEND1);
    let digest = wait_for_mail_to(&sink, eve, 2);
    let html = digest.html_body().unwrap();
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;img src=x"), "{html}");
    for mail in sink.messages_to(eve) {
        for (name, value) in mail.header_fields() {
            assert!(
                !value.contains("img src") && !value.contains("onerror"),
                "{name}: {value}"
            );
        }
    }
    assert!(sink.messages_to("victim@example.org").is_empty());
}

/// POSTs a form as if through our proxy, which put `forwarded` last in `X-Forwarded-For`.
async fn post_via_proxy(
    c: &reqwest::Client,
    url: &str,
    forwarded: &str,
    fields: &[(&str, &str)],
) -> Page {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    read(
        c.post(url)
            .header("x-forwarded-for", forwarded)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST"),
    )
    .await
}

/// The value of a counter on `/metrics` (0 when the series is absent).
async fn metric(c: &reqwest::Client, d: &WebDaemon, name: &str) -> f64 {
    let text = get(c, &d.url("/metrics")).await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `web.confirmation_emails_per_hour = 5`: eight sign-ups from eight client addresses all get
/// the same answer and all are recorded as pending, but only five confirmation emails leave;
/// the cap is logged once and counted on `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_cap_sends_only_its_allowance_and_answers_every_sign_up_the_same() {
    let Some(sink) = SmtpSink::start_or_skip("the_confirmation_cap") else {
        return;
    };
    let app = TestApp::builder().smtp(&sink).build();
    let d = WebDaemon::start(
        &app,
        SEND1,
        &[
            ("PAPERBOY__WEB__CONFIRMATION_EMAILS_PER_HOUR", "5"),
            ("PAPERBOY__WEB__TRUST_FORWARDED_FOR", "true"),
        ],
    );
    let c = client();
    let mut answers = Vec::new();
    for i in 1..=8 {
        let email = format!("capped{i}@example.org");
        let page = post_via_proxy(
            &c,
            &d.url("/subscribe"),
            &format!("203.0.113.{i}"),
            &[("email", &email), ("interests", INTERESTS)],
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.body);
        answers.push(page.body);
    }
    assert!(answers[0].contains("Check your inbox"), "{}", answers[0]);
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every sign-up gets the same page"
    );

    // The sign-ups are processed after the answer: wait until all eight are settled.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while metric(&c, &d, "paperboy_confirmations_withheld_total").await < 3.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "three confirmations withheld expected:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = sink.wait_for_messages(5, Duration::from_secs(20));
    // Give a sixth message every chance to arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent.len(), 5);
    assert_eq!(
        sink.messages().len(),
        5,
        "exactly the cap's allowance is sent"
    );
    assert_eq!(
        metric(&c, &d, "paperboy_confirmations_withheld_total").await,
        3.0
    );
    for i in 1..=8 {
        let email = format!("capped{i}@example.org");
        assert_eq!(
            status_of(&app, SEND1, &email).as_deref(),
            Some("pending"),
            "{email} is recorded whether or not its email went"
        );
    }
    let log = d.log();
    assert_eq!(
        log.matches("web.confirmation_emails_per_hour reached")
            .count(),
        1,
        "one warning, not one per sign-up:\n{log}"
    );
}

/// Per-client limits count an IPv6 client by its /64, and an IPv4-mapped address as the IPv4
/// address it maps (the addresses come through `X-Forwarded-For` from a trusted proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_share_one_allowance_per_slash_64() {
    let app = TestApp::builder().build();
    let d = WebDaemon::start(
        &app,
        SEND1,
        &[
            ("PAPERBOY__WEB__FORM_POSTS_PER_HOUR", "1"),
            ("PAPERBOY__WEB__TRUST_FORWARDED_FOR", "true"),
        ],
    );
    let c = client();
    let ask = |client: &'static str| {
        let (c, url) = (c.clone(), d.url("/manage"));
        async move {
            post_via_proxy(&c, &url, client, &[("email", "someone@example.org")])
                .await
                .status
        }
    };
    assert_eq!(ask("2001:db8:aa:1::1").await, 200);
    assert_eq!(
        ask("2001:db8:aa:1:ffff:ffff:ffff:fffe").await,
        429,
        "same /64, same allowance"
    );
    assert_eq!(ask("2001:db8:aa:2::1").await, 200, "another /64");
    assert_eq!(ask("::ffff:198.51.100.4").await, 200);
    assert_eq!(ask("198.51.100.4").await, 429, "the mapped IPv4 address");
    assert_eq!(
        ask("198.51.100.5").await,
        200,
        "IPv4 addresses are not grouped"
    );
}

/// A link whose token is not UTF-8 once decoded (`%ff`) gets the same friendly page as any
/// other bad link, on every link route, for GET and POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_token_that_is_not_utf8_gets_the_friendly_bad_link_page() {
    let app = TestApp::builder().build();
    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let routes = [
        ("manage", true),
        ("confirm", true),
        ("unsubscribe", true),
        ("digest", false),
        ("feedback", true),
    ];
    for (route, has_post) in routes {
        let garbage = get(&c, &d.url(&format!("/{route}/garbage"))).await;
        let mut answers = vec![("GET", get(&c, &d.url(&format!("/{route}/%ff"))).await)];
        if has_post {
            answers.push((
                "POST",
                post_form(&c, &d.url(&format!("/{route}/%ff")), &[]).await,
            ));
        }
        for (method, page) in answers {
            assert_eq!(page.status, 400, "{method} /{route}/%ff: {}", page.body);
            assert_eq!(page.status, garbage.status, "{method} /{route}/%ff");
            assert!(
                page.header("content-type")
                    .is_some_and(|t| t.starts_with("text/html")),
                "{method} /{route}/%ff: {:?}",
                page.headers
            );
            assert!(
                page.body.contains("This link does not work"),
                "{method} /{route}/%ff: {}",
                page.body
            );
            assert_eq!(
                page.body, garbage.body,
                "{method} /{route}/%ff gets the page any bad {route} link gets"
            );
        }
    }
}
