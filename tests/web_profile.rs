//! The profile on the manage page, end to end: the real `paperboy run` daemon, Postfix's
//! smtp-sink, SQLite and the real Hugging Face payload of 2024-10-25 served locally.
//!
//! A subscriber reaches the page from the link the confirmation step gives, follows an author
//! and names an example paper there; bad entries are refused with the field at fault and
//! nothing is saved; the saved profile shows on the page, is in the data export, and changes
//! the next digest (the followed author's paper comes first, saying why).

mod common;
mod web_common;

use common::*;
use web_common::*;

const DAY1: &str = "2024-10-25";
const FETCH1: &str = "2024-10-25T06:00:00Z";
const SEND1: &str = "2024-10-25T09:00:00Z";
/// Ranks 2410.17243 first on day 1 and has nothing to do with 2410.18441 (see digest_flow.rs).
const INTERESTS: &str = r#""contrastive loss" memory"#;
/// The sole author of 2410.18441, "The Nature of Mathematical Modeling and Probabilistic
/// Optimization Engineering in Generative AI".
const FOLLOWED: &str = "Fulu Li";
const FOLLOWED_PAPER: &str = "2410.18441";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manage_page_edits_the_profile_and_the_next_digest_follows_it() {
    let test = "the_manage_page_edits_the_profile_and_the_next_digest_follows_it";
    let Some(sink) = SmtpSink::start_or_skip(test) else {
        return;
    };
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).smtp(&sink).build();
    fetch_fixture_day(&app, DAY1, FETCH1);
    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let bob = "bob@example.org";

    // A late send time, so the daemon's own round leaves the digest to `send --now` below.
    let manage = subscribe_and_confirm(
        &d,
        &c,
        &sink,
        bob,
        INTERESTS,
        &[("time", "23:30"), ("timezone", "UTC")],
        1,
    )
    .await;
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
