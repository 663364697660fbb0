//! `paperboy eval`: ranking quality on a labelled set, printed as a table or JSON.

use paperboy::config::Settings;
use std::process::ExitCode;

use super::progress::progress;
use super::shared::TableFormat;

/// `paperboy eval`: the matcher and the baseline on one labelled set, with the configured
/// floor (`matching.min_score`) and digest size (`digest.max_papers`).
pub fn run(
    settings: &Settings,
    docs: &std::path::Path,
    qrels: &std::path::Path,
    format: TableFormat,
) -> anyhow::Result<ExitCode> {
    let documents = paperboy::eval::load_docs(docs)?;
    let judgements = paperboy::eval::load_qrels(qrels)?;
    let started = std::time::Instant::now();
    // Every document and every distinct clause of the queries is embedded first.
    let bar = progress(
        (documents.len() + judgements.len()) as u64,
        "embedding the documents and queries",
    );
    let report = paperboy::eval::evaluate(
        &documents,
        &judgements,
        settings.matching.min_score,
        settings.matching.min_closeness,
        settings.digest.max_papers.get() as usize,
        &|n| bar.inc(n as u64),
    )?;
    bar.finish();
    match format {
        TableFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        TableFormat::Table => {
            println!(
                "{} documents, {} queries; sent = above matching.min_score {} (words) or \
                 closeness {} (meaning), at most {} papers",
                report.documents,
                report.queries,
                report.min_score,
                report.min_closeness,
                report.max_papers
            );
            let mut header = format!("{:<28}", "");
            for s in &report.systems {
                header.push_str(&format!(" {:>15}", s.name));
            }
            header.push_str(&format!(" {:>15}", "baseline BM25"));
            println!("{header}");
            type Row = (&'static str, fn(&paperboy::eval::Metrics) -> f64);
            let rows: [Row; 7] = [
                ("nDCG@10", |m| m.ndcg_at_10),
                ("precision@10", |m| m.precision_at_10),
                ("recall@50", |m| m.recall_at_50),
                ("F1 of the set sent", |m| m.sent_f1),
                ("precision of the set sent", |m| m.sent_precision),
                ("recall of the set sent", |m| m.sent_recall),
                ("papers sent per query", |m| m.sent_mean),
            ];
            for (name, get) in rows {
                let mut line = format!("{name:<28}");
                for s in &report.systems {
                    line.push_str(&format!(" {:>15.4}", get(&s.metrics)));
                }
                line.push_str(&format!(" {:>15.4}", get(&report.baseline)));
                println!("{line}");
            }
            let mut line = format!("{:<28}", "queries sending nothing");
            for s in &report.systems {
                line.push_str(&format!(" {:>15}", s.metrics.empty_digests));
            }
            line.push_str(&format!(" {:>15}", report.baseline.empty_digests));
            println!("{line}");
            if !report.unparsed.is_empty() {
                println!("queries paperboy could not parse: {:?}", report.unparsed);
            }
            println!(
                "(digests use {:?}; baseline: BM25 over title + abstract, no stemming, no \
                 phrases, words OR'd)",
                paperboy::matching::Fusion::CHOSEN
            );
            println!(
                "\nmore like these: {} keyphrases, 3 of their papers given as liked examples, \
                 the rest hidden among all documents",
                report.like_these.keyphrases
            );
            println!("{:<28} {:>12} {:>8}", "", "recall@10", "MRR");
            for s in &report.like_these.systems {
                println!("{:<28} {:>12.4} {:>8.4}", s.name, s.recall_at_10, s.mrr);
            }
            println!(
                "took {:.2} s, of which {:.2} s embedding",
                started.elapsed().as_secs_f64(),
                report.embed_seconds
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
