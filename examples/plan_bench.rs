//! Planning speed: rank one day's candidates for many subscribers, as `jobs::plan` does.
//!
//! What it is for: the figure in BENCHMARKS.md ("Planning speed"). It indexes a document set
//! once (e.g. the 2,000 Inspec abstracts in ../shared/eval/inspec/docs.jsonl, read in place),
//! makes N subscribers whose interests are 1 to 3 of the set's own keyphrases (seeded, so every
//! run ranks the same queries), and for each one parses the interests once and ranks the day
//! with explanations, with the calls planning makes (`CandidateIndex::profile`, then
//! `rank_profile` with the floor and the trending weight, as `jobs::plan::Candidates::digest`
//! does). It prints the index build time, the total and per-subscriber ranking time, the picks
//! made and the peak memory (VmHWM).
//!
//! What it is not for: the database. Reading subscribers and writing deliveries are the
//! store's cost and are not measured here.
//!
//! ```sh
//! cargo run --release --example plan_bench -- ../shared/eval/inspec/docs.jsonl 100000 2
//! ```
//! Arguments: DOCS [SUBSCRIBERS=100000] [THREADS=1] [MIN_SCORE=1.0] [MAX_PAPERS=10]
//! [TRENDING_WEIGHT=1.0]. It names no profile type (the empty profile is `Default::default()`),
//! so the same file runs against versions of the crate whose profile types had other names, for
//! a before/after comparison.

use paperboy::matching::{Blend, CandidateIndex};
use paperboy::model::{Paper, PaperId, PaperLinks};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// The allocator the `paperboy` binary uses, so that the figures are the shipped program's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(serde::Deserialize)]
struct Doc {
    id: String,
    title: String,
    #[serde(rename = "abstract")]
    abstract_text: String,
    #[serde(default)]
    keyphrases: Vec<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!(
            "usage: plan_bench DOCS.jsonl [SUBSCRIBERS] [THREADS] [MIN_SCORE] [MAX_PAPERS] \
             [TRENDING_WEIGHT]"
        );
        std::process::exit(2);
    };
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.to_string());
    let subscribers: usize = arg(1, "100000").parse().expect("SUBSCRIBERS is a number");
    let threads: usize = arg(2, "1").parse().expect("THREADS is a number");
    let min_score: f32 = arg(3, "1.0").parse().expect("MIN_SCORE is a number");
    let max_papers: usize = arg(4, "10").parse().expect("MAX_PAPERS is a number");
    let blend = Blend {
        trending_weight: arg(5, "1.0").parse().expect("TRENDING_WEIGHT is a number"),
        ..Blend::floor(min_score)
    };

    let text = std::fs::read_to_string(path).expect("DOCS can be read");
    let docs: Vec<Doc> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("each line is a JSON document"))
        .collect();
    let mut rng = StdRng::seed_from_u64(20261127);
    let papers: Vec<Paper> = docs
        .iter()
        .map(|d| Paper {
            id: PaperId::from_stored(format!("bench:{}", d.id)),
            title: d.title.clone(),
            abstract_text: d.abstract_text.clone(),
            authors: vec![format!("Author {}", d.id)],
            categories: vec!["cs.LG".to_string()],
            published_at: None,
            upvotes: Some(rng.gen_range(0..200)),
            links: PaperLinks::default(),
            arxiv: Default::default(),
        })
        .collect();
    let phrases: Vec<&str> = docs
        .iter()
        .flat_map(|d| d.keyphrases.iter().map(String::as_str))
        .filter(|p| {
            p.chars()
                .all(|c| c.is_alphanumeric() || c == ' ' || c == '-')
        })
        .collect();
    assert!(
        !phrases.is_empty(),
        "the documents need keyphrases to make interests from"
    );
    let interests: Vec<String> = (0..subscribers)
        .map(|_| {
            let n = rng.gen_range(1..=3);
            (0..n)
                .map(|_| {
                    let p = phrases[rng.gen_range(0..phrases.len())];
                    // A third of the phrases quoted, as people write them.
                    if p.contains(' ') && rng.gen_bool(1.0 / 3.0) {
                        format!("\"{p}\"")
                    } else {
                        p.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();

    let started = Instant::now();
    let index = CandidateIndex::build(&papers).expect("index builds");
    let build = started.elapsed();

    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let chunk = subscribers.div_ceil(threads.max(1)).max(1);
    let picks: usize = std::thread::scope(|s| {
        let handles: Vec<_> = interests
            .chunks(chunk)
            .map(|part| {
                let (index, blend) = (&index, &blend);
                s.spawn(move || {
                    let mut picked = 0;
                    for q in part {
                        let profile = index
                            .profile(Some(q), &Default::default())
                            .expect("interests parse");
                        picked += index
                            .rank_profile(&profile, blend, |_| true, max_papers)
                            .expect("ranking works")
                            .len();
                    }
                    picked
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .sum()
    });
    let ranking = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;

    println!(
        "{} papers indexed in {:.3} s; {subscribers} subscribers on {threads} thread(s): {:.2} s \
         wall, {:.2} s CPU, {:.1} µs CPU per subscriber, {:.2} picks each; peak memory {}",
        papers.len(),
        build.as_secs_f64(),
        ranking.as_secs_f64(),
        cpu,
        cpu * 1e6 / subscribers.max(1) as f64,
        picks as f64 / subscribers.max(1) as f64,
        peak_memory()
    );
}

/// CPU time (user + system) this process has used, from /proc (Linux): on a shared machine it
/// is steadier than wall time, which waits for other processes.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// The process's peak resident set size, from /proc (Linux).
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
