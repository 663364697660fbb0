//! The matcher on the real Hugging Face day of 2024-10-25 (29 papers, read with the real HF
//! parser): each query-language feature, each profile signal, trending, the floor, the
//! explanations and the refusal of bad queries.
//!
//! HF gives no arXiv categories; where a test needs them it sets them on named papers and says
//! so. Everything else (titles, abstracts, authors, upvotes) is the fixture's.
//!
//! The last test runs the built binary: the live preview, `paperboy preview` and the digest
//! sent must list the same papers in the same order.

use paperboy::matching::{
    Blend, CandidateIndex, InterestsSyntaxError, Pick, ProfileSignals, TRENDING_ONLY,
    check_interests,
};
use paperboy::model::{CategoryMode, Interests, Paper};

fn day() -> Vec<Paper> {
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hf/daily_papers_2024-10-25.json"
    ))
    .expect("fixture");
    let (papers, skipped) = paperboy::sources::hf::parse_daily_papers(&body, 1).expect("parses");
    assert!(skipped.is_empty());
    assert_eq!(papers.len(), 29);
    papers
}

fn id_of(papers: &[Paper], pick: &Pick) -> String {
    papers[pick.index].id.as_str().to_string()
}

/// The ids `interests` picks (all of them, no floor, no trending), best first.
fn ids(papers: &[Paper], index: &CandidateIndex, interests: &str) -> Vec<String> {
    let profile = index
        .profile(Some(interests), &ProfileSignals::default())
        .unwrap_or_else(|e| panic!("{interests}: {e}"));
    index
        .rank_profile(&profile, &Blend::floor(0.0), |_| true, 100)
        .unwrap()
        .iter()
        .map(|p| id_of(papers, p))
        .collect()
}

fn rank(
    papers: &[Paper],
    index: &CandidateIndex,
    interests: Option<&str>,
    input: &ProfileSignals,
    blend: Blend,
) -> Vec<Pick> {
    let profile = index.profile(interests, input).unwrap();
    let picks = index.rank_profile(&profile, &blend, |_| true, 100).unwrap();
    assert!(picks.iter().all(|p| p.index < papers.len()));
    picks
}

fn text(paper: &Paper) -> String {
    format!("{} {}", paper.title, paper.abstract_text).to_lowercase()
}

#[test]
fn query_language_features() {
    let papers = day();
    let index = CandidateIndex::build(&papers).unwrap();
    let by_id = |id: &str| papers.iter().find(|p| p.id.as_str() == id).unwrap();

    // A phrase needs its words together; the words alone match more papers.
    let phrase = ids(&papers, &index, "\"knowledge editing\"");
    let words = ids(&papers, &index, "knowledge editing");
    assert!(phrase.contains(&"2410.16251".to_string()), "{phrase:?}");
    assert!(phrase.len() < words.len(), "{phrase:?} vs {words:?}");
    for id in &phrase {
        assert!(text(by_id(id)).contains("knowledge edit"), "{id}");
    }

    // AND needs both, OR either; NOT and -word exclude.
    let and = ids(&papers, &index, "hallucination AND editing");
    let or = ids(&papers, &index, "hallucination OR editing");
    assert!(!and.is_empty() && and.len() < or.len(), "{and:?} {or:?}");
    for id in &and {
        let t = text(by_id(id));
        assert!(t.contains("hallucinat") && t.contains("edit"), "{id}");
    }
    let not = ids(&papers, &index, "hallucination NOT editing");
    let minus = ids(&papers, &index, "hallucination -editing");
    assert_eq!(not, minus);
    assert!(!not.is_empty());
    for id in &not {
        assert!(!text(by_id(id)).contains("editing"), "{id}");
    }

    // Parentheses group: (a OR b) AND c is not a OR (b AND c).
    let grouped = ids(&papers, &index, "(reward OR preference) AND alignment");
    for id in &grouped {
        let t = text(by_id(id));
        assert!(t.contains("align"), "{id}");
        assert!(t.contains("reward") || t.contains("preference"), "{id}");
    }
    assert!(!grouped.is_empty());

    // title: only looks at titles, abstract: only at abstracts.
    let title = ids(&papers, &index, "title:hallucinations");
    assert!(!title.is_empty());
    for id in &title {
        assert!(
            by_id(id).title.to_lowercase().contains("hallucination"),
            "{id}"
        );
    }
    let in_abstract = ids(&papers, &index, "abstract:hallucinations");
    assert!(in_abstract.len() >= title.len());

    // author: is a phrase over the author names, case and accents folded.
    let author = ids(&papers, &index, "author:\"Brando Miranda\"");
    let mut sorted = author.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["2410.16429", "2410.18194"]);
    assert_eq!(ids(&papers, &index, "author:\"brandó MIRANDA\""), author);

    // Stemming and folding: "Hallucinations" is found by "HALLUCINATION" and "hallucinatión".
    let stemmed = ids(&papers, &index, "HALLUCINATION");
    assert!(stemmed.contains(&"2410.16251".to_string()));
    assert_eq!(ids(&papers, &index, "hallucinatión"), stemmed);
}

#[test]
fn categories_as_a_field_a_filter_and_a_boost() {
    let mut papers = day();
    // HF has no categories; as arXiv would for these: robotics for the imitation-learning
    // paper, computation and language for the two knowledge-editing ones.
    for p in &mut papers {
        p.categories = match p.id.as_str() {
            "2410.18647" => vec!["cs.RO".into(), "cs.LG".into()],
            "2410.16251" | "2410.18785" => vec!["cs.CL".into()],
            _ => vec![],
        };
    }
    let index = CandidateIndex::build(&papers).unwrap();
    assert_eq!(ids(&papers, &index, "cat:cs.RO"), vec!["2410.18647"]);
    assert_eq!(ids(&papers, &index, "cat:CS.ro"), vec!["2410.18647"]);
    // An archive covers its categories.
    assert_eq!(ids(&papers, &index, "cat:cs").len(), 3);

    // Filter: only papers in the categories, whatever else matches.
    let filter = ProfileSignals {
        categories: vec!["cs.CL".into()],
        category_mode: CategoryMode::Filter,
        ..ProfileSignals::default()
    };
    let picks = rank(
        &papers,
        &index,
        Some("language models"),
        &filter,
        Blend::floor(0.0),
    );
    let mut got: Vec<String> = picks.iter().map(|p| id_of(&papers, p)).collect();
    got.sort();
    assert_eq!(got, vec!["2410.16251", "2410.18785"]);
    assert!(
        picks[0]
            .explanation
            .reasons
            .iter()
            .any(|r| r.contains("cs.CL")),
        "{:?}",
        picks[0].explanation.reasons
    );

    // Boost: the same papers, ranked higher than without the category.
    let plain = ids(&papers, &index, "language models");
    let boost = ProfileSignals {
        categories: vec!["cs.CL".into()],
        category_mode: CategoryMode::Boost,
        ..ProfileSignals::default()
    };
    let boosted: Vec<String> = rank(
        &papers,
        &index,
        Some("language models"),
        &boost,
        Blend::floor(0.0),
    )
    .iter()
    .map(|p| id_of(&papers, p))
    .collect();
    assert_eq!(boosted.len(), plain.len(), "a boost keeps the other papers");
    let pos = |v: &[String], id: &str| v.iter().position(|x| x == id).unwrap();
    // "Can Knowledge Editing Really Correct Hallucinations?" says "language models" little.
    assert!(pos(&boosted, "2410.16251") < pos(&plain, "2410.16251"));
}

#[test]
fn a_followed_author_is_always_included_first_and_named() {
    let papers = day();
    let index = CandidateIndex::build(&papers).unwrap();
    let input = ProfileSignals {
        authors: vec!["Fulu Li".into()],
        ..ProfileSignals::default()
    };
    // Interests that have nothing to do with mathematical modeling, and a high floor.
    let picks = rank(
        &papers,
        &index,
        Some("\"speculative sampling\""),
        &input,
        Blend::floor(1.0),
    );
    assert_eq!(id_of(&papers, &picks[0]), "2410.18441");
    assert!(
        picks[0].explanation.reasons[0].contains("Fulu Li"),
        "{:?}",
        picks[0].explanation.reasons
    );
    assert_eq!(id_of(&papers, &picks[1]), "2410.18234");
    assert_eq!(picks.len(), 2);
}

#[test]
fn liked_papers_pull_similar_ones_up_and_disliked_ones_push_them_down() {
    let papers = day();
    let index = CandidateIndex::build(&papers).unwrap();
    let liked_paper = papers
        .iter()
        .find(|p| p.id.as_str() == "2410.16251")
        .unwrap();
    let liked_text = format!("{}\n{}", liked_paper.title, liked_paper.abstract_text);
    // Everything that mentions models, unordered by taste.
    let plain = ids(&papers, &index, "models");
    let pos = |v: &[String], id: &str| v.iter().position(|x| x == id);
    // 2410.18860 (DeCoRe, "… to Mitigate Hallucinations") is about hallucinations too; "models"
    // alone ranks it low.
    let like = ProfileSignals {
        liked: vec![liked_text.clone()],
        ..ProfileSignals::default()
    };
    let liked_picks = rank(&papers, &index, Some("models"), &like, Blend::floor(0.0));
    let liked: Vec<String> = liked_picks.iter().map(|p| id_of(&papers, p)).collect();
    assert!(
        pos(&liked, "2410.18860").unwrap() + 10 < pos(&plain, "2410.18860").unwrap(),
        "{liked:?} vs {plain:?}"
    );
    let pick = &liked_picks[pos(&liked, "2410.18860").unwrap()];
    assert!(
        pick.explanation
            .reasons
            .iter()
            .any(|r| r == "like papers you liked"),
        "{:?}",
        pick.explanation.reasons
    );

    let dislike = ProfileSignals {
        disliked: vec![liked_text.clone()],
        ..ProfileSignals::default()
    };
    let disliked: Vec<String> = rank(&papers, &index, Some("models"), &dislike, Blend::floor(0.0))
        .iter()
        .map(|p| id_of(&papers, p))
        .collect();
    // "Should We Really Edit Language Models?" (knowledge editing) leads "models" alone and
    // drops after a "less like this" on the knowledge-editing paper.
    assert_eq!(plain[0], "2410.18785");
    assert!(
        pos(&disliked, "2410.18785").is_none_or(|d| d > 0),
        "{disliked:?} vs {plain:?}"
    );

    // Feedback alone, no query: the papers on editing and hallucinations come first.
    let alone: Vec<String> = rank(&papers, &index, None, &like, Blend::floor(1.0))
        .iter()
        .map(|p| id_of(&papers, p))
        .collect();
    assert!(!alone.is_empty() && alone.len() < papers.len(), "{alone:?}");
    let top: Vec<&str> = alone.iter().take(4).map(String::as_str).collect();
    assert!(
        top.contains(&"2410.18785") && top.contains(&"2410.18860"),
        "{alone:?}"
    );
}

#[test]
fn trending_only_and_the_bounded_trending_boost() {
    let papers = day();
    let index = CandidateIndex::build(&papers).unwrap();
    let picks = rank(
        &papers,
        &index,
        Some(TRENDING_ONLY),
        &ProfileSignals::default(),
        Blend::floor(1.0),
    );
    let top: Vec<String> = picks.iter().take(3).map(|p| id_of(&papers, p)).collect();
    assert_eq!(top, vec!["2410.17243", "2410.16251", "2410.18533"]);
    assert_eq!(picks.len(), 29, "every paper has upvotes that day");
    assert!(
        picks[0]
            .explanation
            .reasons
            .contains(&"trending: 64 upvotes on Hugging Face".to_string()),
        "{:?}",
        picks[0].explanation.reasons
    );
    assert!(check(TRENDING_ONLY).is_ok());

    // The boost reorders matches but never adds a paper that does not match.
    let plain = rank(
        &papers,
        &index,
        Some("language models"),
        &ProfileSignals::default(),
        Blend::floor(1.0),
    );
    let boosted = rank(
        &papers,
        &index,
        Some("language models"),
        &ProfileSignals::default(),
        Blend {
            trending_weight: 5.0,
            ..Blend::floor(1.0)
        },
    );
    let set = |v: &[Pick]| {
        let mut s: Vec<usize> = v.iter().map(|p| p.index).collect();
        s.sort();
        s
    };
    assert_eq!(set(&plain), set(&boosted));
    let score_of = |v: &[Pick], i: usize| v.iter().find(|p| p.index == i).unwrap().score;
    for p in &plain {
        let extra = score_of(&boosted, p.index) - p.score;
        assert!(
            (0.0..=5.0 + 1e-4).contains(&extra),
            "bounded by the weight: {extra}"
        );
    }
}

#[test]
fn the_floor_removes_weak_matches_and_explanations_name_the_words() {
    let papers = day();
    let index = CandidateIndex::build(&papers).unwrap();
    let all = rank(
        &papers,
        &index,
        Some("memory contrastive"),
        &ProfileSignals::default(),
        Blend::floor(0.0),
    );
    assert!(all.len() >= 2);
    let floor = (all[0].score + all[all.len() - 1].score) / 2.0;
    let kept = rank(
        &papers,
        &index,
        Some("memory contrastive"),
        &ProfileSignals::default(),
        Blend::floor(floor),
    );
    assert!(!kept.is_empty() && kept.len() < all.len());
    assert!(kept.iter().all(|p| p.score >= floor));
    assert_eq!(id_of(&papers, &kept[0]), "2410.17243");
    let e = &kept[0].explanation;
    assert!(e.reasons[0].starts_with("matches your interests:"), "{e:?}");
    assert!(e.matched.iter().any(|m| m.contains("contrastive")), "{e:?}");
    assert!(
        e.snippet
            .iter()
            .any(|f| f.highlighted && f.text.to_lowercase().contains("memory")),
        "{e:?}"
    );
    // Nothing matches: nothing is picked, whatever the day holds.
    assert!(
        rank(
            &papers,
            &index,
            Some("\"quantum chromodynamics\""),
            &ProfileSignals::default(),
            Blend::floor(0.0)
        )
        .is_empty()
    );
}

/// The syntax check the CLI, CSV import and the web forms run, on text within the limits.
fn check(text: &str) -> Result<(), InterestsSyntaxError> {
    check_interests(&Interests::parse(text).expect("within the limits"))
}

#[test]
fn invalid_queries_are_refused_with_the_position_and_a_hint() {
    let e = check("diffusion \"protein folding").unwrap_err();
    assert_eq!(e.position, Some(11));
    assert!(e.problem.contains("character 11"), "{e}");
    assert!(e.hint.contains('"'), "{e}");

    let e = check("(diffusion OR flow protein").unwrap_err();
    assert_eq!(e.position, Some(1));
    assert!(e.problem.contains("never closed"), "{e}");

    let e = check("diffusion) models").unwrap_err();
    assert_eq!(e.position, Some(10));

    let e = check("diffusion venue:neurips").unwrap_err();
    assert_eq!(e.position, Some(11));
    assert!(e.problem.contains("venue"), "{e}");
    assert!(e.hint.contains("author:"), "{e}");

    let e = check("-video").unwrap_err();
    assert!(e.hint.contains("diffusion -video"), "{e}");

    // A quote inside a phrase's parentheses does not confuse the scan.
    assert!(check("\"(a)\" (b OR c)").is_ok());
}

/// Interests for the preview-equals-digest test: trending only, a phrase, exclusions, grouping,
/// one word, and plain words, most of which the trending boost or the loose phrase reorder
/// (`LIVE_PREVIEW_TRENDING` names those where trending alone changes the order).
const LIVE_PREVIEW_INTERESTS: [&str; 12] = [
    TRENDING_ONLY,
    "\"language models\"",
    "hallucination -editing",
    "hallucination NOT editing",
    "(reward OR preference) AND alignment",
    "diffusion",
    "video generation",
    "language models",
    "memory contrastive",
    "mathematical reasoning",
    "knowledge editing",
    "code generation",
];
const LIVE_PREVIEW_TRENDING: [&str; 5] = [
    "video generation",
    "language models",
    "memory contrastive",
    "knowledge editing",
    "code generation",
];

/// The fixture paper ids of `titles`, in their order; a title that is no fixture paper fails.
#[track_caller]
fn ids_of_titles(titles: &[String], day: &[crate::common::FixturePaper]) -> Vec<String> {
    titles
        .iter()
        .map(|t| {
            let t = crate::common::normalize_ws(t);
            day.iter()
                .find(|p| p.title == t)
                .unwrap_or_else(|| panic!("{t:?} is not a paper of the day"))
                .id
                .clone()
        })
        .collect()
}

/// The titles a preview fragment lists, in order, as text.
fn preview_titles(html: &str) -> Vec<String> {
    html.split("<p class=\"title\">")
        .skip(1)
        .map(|part| {
            let inner = part.split("</p>").next().unwrap_or("");
            // Drop the link's tags, keep its text.
            let mut text = String::new();
            let mut in_tag = false;
            for c in inner.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#x27;", "'")
                .replace("&#x2F;", "/")
                .replace("&amp;", "&")
        })
        .collect()
}

/// The papers of the day a digest's text part lists, best first (by where each title stands).
fn digest_ids(text: &str, day: &[crate::common::FixturePaper]) -> Vec<String> {
    let text = crate::common::normalize_ws(text);
    let mut found: Vec<(usize, String)> = day
        .iter()
        .filter_map(|p| text.find(&p.title).map(|at| (at, p.id.clone())))
        .collect();
    found.sort();
    found.into_iter().map(|(_, id)| id).collect()
}

/// For someone with only these interests (no profile, no votes, nothing sent yet), the sign-up
/// page's live preview shows the papers, in the order, of `paperboy preview` and of the digest
/// then sent, on the real Hugging Face day of 2024-10-25. A subscriber whose digest is shorter
/// than `digest.max_papers` sees their own digest on their manage page, with and without the
/// page's script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_preview_is_the_digest() {
    use crate::common::*;
    const DAY: &str = "2024-10-25";
    const FETCH: &str = "2024-10-25T06:00:00Z";
    const SEND: &str = "2024-10-25T09:00:00Z";
    let day = hf_fixture_papers(HF_DAY_2024_10_25);
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).file_transport().build();
    crate::web_common::fetch_fixture_day(&app, DAY, FETCH);

    // The test means something only if trending reorders these interests' papers: ranked by
    // relevance alone, with the test's floor and digest size, their order differs.
    let settings = paperboy::config::Settings::load_with_env(Some(&app.config_path), Vec::new())
        .expect("the test's settings load");
    let m = &settings.matching;
    assert!(m.trending_weight > 0.0);
    let papers = self::day();
    let index = CandidateIndex::build(&papers).unwrap();
    let max = settings.digest.max_papers.get() as usize;
    for interests in LIVE_PREVIEW_TRENDING {
        let profile = index
            .profile(Some(interests), &ProfileSignals::default())
            .unwrap();
        let order = |blend: &Blend| -> Vec<usize> {
            let picks = index.rank_profile(&profile, blend, |_| true, max).unwrap();
            picks.iter().map(|p| p.index).collect()
        };
        let blended = Blend {
            trending_weight: m.trending_weight,
            ..Blend::floor(m.min_score)
        };
        assert_ne!(
            order(&blended),
            order(&Blend::floor(m.min_score)),
            "{interests}: trending does not change the order"
        );
    }

    let email = |i: usize| format!("reader{i}@example.org");
    let mut cli = Vec::new();
    for (i, interests) in LIVE_PREVIEW_INTERESTS.iter().enumerate() {
        app.add_confirmed_subscriber(SEND, &email(i), interests);
        let out = app
            .paperboy(["preview", &email(i), "--format", "json"])
            .at(SEND)
            .run();
        out.assert_success();
        let titles: Vec<String> = out.json()["papers"]
            .as_array()
            .expect("papers")
            .iter()
            .map(|p| p["title"].as_str().expect("title").to_string())
            .collect();
        cli.push(ids_of_titles(&titles, &day));
    }

    const SHORT: &str = "short@example.org";
    const SHORT_INTERESTS: &str = "language models";
    const SHORT_MAX: usize = 3;
    app.paperboy([
        "subscriber",
        "add",
        SHORT,
        "--interests",
        SHORT_INTERESTS,
        "--max-papers",
        &SHORT_MAX.to_string(),
        "--confirmed",
    ])
    .at(SEND)
    .run()
    .assert_success();

    app.paperboy(["send", "--now"])
        .at(SEND)
        .run()
        .assert_success();
    let outbox = app.outbox_messages();
    let sent: Vec<Vec<String>> = (0..LIVE_PREVIEW_INTERESTS.len())
        .map(|i| {
            let mail = outbox
                .iter()
                .find(|m| m.envelope_to == [email(i)])
                .unwrap_or_else(|| panic!("no digest to {}", email(i)));
            digest_ids(&mail.text_body().expect("a text part"), &day)
        })
        .collect();

    // What the preview says above its list: how many the digest holds, out of how many
    // candidates (not "matches": a full digest may have left matches out).
    let said = |n: usize, max: usize| {
        format!(
            "Your digest would have held these {n} of the {} papers first seen in the last {} \
             days, best first{}:",
            day.len(),
            settings.digest.max_age_days,
            if n == max {
                format!(" (a digest holds at most {max})")
            } else {
                String::new()
            }
        )
    };

    let daemon = crate::web_common::WebDaemon::start(&app, SEND, &[]);
    let client = crate::web_common::client();
    for (i, interests) in LIVE_PREVIEW_INTERESTS.iter().enumerate() {
        let url = daemon.url(&format!(
            "/preview?interests={}",
            crate::web_common::encode(interests)
        ));
        let page = crate::web_common::get(&client, &url).await;
        assert_eq!(page.status, 200, "{interests}: {}", page.body);
        let live = ids_of_titles(&preview_titles(&page.body), &day);
        assert!(!sent[i].is_empty(), "{interests}: the digest is empty");
        assert_eq!(
            cli[i], sent[i],
            "{interests}: `paperboy preview` vs the digest"
        );
        assert_eq!(live, sent[i], "{interests}: the live preview vs the digest");
        if live.len() > 1 {
            assert!(
                page.body.contains(&said(live.len(), max)),
                "{interests}: {}",
                page.body
            );
        }
    }
    assert!(
        sent.iter().any(|s| s.len() == max) && sent.iter().any(|s| (2..max).contains(&s.len())),
        "the wording is checked for a full digest and for one with room left"
    );

    let short_mail = outbox
        .iter()
        .find(|m| m.envelope_to == [SHORT])
        .expect("a digest to the subscriber of a short digest");
    let short = digest_ids(&short_mail.text_body().expect("a text part"), &day);
    assert_eq!(
        short.len(),
        SHORT_MAX,
        "the short digest is cut at its size"
    );
    let long = LIVE_PREVIEW_INTERESTS
        .iter()
        .position(|i| *i == SHORT_INTERESTS)
        .expect("the short digest's interests are among the others");
    assert!(
        sent[long].len() > SHORT_MAX,
        "the same interests with the default size give more papers: {:?}",
        sent[long]
    );
    let manage = daemon.local(&crate::web_common::link_to(short_mail, "manage"));
    let page = crate::web_common::get(&client, &manage).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        ids_of_titles(&preview_titles(&page.body), &day),
        short,
        "the manage page's preview vs that subscriber's digest"
    );
    // The page's script sends the form's size along.
    let url = daemon.url(&format!(
        "/preview?interests={}&max_papers={SHORT_MAX}",
        crate::web_common::encode(SHORT_INTERESTS)
    ));
    let live = crate::web_common::get(&client, &url).await;
    assert_eq!(
        ids_of_titles(&preview_titles(&live.body), &day),
        short,
        "the live preview of that size vs that subscriber's digest"
    );
    assert!(
        live.body.contains(&said(SHORT_MAX, SHORT_MAX)),
        "{}",
        live.body
    );
}
