//! The web pages' SQL on PostgreSQL: the same daemon and emailed links as `web_flow.rs`, with
//! `database.url` pointing at a fresh PostgreSQL database. Every statement of
//! `store/subscriptions.rs` runs here: sign-up, the cooldown, confirmation, preferences,
//! feedback, export, status changes and delete.
//!
//! Needs a PostgreSQL server on 127.0.0.1:5432 that lets `postgres` create databases (what
//! `.ci/run` starts). Without one the test skips with the reason, unless
//! `PAPERBOY_REQUIRE_ALL=1`.

use crate::common::*;
use crate::web_common::*;

const DAY1: &str = "2024-10-25";
const FETCH1: &str = "2024-10-25T06:00:00Z";
const SEND1: &str = "2024-10-25T09:00:00Z";
const INTERESTS: &str = r#""contrastive loss" memory"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_pages_work_on_postgresql() {
    let test = "the_web_pages_work_on_postgresql";
    // Declared before the daemon, so dropped after it.
    let Some(pg) = PgDatabase::create_or_skip(test) else {
        return;
    };
    let Some(sink) = SmtpSink::start_or_skip(test) else {
        return;
    };
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    // Every command and the daemon read this file: it points at PostgreSQL in both passes.
    let app = TestApp::builder()
        .hf(&hf)
        .smtp(&sink)
        .database_url(&pg.url)
        .build();
    assert!(app.config_text().contains(&pg.url));
    fetch_fixture_day(&app, DAY1, FETCH1);

    let d = WebDaemon::start(&app, SEND1, &[]);
    let c = client();
    let (ada, other) = ("ada@example.org", "other@example.org");

    // Sign up twice (the second within the cooldown sends nothing), confirm once.
    for _ in 0..2 {
        let page = post_form(
            &c,
            &d.url("/subscribe"),
            &[("email", ada), ("interests", INTERESTS)],
        )
        .await;
        assert_eq!(page.status, 200);
    }
    let mail = wait_for_mail_to(&sink, ada, 1);
    let confirm = d.local(&link_to(&mail, "confirm"));
    assert_eq!(get(&c, &confirm).await.status, 200);
    assert_eq!(post_form(&c, &confirm, &[]).await.status, 200);
    assert_eq!(post_form(&c, &confirm, &[]).await.status, 410);
    assert_eq!(sink.messages_to(ada).len(), 1, "cooldown");
    assert_eq!(status_of(&app, SEND1, ada).as_deref(), Some("active"));
    subscribe_and_confirm(&d, &c, &sink, other, INTERESTS, &[], 1).await;

    // The digest, a vote, the digest view.
    send_now(&app, SEND1);
    let digest = wait_for_mail_to(&sink, ada, 2);
    let more = digest
        .links()
        .into_iter()
        .find(|l| l.starts_with(&format!("{BASE_URL}/feedback/")) && l.ends_with("?vote=more"))
        .expect("feedback link");
    let voted = post_form(&c, &d.local(&more), &[("vote", "more")]).await;
    assert_eq!(voted.status, 200, "{}", voted.body);
    let view = get(&c, &d.local(&link_to(&digest, "digest"))).await;
    assert_eq!(view.status, 200);
    assert!(view.body.contains("2410.17243"));

    // Manage: save, export, pause and resume.
    let manage = d.local(&link_to(&digest, "manage"));
    let page = get(&c, &manage).await;
    let csrf = page.hidden("csrf");
    let saved = post_form(
        &c,
        &manage,
        &[
            ("csrf", &csrf),
            ("action", "save"),
            ("interests", "diffusion"),
            ("frequency", "weekly"),
            ("weekday", "wed"),
            ("max_papers", "4"),
        ],
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let row = subscriber_row(&app, SEND1, ada).unwrap();
    assert_eq!(row["frequency"], "weekly:wed");
    assert_eq!(row["max_papers"], 4);
    let export = post_form(&c, &manage, &[("csrf", &csrf), ("action", "export")]).await;
    let data: serde_json::Value = serde_json::from_str(&export.body).expect("JSON");
    assert_eq!(data["feedback"][0]["vote"], 1);
    assert_eq!(data["deliveries"].as_array().unwrap().len(), 1);
    assert!(!data["papers_sent"].as_array().unwrap().is_empty());
    for (action, status) in [("pause", "paused"), ("resume", "active")] {
        let page = post_form(&c, &manage, &[("csrf", &csrf), ("action", action)]).await;
        assert_eq!(page.status, 200);
        assert_eq!(status_of(&app, SEND1, ada).as_deref(), Some(status));
    }

    // One-click unsubscribe, then delete.
    let unsubscribe = d.local(&link_to(&digest, "unsubscribe"));
    let gone = post_multipart(&c, &unsubscribe, &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(gone.status, 200);
    assert_eq!(status_of(&app, SEND1, ada).as_deref(), Some("unsubscribed"));
    let deleted = post_form(
        &c,
        &manage,
        &[
            ("csrf", &csrf),
            ("action", "delete"),
            ("confirm_delete", "yes"),
        ],
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(subscriber_row(&app, SEND1, ada).is_none());
    assert_eq!(status_of(&app, SEND1, other).as_deref(), Some("active"));
}
