//! Rendering speed: how many digests a second become finished MIME messages, with no database
//! and no network.
//!
//! What it is for: the "render at least 5,000 digests a second" figure in BENCHMARKS.md
//! ("Rendering speed"). It reads a real day of papers (the Hugging Face fixture by default),
//! ranks it for four kinds of interests as `plan` would (so snippets, highlights and reasons are
//! real), and builds a view per subscriber with that subscriber's own signed links. Then, for
//! each subscriber: render subject + text + HTML, build the message with every header
//! (`mail::build_digest_message`) and serialise it to the bytes that go on the wire, once with
//! the renderer `paperboy send` uses and, in the same run, once with the reference renderer
//! (the whole page through tera per digest: what `send` did before the fragment cache).
//!
//! What it is not for: SMTP or the database (`bench/throughput.sh` measures those).
//!
//! ```sh
//! cargo run --release --example render_bench -- [DIGESTS=20000] [FIXTURE]
//! ```

use chrono::{NaiveDate, TimeZone, Utc};
use paperboy::digest::{DigestPaper, DigestRenderer, DigestView};
use paperboy::links::{Claims, Purpose, Signer};
use paperboy::mail::{DigestMessage, build_digest_message};
use paperboy::matching::CandidateIndex;
use paperboy::model::EmailAddress;
use std::time::Instant;

const INTERESTS: [&str; 4] = [
    "\"contrastive loss\" memory \"in-context\" classifiers",
    "diffusion video generation",
    "reinforcement learning agents reasoning",
    "large language models benchmark evaluation",
];

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
    let body = std::fs::read_to_string(&fixture).expect("FIXTURE can be read");
    let (papers, _) = paperboy::sources::hf::parse_daily_papers(&body, 0).expect("fixture parses");
    let index = CandidateIndex::build(&papers).expect("index builds");
    let picks: Vec<Vec<DigestPaper>> = INTERESTS
        .iter()
        .map(|interests| {
            let query = index.parse_interests(interests).expect("interests parse");
            index
                .rank(query.as_ref(), |_| true, 10, 1.0)
                .expect("ranking works")
                .into_iter()
                .enumerate()
                .map(|(i, pick)| {
                    paperboy::jobs::send::digest_paper(
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
        let papers = picks[i % INTERESTS.len()]
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
            interests: INTERESTS[i % INTERESTS.len()].to_string(),
            papers,
            manage_url: signer.url(&base, &claims(Purpose::Manage, None)),
            unsubscribe_url: signer.url(&base, &claims(Purpose::Unsubscribe, None)),
            view_url: Some(signer.url(&base, &claims(Purpose::Digest, Some(i.to_string())))),
            site_url: base.to_string(),
        }
    };

    let renderer = DigestRenderer::new().expect("templates compile");
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
                },
            )
            .expect("message builds");
            bytes += message.formatted().len();
        }
        digests as f64 / start.elapsed().as_secs_f64()
    };
    let reference = pass(true);
    let ours = pass(false);
    println!(
        "{digests} digests ({} papers each at most, mean message {} bytes): \
         reference (tera per digest) {reference:.0} digests/s; paperboy {ours:.0} digests/s \
         (x{:.2})",
        picks.iter().map(Vec::len).max().unwrap_or(0),
        bytes / (2 * digests),
        ours / reference
    );
}
