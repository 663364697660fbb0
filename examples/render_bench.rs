//! Rendering speed: how many digests a second become finished MIME messages, with no database
//! and no network.
//!
//! What it is for: the "render at least 5,000 digests a second" figure in BENCHMARKS.md
//! ("Rendering speed"). It reads a real day of papers (the Hugging Face fixture by default),
//! ranks it for a few hundred different interests as `plan` would (so snippets, highlights,
//! reasons and ranks are real and differ between subscribers, as they do in a real send run),
//! and builds a view per subscriber with that subscriber's own signed links. Then, for
//! each subscriber: render subject + text + HTML, build the message with every header
//! (`mail::build_digest_message`) and serialise it to the bytes that go on the wire, once with
//! the renderer `paperboy send` uses and, in the same run, once with the reference renderer
//! (the whole page through tera per digest: what `send` did before the fragment cache).
//!
//! What it is not for: SMTP or the database (`bench/throughput.sh` measures those).
//!
//! ```sh
//! cargo run --release --example render_bench -- [DIGESTS=20000] [FIXTURE] [INTERESTS=DIGESTS]
//! ```
//!
//! Subscriber `i` has the `i % INTERESTS`th interests. By default every subscriber has their
//! own: with a handful of shared ones, one rendering of each (paper, rank, snippet, reasons)
//! would serve thousands of digests, which a real send run never sees.

use chrono::{NaiveDate, TimeZone, Utc};
use paperboy::digest::{DigestPaper, DigestRenderer, DigestView};
use paperboy::links::{Claims, Purpose, Signer};
use paperboy::mail::{DigestMessage, build_digest_message};
use paperboy::matching::{Blend, CandidateIndex};
use paperboy::model::EmailAddress;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// `count` interests, a few words each from the fixture's abstracts (words that occur in more
/// than one abstract, so that most digests are full), some as a quoted pair; the same every run.
fn interests(papers: &[paperboy::model::Paper], count: usize) -> Vec<String> {
    let mut in_abstracts: std::collections::BTreeMap<String, usize> = Default::default();
    for p in papers {
        let mut words: Vec<String> = p
            .abstract_text
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| w.len() >= 5)
            .map(str::to_ascii_lowercase)
            .collect();
        words.sort();
        words.dedup();
        for w in words {
            *in_abstracts.entry(w).or_default() += 1;
        }
    }
    let words: Vec<String> = in_abstracts
        .into_iter()
        .filter(|(_, n)| *n >= 2)
        .map(|(w, _)| w)
        .collect();
    // Seeded, so every run draws the same inputs.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15_u64);
    let mut next = move |n: usize| rng.gen_range(0..n);
    (0..count)
        .map(|_| {
            let mut terms: Vec<String> = (0..3 + next(4))
                .map(|_| words[next(words.len())].clone())
                .collect();
            if next(4) == 0 {
                let pair = format!("\"{} {}\"", terms[0], words[next(words.len())]);
                terms[0] = pair;
            }
            terms.join(" ")
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let digests: usize = args
        .first()
        .map(|a| a.parse().expect("DIGESTS is a number"))
        .unwrap_or(20_000);
    let fixture = args
        .get(1)
        .cloned()
        .unwrap_or("tests/fixtures/hf/daily_papers_2024-10-25.json".to_string());
    let interest_count: usize = args
        .get(2)
        .map(|a| a.parse().expect("INTERESTS is a number"))
        .unwrap_or(digests)
        .max(1);
    let body = std::fs::read_to_string(&fixture).expect("FIXTURE can be read");
    let (papers, _) = paperboy::sources::hf::parse_daily_papers(&body, 0).expect("fixture parses");
    let index = CandidateIndex::build(&papers).expect("index builds");
    let interests = interests(&papers, interest_count);
    let picks: Vec<Vec<DigestPaper>> = interests
        .iter()
        .map(|interests| {
            // As planning ranks (without its trending boost); `Default` is the empty profile.
            let profile = index
                .profile(Some(interests), &Default::default())
                .expect("interests parse");
            index
                .rank_profile(&profile, &Blend::floor(1.0), |_| true, 10)
                .expect("ranking works")
                .into_iter()
                .enumerate()
                .map(|(i, pick)| {
                    DigestPaper::new(
                        &papers[pick.index],
                        i as u32 + 1,
                        pick.score,
                        pick.explanation,
                    )
                })
                .collect()
        })
        .collect();

    let signer = Signer::new("bench-secret-key-0123456789abcdef0123456789", None);
    let base = url::Url::parse("https://paperboy.example.org").unwrap();
    let from: lettre::message::Mailbox = "Paperboy <digest@paperboy.example.org>".parse().unwrap();
    let date = NaiveDate::from_ymd_opt(2024, 10, 25).unwrap();
    let sent_at = Utc.with_ymd_and_hms(2024, 10, 25, 9, 0, 0).unwrap();
    let view = |i: usize| -> DigestView {
        let claims = |purpose, extra: Option<String>| Claims {
            purpose,
            subscriber_id: i as i64 + 1,
            token_version: 0,
            expires_at: None,
            extra,
        };
        let papers = picks[i % interest_count]
            .iter()
            .cloned()
            .map(|mut p| {
                let url = signer.url(&base, &claims(Purpose::Feedback, Some(p.id.clone())));
                p.more_url = Some(format!("{url}?vote=more"));
                p.less_url = Some(format!("{url}?vote=less"));
                p
            })
            .collect();
        DigestView {
            date,
            recipient: format!("reader{i:06}@example.net"),
            interests: interests[i % interest_count].clone(),
            papers,
            manage_url: signer.url(&base, &claims(Purpose::Manage, None)),
            unsubscribe_url: signer.url(&base, &claims(Purpose::Unsubscribe, None)),
            view_url: Some(signer.url(&base, &claims(Purpose::Digest, Some(i.to_string())))),
            site_url: base.to_string(),
        }
    };

    let renderer = DigestRenderer::new().expect("templates compile");
    // The fast renderer is only worth timing if it says the same as the reference.
    for i in 0..digests.min(500) {
        let (fast, reference) = (
            renderer.render(&view(i)).expect("renders"),
            renderer.render_reference(&view(i)).expect("renders"),
        );
        assert!(
            fast.html == reference.html && fast.text == reference.text,
            "digest {i}: the card cache and the reference renderer differ"
        );
    }
    let mut bytes = 0usize;
    // One pass: views are built inside the timed loop in both passes (signing is part of the
    // send path), so the two figures differ only in the renderer.
    let mut pass = |reference: bool| -> f64 {
        let start = Instant::now();
        for i in 0..digests {
            let view = view(i);
            let rendered = if reference {
                renderer.render_reference(&view)
            } else {
                renderer.render(&view)
            }
            .expect("renders");
            let message = build_digest_message(
                &from,
                &DigestMessage {
                    to: EmailAddress::parse(&view.recipient).unwrap(),
                    message_key: format!("digest.2024-10-25.{i}"),
                    subject: rendered.subject,
                    text: rendered.text,
                    html: rendered.html,
                    unsubscribe_url: view.unsubscribe_url.clone(),
                    date: sent_at,
                    envelope_from: None,
                },
            )
            .expect("message builds");
            bytes += message.formatted().len();
        }
        digests as f64 / start.elapsed().as_secs_f64()
    };
    let reference = pass(true);
    let ours = pass(false);
    // What the card cache of the old design keyed on, besides the paper itself.
    let distinct_cards: std::collections::HashSet<_> = picks
        .iter()
        .flatten()
        .map(|p| {
            let snippet: Vec<(&str, bool)> = p
                .snippet
                .iter()
                .map(|s| (s.text.as_str(), s.highlighted))
                .collect();
            (p.id.as_str(), p.rank, snippet, &p.reasons)
        })
        .collect();
    println!(
        "{digests} digests ({interest_count} interests, {} papers each at most, {:.1} on average, \
         {} distinct (paper, rank, snippet, reasons), mean message {} bytes): \
         reference (tera per digest) {reference:.0} digests/s; paperboy {ours:.0} digests/s \
         (x{:.2})",
        picks.iter().map(Vec::len).max().unwrap_or(0),
        picks.iter().map(Vec::len).sum::<usize>() as f64 / picks.len() as f64,
        distinct_cards.len(),
        bytes / (2 * digests),
        ours / reference
    );
}
