//! Unit tests of the matcher's internals (the integration tests are `tests/matching_*.rs`).

use super::analysis::english_analyzer;
use super::explain::{best_passage, trim_to_chars, without_repeats};
use super::*;
use crate::model::{Interests, Paper, PaperId, PaperLinks};
use tantivy::snippet::SnippetGenerator;

fn paper(id: &str, title: &str, abs: &str) -> Paper {
    Paper {
        id: PaperId::parse_arxiv(id).unwrap(),
        title: title.into(),
        abstract_text: abs.into(),
        authors: vec!["Ada Lovelace".into()],
        categories: vec![],
        published_at: None,
        upvotes: None,
        links: PaperLinks::default(),
        arxiv: Default::default(),
    }
}

fn corpus() -> Vec<Paper> {
    vec![
        paper(
            "2401.00001",
            "Diffusion models for protein folding",
            "We fold proteins with denoising diffusion.",
        ),
        paper(
            "2401.00002",
            "A survey of graph neural networks",
            "Graphs are everywhere; we survey message passing.",
        ),
        paper(
            "2401.00003",
            "Scaling contrastive losses",
            "Contrastive learning needs large batches and much memory.",
        ),
        paper(
            "2401.00004",
            "Protein language models",
            "Language models read protein sequences; folding is not covered.",
        ),
    ]
}

/// The picks for `interests` alone (no profile, no trending) among the papers `allowed` accepts,
/// ranked as planning ranks them: at most `max`, none below `min_score`.
fn rank(
    idx: &CandidateIndex,
    interests: &str,
    allowed: impl Fn(usize) -> bool,
    max: usize,
    min_score: f32,
) -> Vec<Pick> {
    let profile = idx
        .profile(Some(interests), &ProfileSignals::default())
        .unwrap();
    idx.rank_profile(&profile, &Blend::floor(min_score), allowed, max)
        .unwrap()
}

/// Real abstracts: the Hugging Face daily papers fixture.
fn fixture_papers() -> Vec<Paper> {
    let raw = include_str!("../../tests/fixtures/hf/daily_papers_2024-10-25.json");
    let items: Vec<serde_json::Value> = serde_json::from_str(raw).unwrap();
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            paper(
                &format!("2410.{:05}", 19000 + i),
                item["paper"]["title"].as_str().unwrap(),
                item["paper"]["summary"].as_str().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_passages_are_tantivys() {
    let papers = fixture_papers();
    assert!(
        papers.len() >= 10,
        "the fixture has {} papers",
        papers.len()
    );
    let idx = CandidateIndex::build(&papers).unwrap();
    let mut compared = 0;
    let mut highlighted = 0;
    for (k, p) in papers.iter().enumerate() {
        // Queries of words from this abstract (near its start, middle and end) and from
        // the next paper's, so some fragments score and some do not.
        let words: Vec<&str> = p
            .abstract_text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 3)
            .collect();
        let other: Vec<&str> = papers[(k + 1) % papers.len()]
            .abstract_text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 5)
            .collect();
        let n = words.len();
        for query in [
            format!("{} {}", words[n / 2], other[0]),
            format!("{} {} {}", words[1], words[n - 2], other[other.len() / 2]),
            format!("\"{} {}\" {}", words[n / 3], words[n / 3 + 1], words[n - 1]),
            other[1].to_string(),
        ] {
            let q = idx.parse_interests(&query).unwrap();
            let (field, terms) = idx.snippet_terms(q.as_ref()).unwrap();
            let weights = terms
                .iter()
                .map(|(t, w)| (t.value().as_str().unwrap().to_string(), *w))
                .collect();
            // What tantivy does on its own: analyse the whole abstract and cut it.
            let full = SnippetGenerator::new(weights, english_analyzer(), field, SNIPPET_CHARS);
            let b = full.snippet(&idx.papers[k].abstract_text);
            let ours = best_passage(&idx.papers[k], &idx.snippet_weights(q.as_ref()).unwrap());
            match ours {
                Some((passage, marks)) => {
                    assert_eq!(passage, b.fragment_range(), "query {query:?} on paper {k}");
                    let theirs: Vec<_> = b
                        .highlighted()
                        .iter()
                        .map(|r| r.start + passage.start..r.end + passage.start)
                        .collect();
                    assert_eq!(marks, theirs, "query {query:?} on paper {k}");
                }
                None => assert!(b.fragment().is_empty(), "query {query:?} on paper {k}"),
            }
            compared += 1;
            highlighted += usize::from(!b.highlighted().is_empty());
        }
    }
    // The comparison means something only if most snippets highlight words.
    assert!(highlighted * 2 > compared, "{highlighted} of {compared}");
}

#[test]
fn stored_explanations_give_back_the_same_snippets() {
    let papers = fixture_papers();
    let idx = CandidateIndex::build(&papers).unwrap();
    let mut spans = 0;
    for query in [
        "attention",
        "\"language models\" reasoning",
        "diffusion OR video",
        "title:agent",
    ] {
        for pick in rank(&idx, query, |_| true, 10, 0.0) {
            let e = &pick.explanation;
            let abstract_text = &papers[pick.index].abstract_text;
            let json = e.to_stored_json();
            let back = Explanation::from_stored_json(&json, abstract_text);
            assert_eq!(&back, e, "{query:?}: {json}");
            if e.span.is_some() {
                spans += 1;
                assert!(e.snippet.iter().any(|f| f.highlighted), "{e:?}");
                // The passage's text is not stored, only where it is.
                let passage = e
                    .snippet
                    .iter()
                    .find(|f| !f.highlighted && f.text.len() > 20);
                if let Some(p) = passage {
                    assert!(!json.contains(p.text.trim()), "{json}");
                }
            }
        }
    }
    assert!(spans >= 5, "{spans} snippets with spans");
}

#[test]
fn stored_explanations_survive_a_changed_abstract_and_old_rows() {
    let papers = fixture_papers();
    let idx = CandidateIndex::build(&papers).unwrap();
    let q = "attention";
    let pick = rank(&idx, q, |_| true, 1, 0.0).remove(0);
    let json = pick.explanation.to_stored_json();
    // A new version of the abstract: the opening, unhighlighted, and the reasons kept.
    let changed = format!("{} Revised.", papers[pick.index].abstract_text);
    let e = Explanation::from_stored_json(&json, &changed);
    assert_eq!(e.reasons, pick.explanation.reasons);
    assert_eq!(e.snippet.len(), 1);
    assert!(!e.snippet[0].highlighted);
    assert_eq!(e.span, None, "no span for a snippet it does not describe");
    assert!(changed.starts_with(e.snippet[0].text.trim_end_matches(" …")));
    // A row planned before spans existed keeps its snippet text.
    let old = r#"{"matched":["x"],"reasons":["r"],"snippet":[{"text":"kept","highlighted":true}]}"#;
    let e = Explanation::from_stored_json(old, "anything");
    assert_eq!(e.snippet[0].text, "kept");
    assert!(e.snippet[0].highlighted);
    // Unreadable JSON: the opening, no reasons, no panic.
    let e = Explanation::from_stored_json("not json", "An abstract.");
    assert!(e.reasons.is_empty());
    assert_eq!(e.snippet[0].text, "An abstract.");
}

#[test]
fn ranks_by_bm25_with_stemming_and_phrases() {
    let papers = corpus();
    let idx = CandidateIndex::build(&papers).unwrap();
    let q = "\"protein folding\"";
    let picks = rank(&idx, q, |_| true, 10, 0.0);
    assert_eq!(picks.len(), 1, "only the paper with the exact phrase");
    assert_eq!(picks[0].index, 0);
    assert!(
        picks[0]
            .explanation
            .matched
            .contains(&"protein folding".to_string())
    );

    // Stemming: "losses" and "loss" are one word; accents fold.
    let q = "contrastive LOSS Mémory";
    let picks = rank(&idx, q, |_| true, 10, 0.0);
    assert_eq!(picks[0].index, 2);
    assert!(picks[0].explanation.reasons[0].contains("contrastive"));
    assert!(
        picks[0]
            .explanation
            .snippet
            .iter()
            .any(|f| f.highlighted && f.text == "memory")
    );

    // Adjacent matched words are one highlight, and one reason.
    let q = "\"contrastive learning\"";
    let picks = rank(&idx, q, |_| true, 10, 0.0);
    let snippet = &picks[0].explanation.snippet;
    assert!(
        snippet
            .iter()
            .any(|f| f.highlighted && f.text == "Contrastive learning"),
        "{snippet:?}"
    );
    assert_eq!(
        picks[0].explanation.matched,
        vec!["contrastive learning".to_string()]
    );
}

#[test]
fn floor_max_and_filter_apply() {
    let papers = corpus();
    let idx = CandidateIndex::build(&papers).unwrap();
    let q = "protein";
    let all = rank(&idx, q, |_| true, 10, 0.0);
    assert_eq!(all.len(), 2);
    assert!(all[0].score >= all[1].score);
    assert_eq!(rank(&idx, q, |_| true, 1, 0.0).len(), 1);
    assert!(rank(&idx, q, |_| true, 10, 1000.0).is_empty());
    let without_first = rank(&idx, q, |i| i != all[0].index, 10, 0.0);
    assert_eq!(without_first.len(), 1);
    assert_ne!(without_first[0].index, all[0].index);
}

#[test]
fn bad_interests_are_explained() {
    let check = |text: &str| check_interests(&Interests::parse(text).unwrap());
    let err = check("\"protein folding").unwrap_err();
    assert!(err.to_string().contains("quote"), "{err}");
    let err = check("venue:neurips").unwrap_err();
    assert!(err.to_string().contains("venue"), "{err}");
    assert!(check("diffusion \"protein folding\"").is_ok());
    assert!(check(" * ").is_ok(), "the trending-only interests");
}

#[test]
fn stop_words_are_left_out_of_explanations_but_phrases_keep_them() {
    let papers = vec![
        paper(
            "2401.00011",
            "Learning in context",
            "Models learn in context from a few examples.",
        ),
        paper(
            "2401.00012",
            "Long context windows",
            "The context window of a model in practice.",
        ),
    ];
    let idx = CandidateIndex::build(&papers).unwrap();
    let q = "\"in-context\"";
    let picks = rank(&idx, q, |_| true, 10, 0.0);
    assert_eq!(
        picks.len(),
        1,
        "the phrase needs \"in\" right before \"context\""
    );
    assert_eq!(picks[0].index, 0);
    // The reason names the meaningful word; the stop word at the phrase's edge is dropped.
    assert_eq!(picks[0].explanation.matched, vec!["context".to_string()]);

    let q = "in window";
    let picks = rank(&idx, q, |_| true, 10, 0.0);
    assert_eq!(picks[0].index, 1);
    assert_eq!(picks[0].explanation.matched, vec!["windows".to_string()]);
    assert!(
        picks[0]
            .explanation
            .snippet
            .iter()
            .all(|f| !(f.highlighted && f.text == "in"))
    );
}

#[test]
fn matched_words_are_not_repeated() {
    let mut analyzer = english_analyzer();
    let v = without_repeats(
        vec![
            "contrastive loss".into(),
            "memory".into(),
            "contrastive".into(),
            "memories".into(),
        ],
        &mut analyzer,
    );
    assert_eq!(
        v,
        vec!["contrastive loss".to_string(), "memory".to_string()]
    );
}

#[test]
fn snippets_are_trimmed_at_word_boundaries() {
    let long = "word ".repeat(200);
    let t = trim_to_chars(&long, 50);
    assert!(t.chars().count() <= 52 && t.ends_with('…'), "{t}");
}
