//! `paperboy eval`: ranking quality on a labelled set, printed as a table or JSON.

use paperboy::config::Settings;
use std::process::ExitCode;

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
    let report = paperboy::eval::evaluate(
        &documents,
        &judgements,
        settings.matching.min_score,
        settings.digest.max_papers.get() as usize,
    )?;
    match format {
        TableFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        TableFormat::Table => {
            println!(
                "{} documents, {} queries; sent = above matching.min_score {} and at most {} papers",
                report.documents, report.queries, report.min_score, report.max_papers
            );
            println!("{:<28} {:>9} {:>9}", "", "paperboy", "baseline");
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
                println!(
                    "{name:<28} {:>9.4} {:>9.4}",
                    get(&report.ours),
                    get(&report.baseline)
                );
            }
            println!(
                "{:<28} {:>9} {:>9}",
                "queries sending nothing", report.ours.empty_digests, report.baseline.empty_digests
            );
            if !report.unparsed.is_empty() {
                println!("queries paperboy could not parse: {:?}", report.unparsed);
            }
            println!("(baseline: BM25 over title + abstract, no stemming, no phrases, words OR'd)");
            println!("took {:.2} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(ExitCode::SUCCESS)
}
