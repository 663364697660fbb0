//! Matching by meaning on the real Hugging Face day of 2024-10-25, with the built-in model, a
//! real store (SQLite, or PostgreSQL in the PostgreSQL pass) and the ranking planning does
//! (`Candidates::digest_for`): a paraphrase that shares no word with a paper finds it, and the
//! same subscriber without vectors (words alone) does not; weak matches never pad a digest;
//! the interests' exclusions stay hard; a vote moves papers close in meaning; vectors are
//! computed once and survive a restart.

use crate::matching_feedback::{app_with_day, digest, now, subscriber};
use paperboy::jobs::App;
use paperboy::jobs::embed::{self, Quiet};
use paperboy::jobs::plan::{Candidates, PlanMode, PlanReport, due_page};
use paperboy::model::Subscriber;
use paperboy::store::{Store, Vote};

/// Papers in the fixture day.
const DAY_PAPERS: usize = 29;

/// Interests that share no word with the paper they should find (checked below: words alone
/// do not find it), written for this test, not taken from the papers.
const PARAPHRASES: &[(&str, &str, &str)] = &[
    // "Robust Watermarking Using Generative Priors Against Image Editing"; the third is a word
    // the highlighted sentence must hold (what the paper says about the interest).
    (
        "ownership marks that survive photo retouching",
        "2410.18775",
        "watermark",
    ),
    (
        "hidden signatures in photographs",
        "2410.18775",
        "watermark",
    ),
    // "Framer: Interactive Frame Interpolation"
    (
        "inbetweening hand-drawn animation",
        "2410.18978",
        "interpolation",
    ),
];

fn ids(d: &[(String, Vec<String>)]) -> Vec<String> {
    d.iter().map(|(id, _)| id.clone()).collect()
}

async fn embedded_day(dir: &std::path::Path) -> (App, Option<crate::common::PgDatabase>) {
    let (app, pg) = app_with_day(dir).await;
    assert_eq!(
        embed::embed_papers(&app, &Quiet).await.unwrap(),
        DAY_PAPERS,
        "every paper of the day is embedded once"
    );
    (app, pg)
}

/// The day's abstract sentences too (what a highlight needs; left out where a test does not
/// look at highlights: it is the longer half of the embedding).
async fn with_sentences(app: &App) {
    assert_eq!(
        embed::embed_sentences(app, &Quiet).await.unwrap(),
        DAY_PAPERS,
        "the sentences of every abstract, once"
    );
}

async fn embedded_subscriber(app: &App, email: &str, interests: &str) -> Subscriber {
    let who = subscriber(app, email, interests).await;
    embed::embed_interests(app, &[&who.interests], &Quiet)
        .await
        .unwrap();
    who
}

#[tokio::test]
async fn a_paraphrase_finds_its_paper_when_no_word_is_shared() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _pg) = embedded_day(dir.path()).await;
    with_sentences(&app).await;
    let candidates = Candidates::load(&app, now()).await.unwrap();
    for (i, (interests, paper, about)) in PARAPHRASES.iter().enumerate() {
        let who = subscriber(&app, &format!("reader{i}@example.org"), interests).await;
        // No vector for the interests yet: words alone, and they do not find the paper.
        let (_, without) = candidates
            .digest_for(&app, &who, now().date_naive())
            .await
            .unwrap();
        assert_eq!(without, 1, "{interests}: one clause, not embedded yet");
        let by_words = digest(&app, &candidates, &who).await;
        assert!(
            !ids(&by_words).contains(&paper.to_string()),
            "{interests}: words alone already find {paper}, so this is no paraphrase: {:?}",
            ids(&by_words)
        );

        embed::embed_interests(&app, &[&who.interests], &Quiet)
            .await
            .unwrap();
        let by_meaning = digest(&app, &candidates, &who).await;
        let found = by_meaning
            .iter()
            .find(|(id, _)| id == paper)
            .unwrap_or_else(|| panic!("{interests}: {paper} not found by meaning: {by_meaning:?}"));
        let reason = format!("close in meaning to your interest “{interests}”");
        assert!(found.1.contains(&reason), "{interests}: {:?}", found.1);
        assert_eq!(
            by_meaning[0].0, *paper,
            "{interests}: the paraphrased paper comes first: {by_meaning:?}"
        );

        // No word matched, so the snippet marks the abstract's sentence closest in meaning:
        // one whole sentence, the one about the interest.
        let (picks, _) = candidates
            .digest_for(&app, &who, now().date_naive())
            .await
            .unwrap();
        let pick = &picks[0];
        let abstract_text = &candidates.papers[pick.index].paper.abstract_text;
        let marked: Vec<&str> = pick
            .explanation
            .snippet
            .iter()
            .filter(|f| f.highlighted)
            .map(|f| f.text.as_str())
            .collect();
        assert_eq!(
            marked.len(),
            1,
            "{interests}: {:?}",
            pick.explanation.snippet
        );
        let sentences: Vec<&str> = paperboy::embed::abstract_sentences(abstract_text)
            .into_iter()
            .map(|r| &abstract_text[r])
            .collect();
        assert!(
            sentences.iter().any(|s| s.starts_with(marked[0])),
            "{interests}: {:?} is not (the start of) one of the sentences {sentences:?}",
            marked[0]
        );
        assert!(
            marked[0].to_lowercase().contains(about),
            "{interests}: highlighted {:?}",
            marked[0]
        );
        assert!(
            pick.explanation.to_stored_json().contains("\"marks\""),
            "the delivery stores the highlight as a span"
        );
    }
}

#[tokio::test]
async fn weak_matches_never_pad_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _pg) = embedded_day(dir.path()).await;
    let candidates = Candidates::load(&app, now()).await.unwrap();
    // The last is about nothing of the day, yet its best paper (on chart reasoning) reaches
    // the closeness floor: it does not stand out of the day, so it is not sent.
    for (i, interests) in [
        "quantum gravity",
        "bird migration",
        "cooking recipes",
        "confabulation in chatbots",
    ]
    .iter()
    .enumerate()
    {
        let who = embedded_subscriber(&app, &format!("far{i}@example.org"), interests).await;
        let picks = digest(&app, &candidates, &who).await;
        assert!(picks.is_empty(), "{interests}: {picks:?}");
    }
}

#[tokio::test]
async fn exclusions_stay_hard_for_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _pg) = embedded_day(dir.path()).await;
    let candidates = Candidates::load(&app, now()).await.unwrap();
    let watermark = "2410.18775".to_string();
    let open =
        embedded_subscriber(&app, "open@example.org", "hidden signatures in photographs").await;
    assert!(ids(&digest(&app, &candidates, &open).await).contains(&watermark));
    for (i, interests) in [
        "hidden signatures in photographs -watermarking",
        "hidden signatures in photographs NOT watermarking",
        "hidden signatures in photographs title:diffusion",
    ]
    .iter()
    .enumerate()
    {
        let who = embedded_subscriber(&app, &format!("strict{i}@example.org"), interests).await;
        let picks = ids(&digest(&app, &candidates, &who).await);
        assert!(!picks.contains(&watermark), "{interests}: {picks:?}");
    }
}

#[tokio::test]
async fn a_vote_moves_close_papers_up_and_far_ones_down() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _pg) = embedded_day(dir.path()).await;
    let candidates = Candidates::load(&app, now()).await.unwrap();
    let who = embedded_subscriber(&app, "ada@example.org", "language models").await;
    let before = digest(&app, &candidates, &who).await;
    let rank = |d: &[(String, Vec<String>)], id: &str| ids(d).iter().position(|x| x == id);

    // "More like this" on the knowledge-editing-and-hallucinations paper.
    app.store
        .record_feedback(who.id, "2410.16251", Vote::More, now())
        .await
        .unwrap();
    let after = digest(&app, &candidates, &who).await;
    // DeCoRe (decoding to mitigate hallucinations) is close in meaning: it comes in or up,
    // and says which liked paper it is like.
    let decore = rank(&after, "2410.18860").expect("the close paper is in the digest");
    assert!(
        rank(&before, "2410.18860").is_none_or(|r| decore < r),
        "{:?} → {:?}",
        ids(&before),
        ids(&after)
    );
    assert!(
        after[decore].1.contains(
            &"like “Can Knowledge Editing Really Correct Hallucinations?”, which you liked"
                .to_string()
        ),
        "{:?}",
        after[decore].1
    );
    // A paper far from it in meaning (a Chinese pre-training corpus) loses its place.
    let far = "2410.18505";
    let far_before = rank(&before, far).expect("the corpus paper matches `language models`");
    assert!(
        rank(&after, far).is_none_or(|r| r > far_before),
        "{:?} → {:?}",
        ids(&before),
        ids(&after)
    );
}

#[tokio::test]
async fn vectors_are_computed_once_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (app, pg) = embedded_day(dir.path()).await;
    with_sentences(&app).await;
    let who = embedded_subscriber(
        &app,
        "ada@example.org",
        "\"mind reading\" OR video generation",
    )
    .await;
    let url = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}", dir.path().join("pb.db").display()),
    };
    // Another process on the same database: nothing left to embed, same digest.
    let reopened = App::new(
        (*app.settings).clone(),
        Store::open_and_migrate(&url, 2).await.unwrap(),
        app.clock.clone(),
    )
    .unwrap();
    assert_eq!(embed::embed_papers(&reopened, &Quiet).await.unwrap(), 0);
    assert_eq!(embed::embed_sentences(&reopened, &Quiet).await.unwrap(), 0);
    assert_eq!(
        embed::embed_all_interests(&reopened, &Quiet).await.unwrap(),
        0
    );
    assert_eq!(reopened.store.papers_without_vectors().await.unwrap(), 0);
    let first = Candidates::load(&app, now()).await.unwrap();
    let second = Candidates::load(&reopened, now()).await.unwrap();
    assert_eq!(
        digest(&app, &first, &who).await,
        digest(&reopened, &second, &who).await
    );
    let (_, without) = second
        .digest_for(&reopened, &who, now().date_naive())
        .await
        .unwrap();
    assert_eq!(without, 0, "both clauses kept their vectors");
}

/// The planner ranks a slice of subscribers at once, their clauses scored together in one
/// matrix product (`Candidates::digests`); each must get exactly the digest it gets alone
/// (`Candidates::digest`, what `preview` and the live preview use): same papers, order,
/// scores and reasons, whether clauses are shared between them or not.
#[tokio::test]
async fn a_slice_ranked_together_gets_what_each_gets_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _pg) = embedded_day(dir.path()).await;
    let interests = [
        "hidden signatures in photographs",
        "\"mind reading\" OR video generation",
        "video generation",
        "language models -survey",
        "ownership marks that survive photo retouching OR \"mind reading\"",
        "quantum gravity",
    ];
    for (i, text) in interests.iter().enumerate() {
        embedded_subscriber(&app, &format!("reader{i}@example.org"), text).await;
    }
    // A vote too, so that taste is in the slice.
    let voter = embedded_subscriber(&app, "voter@example.org", "language models").await;
    app.store
        .record_feedback(voter.id, "2410.16251", Vote::More, now())
        .await
        .unwrap();
    let candidates = Candidates::load(&app, now()).await.unwrap();
    let mut report = PlanReport::default();
    let (_, due) = due_page(
        &app,
        0,
        now(),
        PlanMode::Now,
        candidates.oldest,
        &mut report,
    )
    .await
    .unwrap()
    .expect("a page of subscribers");
    assert_eq!(due.len(), interests.len() + 1);
    let recipients: Vec<_> = due.iter().map(|d| &d.recipient).collect();
    let together = candidates.digests(&recipients);
    let mut by_meaning = 0;
    for (d, picks) in due.iter().zip(together) {
        let picks = picks.unwrap();
        let alone = candidates.digest(&d.recipient).unwrap();
        let view = |p: &[paperboy::matching::Pick]| -> Vec<(usize, String, Vec<String>)> {
            p.iter()
                .map(|p| {
                    (
                        p.index,
                        format!("{:.6}", p.score),
                        p.explanation.reasons.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(view(&picks), view(&alone), "{}", d.subscriber.email);
        by_meaning += picks
            .iter()
            .filter(|p| {
                p.explanation
                    .reasons
                    .iter()
                    .any(|r| r.contains("close in meaning"))
            })
            .count();
    }
    assert!(by_meaning > 0, "meaning took part in the slice");
}

/// The whole path with the embedded default (`matching.highlight_sentences` on): `paperboy
/// fetch` embeds the papers and their sentences, a paraphrase subscriber gets the watermarking
/// paper, and the email marks the abstract's sentence closest to the interest, where a word
/// match would mark the words. With the setting off, the same digest shows the opening.
#[test]
fn the_email_marks_the_sentence_closest_in_meaning() {
    use crate::common::{FixtureServer, HF_DAY_2024_10_25, TestApp};
    let hf = FixtureServer::start();
    hf.set_day_fixture("2024-10-25", HF_DAY_2024_10_25);
    let mut marked = Vec::new();
    for on in [true, false] {
        let app = TestApp::builder()
            .hf(&hf)
            .file_transport()
            .highlight_sentences(on)
            .build();
        let fetch = app
            .paperboy(["fetch", "--date", "2024-10-25"])
            .at("2024-10-25T06:00:00Z")
            .run();
        fetch.assert_success();
        app.add_confirmed_subscriber(
            "2024-10-25T06:00:00Z",
            "reader@example.org",
            "hidden signatures in photographs",
        );
        app.paperboy(["send", "--now"])
            .at("2024-10-25T09:00:00Z")
            .run()
            .assert_success();
        let mails = app.outbox_messages();
        assert_eq!(mails.len(), 1);
        let html = mails[0].html_body().expect("an HTML part");
        assert!(html.contains("Robust Watermarking"), "{html}");
        marked.push(
            // css-inline gives each mark its style: `<mark class="hit" style="…">`.
            html.split("<mark class=\"hit\"")
                .skip(1)
                .filter_map(|rest| rest.split_once('>')?.1.split("</mark>").next())
                .map(str::to_string)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(marked[0].len(), 1, "one sentence marked: {:?}", marked[0]);
    assert!(
        marked[0][0].contains("watermark") && marked[0][0].split_whitespace().count() > 8,
        "{:?}",
        marked[0]
    );
    assert!(
        marked[1].is_empty(),
        "setting off: nothing marked, {:?}",
        marked[1]
    );
}

/// A paper stored without its abstract was embedded from its title alone; when a later fetch
/// brings the abstract, its vector and sentences are computed again from the whole text.
#[tokio::test]
async fn a_paper_that_gets_its_abstract_is_embedded_again() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _pg) = embedded_day(dir.path()).await;
    with_sentences(&app).await;
    let candidates = Candidates::load(&app, now()).await.unwrap();
    let mut paper = candidates
        .papers
        .iter()
        .find(|p| p.paper.id.as_str() == "2410.18775")
        .unwrap()
        .paper
        .clone();
    let full = paper.abstract_text.clone();
    paper.id = paperboy::model::PaperId::from_stored("2410.99999".to_string());
    paper.abstract_text = String::new();
    app.store
        .upsert_papers(std::slice::from_ref(&paper), "hf", now())
        .await
        .unwrap();
    assert_eq!(embed::embed_papers(&app, &Quiet).await.unwrap(), 1);
    assert_eq!(
        embed::embed_sentences(&app, &Quiet).await.unwrap(),
        1,
        "a title alone has no sentence, and that is stored too"
    );
    let title_only = app
        .store
        .paper_vectors(&["2410.99999".into()])
        .await
        .unwrap();

    paper.abstract_text = full;
    app.store
        .upsert_papers(std::slice::from_ref(&paper), "hf", now())
        .await
        .unwrap();
    assert_eq!(app.store.papers_without_vectors().await.unwrap(), 1);
    assert_eq!(embed::embed_papers(&app, &Quiet).await.unwrap(), 1);
    assert_eq!(embed::embed_sentences(&app, &Quiet).await.unwrap(), 1);
    let whole = app
        .store
        .paper_vectors(&["2410.99999".into()])
        .await
        .unwrap();
    let original = app
        .store
        .paper_vectors(&["2410.18775".into()])
        .await
        .unwrap();
    assert!(whole["2410.99999"].cosine(&original["2410.18775"]) > 0.999);
    assert!(title_only["2410.99999"].cosine(&original["2410.18775"]) < 0.99);
    let sentences = app
        .store
        .paper_sentences(&["2410.99999".into()])
        .await
        .unwrap();
    assert!(sentences["2410.99999"].len() >= 5, "{:?}", sentences.keys());
}
