//! Feedback and the stored profile change the next digest: a real store (SQLite, or PostgreSQL in
//! the PostgreSQL pass) holding the real
//! Hugging Face day of 2024-10-25, the vote recorded with the statement the `/feedback/{token}`
//! page uses (`Store::record_feedback`), and the ranking planning does
//! (`Candidates::digest_for`).

use crate::common::{PgDatabase, test_database_url};
use chrono::{DateTime, Utc};
use paperboy::config::Settings;
use paperboy::jobs::plan::Candidates;
use paperboy::jobs::{App, Clock};
use paperboy::model::{
    EmailAddress, Frequency, Interests, Profile, SendTime, Subscriber, SubscriberStatus,
    TimeZoneName,
};
use paperboy::store::{NewSubscriber, Store, Vote};

pub(crate) fn now() -> DateTime<Utc> {
    "2024-10-25T09:00:00Z".parse().unwrap()
}

/// The app, and the test's PostgreSQL database in that pass (keep it until the test ends).
pub(crate) async fn app_with_day(dir: &std::path::Path) -> (App, Option<PgDatabase>) {
    let (url, pg) = test_database_url(&dir.join("pb.db"));
    let store = Store::open_and_migrate(&url, 2).await.unwrap();
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hf/daily_papers_2024-10-25.json"
    ))
    .unwrap();
    let (papers, _) = paperboy::sources::hf::parse_daily_papers(&body, 1).unwrap();
    store
        .upsert_papers(&papers, "hf", now() - chrono::Duration::hours(3))
        .await
        .unwrap();
    let settings = Settings::load_with_env(
        None,
        [(
            "PAPERBOY__MAIL__FILE_DIR".to_string(),
            dir.join("outbox").display().to_string(),
        )],
    )
    .unwrap();
    (
        App::new(settings, store, Clock::from_env().unwrap()).unwrap(),
        pg,
    )
}

pub(crate) async fn subscriber(app: &App, email: &str, interests: &str) -> Subscriber {
    let id = app
        .store
        .add_subscriber(
            &NewSubscriber {
                email: EmailAddress::parse(email).unwrap(),
                status: SubscriberStatus::Active,
                interests: Interests::parse(interests).unwrap(),
                frequency: Frequency::Daily,
                send_time: "07:00".parse::<SendTime>().unwrap(),
                timezone: "UTC".parse::<TimeZoneName>().unwrap(),
                max_papers: paperboy::model::MaxPapers::new(10).unwrap(),
            },
            now(),
        )
        .await
        .unwrap();
    app.store
        .subscriber_by_email(&EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .map(|row| row.parse().unwrap())
        .filter(|s: &Subscriber| s.id == id)
        .unwrap()
}

pub(crate) async fn digest(
    app: &App,
    candidates: &Candidates,
    who: &Subscriber,
) -> Vec<(String, Vec<String>)> {
    candidates
        .digest_for(app, who, now().date_naive())
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|p| {
            (
                candidates.papers[p.index].paper.id.to_string(),
                p.explanation.reasons,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_vote_changes_the_next_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _pg) = app_with_day(dir.path()).await;
    let who = subscriber(&app, "ada@example.org", "language models").await;
    let candidates = Candidates::load(&app, now()).await.unwrap();

    let before = digest(&app, &candidates, &who).await;
    let ids = |d: &[(String, Vec<String>)]| d.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert!(
        !ids(&before).contains(&"2410.18860".to_string()),
        "DeCoRe (hallucinations) is not in the plain digest: {:?}",
        ids(&before)
    );

    // "More like this" on the knowledge-editing-and-hallucinations paper, as the feedback page
    // records it.
    assert!(
        app.store
            .record_feedback(who.id, "2410.16251", Vote::More, now())
            .await
            .unwrap()
    );
    let after = digest(&app, &candidates, &who).await;
    let pos = ids(&after).iter().position(|id| id == "2410.18860");
    assert!(
        pos.is_some(),
        "the similar paper comes in: {:?}",
        ids(&after)
    );
    let reasons = &after[pos.unwrap()].1;
    assert!(
        reasons.iter().any(|r| r == "like papers you liked"),
        "{reasons:?}"
    );

    // "Less like this" on the same paper pushes the knowledge-editing paper down.
    app.store
        .record_feedback(who.id, "2410.16251", Vote::Less, now())
        .await
        .unwrap();
    let disliked = digest(&app, &candidates, &who).await;
    let rank_of = |d: &[(String, Vec<String>)], id: &str| ids(d).iter().position(|x| x == id);
    assert!(
        rank_of(&disliked, "2410.18785")
            .is_none_or(|r| r > rank_of(&before, "2410.18785").unwrap()),
        "{:?} vs {:?}",
        ids(&disliked),
        ids(&before)
    );
}

#[tokio::test]
async fn the_stored_profile_is_used_when_planning() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _pg) = app_with_day(dir.path()).await;
    let who = subscriber(&app, "grace@example.org", "\"speculative sampling\"").await;
    let candidates = Candidates::load(&app, now()).await.unwrap();
    let before = digest(&app, &candidates, &who).await;
    assert_eq!(before.len(), 1);

    app.store
        .set_profile(
            who.id,
            &Profile {
                authors: vec!["Brando Miranda".into()],
                categories: vec![],
                category_mode: paperboy::model::CategoryMode::Boost,
                examples: vec![],
            },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        app.store.profile(who.id).await.unwrap().authors,
        vec!["Brando Miranda".to_string()]
    );
    let after = digest(&app, &candidates, &who).await;
    let mut first_two: Vec<String> = after.iter().take(2).map(|(id, _)| id.clone()).collect();
    first_two.sort();
    assert_eq!(first_two, vec!["2410.16429", "2410.18194"]);
    assert!(after[0].1[0].contains("Brando Miranda"), "{:?}", after[0].1);
    assert_eq!(
        after.len(),
        3,
        "the followed author's two papers and the match"
    );

    // An example paper pulls similar ones in and is never sent back itself.
    app.store
        .set_profile(
            who.id,
            &Profile {
                authors: vec![],
                categories: vec![],
                category_mode: paperboy::model::CategoryMode::Boost,
                examples: vec!["2410.16251".into()],
            },
            now(),
        )
        .await
        .unwrap();
    let with_example = digest(&app, &candidates, &who).await;
    let ids: Vec<&str> = with_example.iter().map(|(id, _)| id.as_str()).collect();
    assert!(!ids.contains(&"2410.16251"), "{ids:?}");
    assert!(
        ids.contains(&"2410.18785"),
        "knowledge editing, like the example: {ids:?}"
    );
}
