//! The profile on the manage page, end to end: the real `paperboy run` daemon, Postfix's
//! smtp-sink, SQLite and the real Hugging Face payload of 2024-10-25 served locally.
//!
//! A subscriber reaches the page from the link the confirmation step gives, follows an author
//! and names an example paper there; bad entries are refused with the field at fault and
//! nothing is saved; the saved profile shows on the page, is in the data export, and changes
//! the next digest (the followed author's paper comes first, saying why).
//!
//! Revoking links (issue 16): from the manage page and with `paperboy subscriber revoke-links`,
//! old manage, feedback and digest links answer "this link was replaced", unsubscribe links keep
//! working, the freshly mailed link works, and the unsubscribe page offers to email the manage
//! link instead of showing it.

use crate::common::*;
use crate::web_common::*;

const DAY1: &str = "2024-10-25";
const FETCH1: &str = "2024-10-25T06:00:00Z";
const SEND1: &str = "2024-10-25T09:00:00Z";
/// Ranks 2410.17243 first on day 1 and has nothing to do with 2410.18441 (see digest_flow.rs).
const INTERESTS: &str = r#""contrastive loss" memory"#;
/// The sole author of 2410.18441, "The Nature of Mathematical Modeling and Probabilistic
/// Optimization Engineering in Generative AI".
const FOLLOWED: &str = "Fulu Li";
const FOLLOWED_PAPER: &str = "2410.18441";

/// The daemon on day 1 with its papers fetched, and `email` subscribed through the pages and
/// confirmed, with a late send time so the daemon's own round leaves the digest to
/// `send --now`. `_hf` keeps the fixture server alive for the test.
struct DayOne {
    sink: SmtpSink,
    _hf: FixtureServer,
    app: TestApp,
    d: WebDaemon,
    c: reqwest::Client,
    manage: String,
}

async fn subscribed_on_day_one(test: &str, email: &str) -> Option<DayOne> {
    let sink = SmtpSink::start_or_skip(test)?;
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).smtp(&sink).build();
    fetch_fixture_day(&app, DAY1, FETCH1);
    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let manage = subscribe_and_confirm(
        &d,
        &c,
        &sink,
        email,
        INTERESTS,
        &[("time", "23:30"), ("timezone", "UTC")],
        1,
    )
    .await;
    Some(DayOne {
        sink,
        _hf: hf,
        app,
        d,
        c,
        manage,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manage_page_edits_the_profile_and_the_next_digest_follows_it() {
    let test = "the_manage_page_edits_the_profile_and_the_next_digest_follows_it";
    let bob = "bob@example.org";
    let Some(DayOne {
        sink,
        _hf,
        app,
        d,
        c,
        manage,
    }) = subscribed_on_day_one(test, bob).await
    else {
        return;
    };
    let page = get(&c, &manage).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for field in [
        "name=\"authors\"",
        "name=\"categories\"",
        "name=\"category_mode\"",
        "name=\"examples\"",
        // The query language is explained where it is typed.
        "<code>author:\"Yoshua Bengio\"</code>",
        "cat:cs.LG",
    ] {
        assert!(page.body.contains(field), "{field} missing:\n{}", page.body);
    }
    let csrf = page.hidden("csrf");
    let base_fields = |extra: Vec<(&'static str, &'static str)>| {
        let mut f = vec![
            ("action", "save"),
            ("interests", INTERESTS),
            ("time", "23:30"),
            ("timezone", "UTC"),
            ("frequency", "daily"),
            ("max_papers", "3"),
        ];
        f.extend(extra);
        f
    };

    // Bad entries: every one named, with its field marked, and nothing saved.
    let mut bad = base_fields(vec![
        ("authors", "Fulu Li\n12345"),
        ("categories", "cs.LG, Machine Learning"),
        ("category_mode", "sometimes"),
        ("examples", "2410.17243\nnot-a-paper"),
    ]);
    bad.push(("csrf", &csrf));
    let refused = post_form(&c, &manage, &bad).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    for (field, words) in [
        ("authors", "`12345` is not a name"),
        ("categories", "`Machine Learning` is not an arXiv category"),
        ("category_mode", "is not a category mode"),
        ("examples", "`not-a-paper` is not an arXiv paper"),
    ] {
        assert!(
            refused.body.contains(&format!("href=\"#{field}\"")),
            "{field} not linked:\n{}",
            refused.body
        );
        assert!(
            refused.body.contains(words),
            "{words:?} missing:\n{}",
            refused.body
        );
    }
    // What the visitor typed is kept in the form, escaped.
    assert!(refused.body.contains("Fulu Li\n12345"), "{}", refused.body);
    let export = |c: reqwest::Client, manage: String, csrf: String| async move {
        let e = post_form(&c, &manage, &[("csrf", &csrf), ("action", "export")]).await;
        assert_eq!(e.status, 200, "{}", e.body);
        serde_json::from_str::<serde_json::Value>(&e.body).expect("JSON export")
    };
    let before = export(c.clone(), manage.clone(), csrf.clone()).await;
    assert_eq!(before["profile"]["authors"], serde_json::json!([]));
    assert_ne!(before["subscriber"]["max_papers"], 3, "nothing was saved");

    // A good profile: saved, shown again, exported.
    let mut good = base_fields(vec![
        ("authors", " Fulu Li \nfulu li\n"),
        ("categories", "cs.LG, stat.ML"),
        ("category_mode", "boost"),
        ("examples", "https://arxiv.org/abs/2410.17243v2"),
    ]);
    good.push(("csrf", &csrf));
    let saved = post_form(&c, &manage, &good).await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(
        saved.body.contains("Your changes are saved"),
        "{}",
        saved.body
    );
    let shown = get(&c, &manage).await;
    assert!(
        shown.body.contains(">Fulu Li</textarea>"),
        "one author, trimmed and without the repeat:\n{}",
        shown.body
    );
    assert!(
        shown.body.contains("value=\"cs.LG, stat.ML\""),
        "{}",
        shown.body
    );
    assert!(
        shown.body.contains(">2410.17243</textarea>"),
        "{}",
        shown.body
    );
    let after = export(c.clone(), manage.clone(), csrf.clone()).await;
    assert_eq!(
        after["profile"],
        serde_json::json!({
            "authors": [FOLLOWED],
            "categories": ["cs.LG", "stat.ML"],
            "category_mode": "boost",
            "examples": ["2410.17243"],
        })
    );
    assert_eq!(after["subscriber"]["max_papers"], 3);

    // The digest: the followed author's paper first, saying why; the example paper is one the
    // subscriber already knows, so it is not sent, but papers like it are marked so.
    send_now(&app, SEND1);
    let digest = wait_for_mail_to(&sink, bob, 2);
    let text = normalize_ws(&digest.text_body().expect("a text part"));
    let first = text
        .find("1. The Nature of Mathematical Modeling")
        .unwrap_or_else(|| panic!("{FOLLOWED_PAPER} is not first:\n{text}"));
    assert!(
        text[first..].contains("Why: new paper by Fulu Li, whom you follow"),
        "the reason names the author:\n{text}"
    );
    assert!(text.contains(&format!("abs/{FOLLOWED_PAPER}")), "{text}");
    assert!(
        !text.contains("abs/2410.17243"),
        "an example is not re-sent:\n{text}"
    );
    assert!(text.contains("like papers you liked"), "{text}");
    assert!(
        text.contains("3 new papers"),
        "max_papers 3 was saved:\n{text}"
    );
    d.stop();
}

/// The path of a link without its query (`?vote=…`).
fn without_query(link: &str) -> String {
    link.split('?').next().unwrap_or(link).to_string()
}

/// The friendly page a revoked link gets: 410, the same look as the other link pages, the way to
/// a fresh link, and nothing about the subscription.
#[track_caller]
fn assert_replaced(page: &Page, what: &str, email: &str) {
    assert_eq!(page.status, 410, "{what}: {}", page.body);
    assert!(
        page.body.contains("This link was replaced"),
        "{what}: {}",
        page.body
    );
    assert!(
        page.body.contains("href=\"&#x2F;manage\"") && page.body.contains("Email me a fresh link"),
        "{what}: the way to a new link:\n{}",
        page.body
    );
    assert!(page.body.contains("class=\"card message bad\""), "{what}");
    assert!(!page.body.contains(email), "{what} names no address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_from_the_manage_page_replaces_every_link_but_unsubscribe() {
    let test = "revoking_from_the_manage_page_replaces_every_link_but_unsubscribe";
    let cam = "cam@example.org";
    let Some(DayOne {
        sink,
        _hf,
        app,
        d,
        c,
        manage: confirmed_manage,
    }) = subscribed_on_day_one(test, cam).await
    else {
        return;
    };
    send_now(&app, SEND1);
    let digest = wait_for_mail_to(&sink, cam, 2);
    let old_manage = d.local(&link_to(&digest, "manage"));
    let old_feedback = d.local(&link_to(&digest, "feedback"));
    let old_view = d.local(&link_to(&digest, "digest"));
    let old_unsubscribe = d.local(&link_to(&digest, "unsubscribe"));
    assert_eq!(old_manage, confirmed_manage, "one link until revoked");
    // The used confirmation link still leads to the manage page, until the revocation.
    let old_confirm = d.local(&link_to(&wait_for_mail_to(&sink, cam, 1), "confirm"));
    let used = get(&c, &old_confirm).await;
    assert_eq!(page_links(&d, &used, "manage"), vec![old_manage.clone()]);

    // GETs change nothing, whatever they carry: not the revocation, not a vote, not the status.
    let page = get(&c, &old_manage).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("name=\"action\" value=\"revoke\""),
        "the revoke button:\n{}",
        page.body
    );
    let csrf = page.hidden("csrf");
    let sneaky = format!("{old_manage}?action=revoke&csrf={}", encode(&csrf));
    assert_eq!(get(&c, &sneaky).await.status, 200);
    assert_eq!(get(&c, &old_feedback).await.status, 200);
    assert_eq!(get(&c, &old_view).await.status, 200);
    let unsubscribe_page = get(&c, &old_unsubscribe).await;
    assert_eq!(unsubscribe_page.status, 200);
    assert_eq!(status_of(&app, SEND1, cam).as_deref(), Some("active"));
    assert_eq!(
        get(&c, &old_manage).await.status,
        200,
        "not revoked by a GET"
    );
    assert_eq!(sink.messages_to(cam).len(), 2, "nothing mailed by a GET");
    // The unsubscribe page hands out no manage link, only the offer to email it.
    assert!(
        page_links(&d, &unsubscribe_page, "manage").is_empty(),
        "{}",
        unsubscribe_page.body
    );
    assert!(
        !unsubscribe_page.body.contains("manage&#x2F;"),
        "{}",
        unsubscribe_page.body
    );
    assert!(
        unsubscribe_page
            .body
            .contains("<form method=\"post\" action=\"/manage\">"),
        "{}",
        unsubscribe_page.body
    );

    // Without the page's CSRF token nothing is revoked.
    let refused = post_form(&c, &old_manage, &[("action", "revoke")]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(get(&c, &old_manage).await.status, 200);

    // Revoke: the page says so, shows no new link, and the new one arrives by email.
    let done = post_form(&c, &old_manage, &[("csrf", &csrf), ("action", "revoke")]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("Your old links are switched off"),
        "{}",
        done.body
    );
    assert!(
        done.body
            .contains(&format!("We have emailed a new link to {cam}")),
        "{}",
        done.body
    );
    assert!(
        !done.body.contains("manage&#x2F;") && page_links(&d, &done, "manage").is_empty(),
        "the new link is only mailed:\n{}",
        done.body
    );
    let mailed = wait_for_mail_to(&sink, cam, 3);
    assert_eq!(
        mailed.subject().as_deref(),
        Some("Your new paperboy subscription link")
    );
    let new_manage = d.local(&link_to(&mailed, "manage"));
    assert_ne!(new_manage, old_manage);

    // Old manage, feedback and digest links: the replaced page, for GET and POST alike.
    assert_replaced(&get(&c, &old_manage).await, "old manage GET", cam);
    let again = post_form(&c, &old_manage, &[("csrf", &csrf), ("action", "pause")]).await;
    assert_replaced(&again, "old manage POST", cam);
    let twice = post_form(&c, &old_manage, &[("csrf", &csrf), ("action", "revoke")]).await;
    assert_replaced(&twice, "a second revoke from the old page", cam);
    assert_replaced(&get(&c, &old_feedback).await, "old feedback GET", cam);
    let vote = post_form(&c, &without_query(&old_feedback), &[("vote", "more")]).await;
    assert_replaced(&vote, "old feedback POST", cam);
    assert_replaced(&get(&c, &old_view).await, "old digest view", cam);
    let used = get(&c, &old_confirm).await;
    assert_eq!(used.status, 410, "{}", used.body);
    assert!(
        page_links(&d, &used, "manage").is_empty(),
        "an old confirmation email hands out no manage link:\n{}",
        used.body
    );
    assert_eq!(status_of(&app, SEND1, cam).as_deref(), Some("active"));

    // The new link works, and no vote was recorded through the old feedback link.
    let fresh = get(&c, &new_manage).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert!(fresh.body.contains(cam));
    let fresh_csrf = fresh.hidden("csrf");
    assert_ne!(fresh_csrf, csrf);
    let export = post_form(
        &c,
        &new_manage,
        &[("csrf", &fresh_csrf), ("action", "export")],
    )
    .await;
    assert_eq!(export.status, 200, "{}", export.body);
    let data: serde_json::Value = serde_json::from_str(&export.body).expect("JSON export");
    assert_eq!(data["feedback"], serde_json::json!([]), "no vote recorded");
    // The old page's CSRF token does not work with the new link either.
    let stale = post_form(&c, &new_manage, &[("csrf", &csrf), ("action", "pause")]).await;
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert_eq!(status_of(&app, SEND1, cam).as_deref(), Some("active"));
    assert_eq!(sink.messages_to(cam).len(), 3);

    // The old unsubscribe link still unsubscribes (RFC 8058 one-click), and its page offers to
    // email the manage link: the form posts to "email me my link", which mails the new one.
    let gone = post_multipart(&c, &old_unsubscribe, &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(gone.body.contains("You are unsubscribed"), "{}", gone.body);
    assert_eq!(status_of(&app, SEND1, cam).as_deref(), Some("unsubscribed"));
    assert!(page_links(&d, &gone, "manage").is_empty(), "{}", gone.body);
    assert_eq!(gone.hidden("email"), cam);
    let asked = post_form(&c, &d.url("/manage"), &[("email", &gone.hidden("email"))]).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("Check your inbox"), "{}", asked.body);
    let link_mail = wait_for_mail_to(&sink, cam, 4);
    assert_eq!(d.local(&link_to(&link_mail, "manage")), new_manage);
    let back = get(&c, &new_manage).await;
    let resumed = post_form(
        &c,
        &new_manage,
        &[("csrf", &back.hidden("csrf")), ("action", "resume")],
    )
    .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(status_of(&app, SEND1, cam).as_deref(), Some("active"));
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_revokes_links_from_the_command_line() {
    // The file transport: the new link is read from the outbox.
    let app = TestApp::builder().build();
    let dee = "dee@example.org";
    app.add_confirmed_subscriber(SEND1, dee, INTERESTS);
    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let mails_to = |subject: &str| -> Vec<ReceivedMail> {
        app.outbox_messages()
            .into_iter()
            .filter(|m| m.subject().as_deref() == Some(subject))
            .collect()
    };

    // A first link, by "email me my link" (mailed in the background).
    let asked = post_form(&c, &d.url("/manage"), &[("email", dee)]).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(wait_until(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(50),
        || mails_to("Your paperboy subscription link").len() == 1
    ));
    let old_manage = d.local(&link_to(
        &mails_to("Your paperboy subscription link")[0],
        "manage",
    ));
    let page = get(&c, &old_manage).await;
    assert_eq!(page.status, 200, "{}", page.body);

    let out = app
        .paperboy(["subscriber", "revoke-links", dee])
        .at(SEND1)
        .run();
    out.assert_success();
    assert!(
        out.stdout.contains(&format!(
            "revoked the manage, feedback and digest links of {dee} (token version 1 -> 2)"
        )),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("mailed the new manage link to {dee}")),
        "{out}"
    );
    let replaced = mails_to("Your new paperboy subscription link");
    assert_eq!(replaced.len(), 1, "one new link mailed");
    assert!(
        replaced[0].header("to").is_some_and(|to| to.contains(dee)),
        "{:?}",
        replaced[0]
    );
    let new_manage = d.local(&link_to(&replaced[0], "manage"));
    assert_ne!(new_manage, old_manage);
    assert_replaced(&get(&c, &old_manage).await, "old manage link", dee);
    let fresh = get(&c, &new_manage).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert!(fresh.body.contains(dee));

    // --no-mail: revoked all the same, nothing mailed.
    let quiet = app
        .paperboy(["subscriber", "revoke-links", dee, "--no-mail"])
        .at(SEND1)
        .run();
    quiet.assert_success();
    assert!(quiet.stdout.contains("(token version 2 -> 3)"), "{quiet}");
    assert!(
        quiet.stdout.contains("mailed nothing (--no-mail)"),
        "{quiet}"
    );
    assert_eq!(mails_to("Your new paperboy subscription link").len(), 1);
    assert_replaced(&get(&c, &new_manage).await, "the link revoked quietly", dee);

    // An unknown address: said so, exit 1.
    let nobody = app
        .paperboy(["subscriber", "revoke-links", "nobody@example.org"])
        .at(SEND1)
        .run();
    nobody.assert_failure();
    assert!(
        nobody
            .stderr
            .contains("nobody@example.org is not a subscriber"),
        "{nobody}"
    );
    d.stop();
}

/// Issue 17: `max_papers` is one rule (`model::MaxPapers`, 1 to 100) on every path. A subscriber
/// added with `--max-papers 50` (above `digest.max_papers`, 10 by default) sees 50 on their
/// manage page and can save it; the manage page bounds the field as the command line does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_added_with_more_papers_than_the_default_can_save_the_manage_page() {
    let app = TestApp::builder().build();
    let fay = "fay@example.org";
    app.paperboy([
        "subscriber",
        "add",
        fay,
        "--interests",
        INTERESTS,
        "--confirmed",
        "--max-papers",
        "50",
    ])
    .at(SEND1)
    .run()
    .assert_success();
    // The command line refuses what the page refuses, naming the flag.
    let refused = app
        .paperboy([
            "subscriber",
            "add",
            "gus@example.org",
            "--interests",
            INTERESTS,
            "--max-papers",
            "101",
        ])
        .at(SEND1)
        .run();
    refused.assert_failure();
    assert!(
        refused.stderr.contains("--max-papers") && refused.stderr.contains("from 1 to 100"),
        "{refused}"
    );
    assert!(subscriber_row(&app, SEND1, "gus@example.org").is_none());

    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let asked = post_form(&c, &d.url("/manage"), &[("email", fay)]).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(wait_until(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(50),
        || !app.outbox_messages().is_empty()
    ));
    let manage = d.local(&link_to(&app.outbox_messages()[0], "manage"));
    let page = get(&c, &manage).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(r#"max="100" value="50""#),
        "the field shows 50 and allows up to 100:\n{}",
        page.body
    );
    let csrf = page.hidden("csrf");
    let save = |max: &'static str| {
        let (c, manage, csrf) = (c.clone(), manage.clone(), csrf.clone());
        async move {
            post_form(
                &c,
                &manage,
                &[
                    ("csrf", csrf.as_str()),
                    ("action", "save"),
                    ("interests", INTERESTS),
                    ("time", "07:00"),
                    ("timezone", "UTC"),
                    ("frequency", "daily"),
                    ("max_papers", max),
                ],
            )
            .await
        }
    };

    // The page as it was shown, saved unchanged.
    let saved = save("50").await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(
        saved.body.contains("Your changes are saved"),
        "{}",
        saved.body
    );
    assert_eq!(subscriber_row(&app, SEND1, fay).unwrap()["max_papers"], 50);
    // Up to the same bound as the command line, and no further.
    let more = save("100").await;
    assert_eq!(more.status, 200, "{}", more.body);
    assert_eq!(subscriber_row(&app, SEND1, fay).unwrap()["max_papers"], 100);
    let too_many = save("101").await;
    assert_eq!(too_many.status, 422, "{}", too_many.body);
    assert!(
        too_many.body.contains("a whole number from 1 to 100"),
        "{}",
        too_many.body
    );
    assert_eq!(subscriber_row(&app, SEND1, fay).unwrap()["max_papers"], 100);
    d.stop();
}
