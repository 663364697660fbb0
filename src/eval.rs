//! Ranking quality, measured: `paperboy eval --docs FILE --qrels FILE`.
//!
//! What it is for: index a labelled document set as one day's papers, run each labelled query as
//! a subscriber's interests through the real matcher (`matching`), and score the ranked lists
//! against the relevance judgements: nDCG@10, precision@10 and recall@50 over the full ranking,
//! and the F1 of the set a subscriber would actually be sent (after the relevance floor and the
//! cut at `max_papers`). A plain baseline — tantivy's BM25 over title + abstract as one field, no
//! stemming, no phrases, no title boost, every query word OR'd — runs on the same documents in
//! the same run, so the columns are comparable. Each fusion of words and meaning (words alone,
//! meaning alone, weighted sums, reciprocal-rank fusion) is scored in the same run, and a
//! second mode, "more like these", hides a keyphrase's papers behind three liked examples.
//!
//! What it is not for: tuning. The figures come from whatever `matching` and the configuration
//! do; nothing here adjusts per query. It does no network or database I/O, only reads two files
//! (and runs the built-in embedding model on every document).

use crate::embed::{Embedder, Embedding, paper_text};
use crate::matching::{Blend, CandidateIndex, Fusion, ProfileSignals, meaning_clauses};
use crate::model::{Paper, PaperId, PaperLinks, Profile};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, TantivyDocument, doc};

/// How deep the full ranking is scored.
const RANK_DEPTH: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}; check the path")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} line {line}: {problem}; each line must be a JSON object with \"id\", \"title\" and \"abstract\""
    )]
    Doc {
        path: String,
        line: usize,
        problem: String,
    },
    #[error(
        "{path} line {line}: expected `query<TAB>doc_id<TAB>relevance` with a whole-number relevance"
    )]
    Qrel { path: String, line: usize },
    #[error("{0} has no judgements with relevance above 0; nothing to evaluate")]
    NoQueries(String),
    #[error("the search index failed: {0}")]
    Index(String),
}

/// One document of the evaluation set.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalDoc {
    pub id: String,
    pub title: String,
    #[serde(rename = "abstract")]
    pub abstract_text: String,
}

/// Reads a JSON-lines document set: one `{"id", "title", "abstract"}` object a line (other
/// keys are ignored; blank lines skipped).
pub fn load_docs(path: &Path) -> Result<Vec<EvalDoc>, EvalError> {
    let text = read(path)?;
    let mut docs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let doc: EvalDoc = serde_json::from_str(line).map_err(|e| EvalError::Doc {
            path: path.display().to_string(),
            line: n + 1,
            problem: e.to_string(),
        })?;
        docs.push(doc);
    }
    Ok(docs)
}

/// Reads TREC-style judgements as tab-separated `query, doc_id, relevance` (a header line
/// starting with `query` is skipped). Returns, per query, the documents judged relevant (> 0).
pub fn load_qrels(path: &Path) -> Result<BTreeMap<String, HashSet<String>>, EvalError> {
    let text = read(path)?;
    let mut qrels: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (n == 0 && line.starts_with("query\t")) {
            continue;
        }
        let bad = || EvalError::Qrel {
            path: path.display().to_string(),
            line: n + 1,
        };
        // Split from the right: a query may itself hold a stray tab (Inspec has one,
        // "medical image<TAB>processing"); it is read as a space.
        let mut cols = line.rsplitn(3, '\t');
        let (Some(rel), Some(doc), Some(query)) = (cols.next(), cols.next(), cols.next()) else {
            return Err(bad());
        };
        let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let rel: i64 = rel.trim().parse().map_err(|_| bad())?;
        if rel > 0 {
            qrels
                .entry(query)
                .or_default()
                .insert(doc.trim().to_string());
        }
    }
    if qrels.is_empty() {
        return Err(EvalError::NoQueries(path.display().to_string()));
    }
    Ok(qrels)
}

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Mean figures of one system over all queries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    pub ndcg_at_10: f64,
    pub precision_at_10: f64,
    pub recall_at_50: f64,
    /// F1 of the set sent (above the floor, at most `max_papers`) against the relevant set.
    pub sent_f1: f64,
    pub sent_precision: f64,
    pub sent_recall: f64,
    /// Papers sent per query, on average.
    pub sent_mean: f64,
    /// Queries for which nothing at all would be sent.
    pub empty_digests: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub documents: usize,
    pub queries: usize,
    /// Queries the matcher refused to parse (scored as finding nothing).
    pub unparsed: Vec<String>,
    pub min_score: f32,
    pub min_closeness: f32,
    pub max_papers: usize,
    /// What planning uses ([`Fusion::CHOSEN`]).
    pub ours: Metrics,
    pub baseline: Metrics,
    /// Every way of ranking compared, words alone and meaning alone first.
    pub systems: Vec<System>,
    /// "More like these": papers found from liked examples alone.
    pub like_these: LikeThese,
    /// Seconds spent computing the documents' and queries' vectors.
    pub embed_seconds: f64,
}

/// One way of ranking and its figures.
#[derive(Debug, Clone, Serialize)]
pub struct System {
    pub name: String,
    pub metrics: Metrics,
}

/// The "more like these" mode: for each keyphrase with at least four papers, three of them are
/// given as liked examples (no interests), the rest are hidden among all the documents; how
/// well each system finds the hidden ones.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LikeThese {
    pub keyphrases: usize,
    pub systems: Vec<LikeSystem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LikeSystem {
    pub name: String,
    /// Share of the hidden papers in the first ten, averaged over keyphrases.
    pub recall_at_10: f64,
    /// Mean reciprocal rank of the first hidden paper (0 when none is in the first 50).
    pub mrr: f64,
}

/// Examples given per keyphrase in the "more like these" mode.
const LIKED_EXAMPLES: usize = 3;

/// The fusions compared, by name; the planner's is [`Fusion::CHOSEN`].
fn systems() -> Vec<(String, Fusion)> {
    vec![
        ("words".into(), Fusion::Words),
        ("meaning".into(), Fusion::Meaning),
        ("hybrid 0.3".into(), Fusion::Weighted(0.3)),
        ("hybrid 0.4".into(), Fusion::Weighted(0.4)),
        ("hybrid 0.5".into(), Fusion::Weighted(0.5)),
        ("hybrid 0.7".into(), Fusion::Weighted(0.7)),
        ("reciprocal rank".into(), Fusion::ReciprocalRank),
    ]
}

/// One system's answers to one query: the full ranking (best first, at most [`RANK_DEPTH`])
/// and the set that would be sent.
struct Answer {
    ranked: Vec<String>,
    sent: Vec<String>,
}

/// Runs every query through paperboy's matcher, each fusion of words and meaning, and the
/// baseline. `embedded(n)` is told of each batch of texts embedded (a progress bar).
pub fn evaluate(
    docs: &[EvalDoc],
    qrels: &BTreeMap<String, HashSet<String>>,
    min_score: f32,
    min_closeness: f32,
    max_papers: usize,
    embedded: &(dyn Fn(usize) + Sync),
) -> Result<EvalReport, EvalError> {
    let papers: Vec<Paper> = docs.iter().map(as_paper).collect();
    let started = std::time::Instant::now();
    let model = Embedder::shared().map_err(|e| EvalError::Index(e.to_string()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let texts: Vec<String> = docs
        .iter()
        .map(|d| paper_text(&d.title, &d.abstract_text))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = model
        .embed_parallel(&refs, cores, |n| {
            embedded(n);
            true
        })
        .map_err(|e| EvalError::Index(e.to_string()))?;
    let mut clauses: Vec<String> = qrels.keys().flat_map(|q| meaning_clauses(q)).collect();
    clauses.sort_unstable();
    clauses.dedup();
    let clause_refs: Vec<&str> = clauses.iter().map(String::as_str).collect();
    let clause_vectors: HashMap<String, Embedding> = clauses
        .iter()
        .cloned()
        .zip(
            model
                .embed_parallel(&clause_refs, cores, |n| {
                    embedded(n);
                    true
                })
                .map_err(|e| EvalError::Index(e.to_string()))?,
        )
        .collect();
    let embed_seconds = started.elapsed().as_secs_f64();
    let ours = CandidateIndex::build(&papers)
        .map_err(|e| EvalError::Index(e.to_string()))?
        .with_vectors(vectors.iter().cloned().map(Some).collect());
    let baseline = Baseline::build(docs)?;
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    let rank_err = |e: crate::matching::MatchError| EvalError::Index(e.to_string());

    let systems = systems();
    let mut sums: Vec<Sums> = systems.iter().map(|_| Sums::default()).collect();
    let mut base_sum = Sums::default();
    let mut unparsed = Vec::new();
    for (query, relevant) in qrels {
        let mut signals = ProfileSignals::default();
        signals.meaning.clauses = meaning_clauses(query)
            .into_iter()
            .filter_map(|c| clause_vectors.get(&c).map(|v| (c, v.clone())))
            .collect();
        match ours.profile(Some(query), &signals) {
            Ok(profile) => {
                for ((_, fusion), sum) in systems.iter().zip(&mut sums) {
                    let full = ours
                        .rank_profile(&profile, &whole_ranking(*fusion), |_| true, RANK_DEPTH)
                        .map_err(rank_err)?;
                    let blend = Blend {
                        fusion: *fusion,
                        meaning_floor: min_closeness,
                        ..Blend::floor(min_score)
                    };
                    let sent = ours
                        .rank_profile(&profile, &blend, |_| true, max_papers)
                        .map_err(rank_err)?;
                    let answer = Answer {
                        ranked: full.iter().map(|p| ids[p.index].to_string()).collect(),
                        sent: sent.iter().map(|p| ids[p.index].to_string()).collect(),
                    };
                    sum.add(&answer, relevant);
                }
            }
            Err(_) => {
                unparsed.push(query.clone());
                let nothing = Answer {
                    ranked: Vec::new(),
                    sent: Vec::new(),
                };
                for sum in &mut sums {
                    sum.add(&nothing, relevant);
                }
            }
        }
        base_sum.add(&baseline.answer(query, min_score, max_papers)?, relevant);
    }
    let like_these = like_these(&ours, &papers, &vectors, qrels, &ids)?;
    let chosen = systems
        .iter()
        .position(|(_, f)| *f == Fusion::CHOSEN)
        .unwrap_or(0);
    Ok(EvalReport {
        documents: docs.len(),
        queries: qrels.len(),
        unparsed,
        min_score,
        min_closeness,
        max_papers,
        ours: sums[chosen].mean(),
        baseline: base_sum.mean(),
        systems: systems
            .into_iter()
            .zip(&sums)
            .map(|((name, _), s)| System {
                name,
                metrics: s.mean(),
            })
            .collect(),
        like_these,
        embed_seconds,
    })
}

/// The whole ranking a fusion gives, for nDCG and recall: no floor on either signal.
fn whole_ranking(fusion: Fusion) -> Blend {
    Blend {
        meaning_floor: -1.0,
        meaning_standout: f32::NEG_INFINITY,
        fusion,
        ..Blend::floor(0.0)
    }
}

/// The "more like these" mode (see [`LikeThese`]): the examples' ids are the first three of the
/// keyphrase's papers in id order, so every run hides the same ones.
fn like_these(
    index: &CandidateIndex,
    papers: &[Paper],
    vectors: &[Embedding],
    qrels: &BTreeMap<String, HashSet<String>>,
    ids: &[&str],
) -> Result<LikeThese, EvalError> {
    let position: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let systems = [
        ("words (more-like-this)", Fusion::Words),
        ("meaning", Fusion::Meaning),
        ("hybrid", Fusion::CHOSEN),
    ];
    let mut recall = [0f64; 3];
    let mut mrr = [0f64; 3];
    let mut n = 0usize;
    for relevant in qrels.values() {
        let mut known: Vec<usize> = relevant
            .iter()
            .filter_map(|id| position.get(id.as_str()).copied())
            .collect();
        if known.len() <= LIKED_EXAMPLES {
            continue;
        }
        known.sort_unstable_by_key(|&i| ids[i]);
        let (examples, hidden) = known.split_at(LIKED_EXAMPLES);
        let signals = ProfileSignals::new(
            Profile::default(),
            std::iter::empty(),
            examples.iter().map(|&i| (&papers[i], Some(&vectors[i]))),
        );
        let profile = index
            .profile(None, &signals)
            .map_err(|e| EvalError::Index(e.to_string()))?;
        n += 1;
        for (k, (_, fusion)) in systems.iter().enumerate() {
            let ranked = index
                .rank_profile(
                    &profile,
                    &whole_ranking(*fusion),
                    |i| !examples.contains(&i),
                    RANK_DEPTH,
                )
                .map_err(|e| EvalError::Index(e.to_string()))?;
            let found = ranked
                .iter()
                .take(10)
                .filter(|p| hidden.contains(&p.index))
                .count();
            recall[k] += found as f64 / hidden.len() as f64;
            if let Some(r) = ranked.iter().position(|p| hidden.contains(&p.index)) {
                mrr[k] += 1.0 / (r + 1) as f64;
            }
        }
    }
    let n_f = n.max(1) as f64;
    Ok(LikeThese {
        keyphrases: n,
        systems: systems
            .iter()
            .enumerate()
            .map(|(k, (name, _))| LikeSystem {
                name: name.to_string(),
                recall_at_10: recall[k] / n_f,
                mrr: mrr[k] / n_f,
            })
            .collect(),
    })
}

fn as_paper(d: &EvalDoc) -> Paper {
    Paper {
        id: PaperId::from_stored(format!("eval:{}", d.id)),
        title: d.title.clone(),
        abstract_text: d.abstract_text.clone(),
        authors: Vec::new(),
        categories: Vec::new(),
        published_at: None,
        upvotes: None,
        links: PaperLinks::default(),
        arxiv: Default::default(),
    }
}

#[derive(Default)]
struct Sums {
    n: usize,
    ndcg: f64,
    p10: f64,
    r50: f64,
    f1: f64,
    sp: f64,
    sr: f64,
    sent: f64,
    empty: usize,
}

impl Sums {
    fn add(&mut self, a: &Answer, relevant: &HashSet<String>) {
        self.n += 1;
        self.ndcg += ndcg_at(&a.ranked, relevant, 10);
        self.p10 += hits(&a.ranked, relevant, 10) as f64 / 10.0;
        self.r50 += hits(&a.ranked, relevant, 50) as f64 / relevant.len() as f64;
        let found = hits(&a.sent, relevant, a.sent.len()) as f64;
        // Nothing sent: precision is taken as 0, so an empty digest never looks good.
        let p = if a.sent.is_empty() {
            0.0
        } else {
            found / a.sent.len() as f64
        };
        let r = found / relevant.len() as f64;
        self.sp += p;
        self.sr += r;
        self.f1 += if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        self.sent += a.sent.len() as f64;
        if a.sent.is_empty() {
            self.empty += 1;
        }
    }

    fn mean(&self) -> Metrics {
        let n = self.n.max(1) as f64;
        Metrics {
            ndcg_at_10: self.ndcg / n,
            precision_at_10: self.p10 / n,
            recall_at_50: self.r50 / n,
            sent_f1: self.f1 / n,
            sent_precision: self.sp / n,
            sent_recall: self.sr / n,
            sent_mean: self.sent / n,
            empty_digests: self.empty,
        }
    }
}

fn hits(ranked: &[String], relevant: &HashSet<String>, k: usize) -> usize {
    ranked
        .iter()
        .take(k)
        .filter(|d| relevant.contains(*d))
        .count()
}

/// nDCG@k with binary relevance: the gain of each relevant document at rank r is 1/log2(r+1),
/// divided by the gain of a perfect ranking.
fn ndcg_at(ranked: &[String], relevant: &HashSet<String>, k: usize) -> f64 {
    let gain = |rank: usize| 1.0 / ((rank + 1) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, d)| relevant.contains(*d))
        .map(|(i, _)| gain(i + 1))
        .sum();
    let ideal: f64 = (1..=relevant.len().min(k)).map(gain).sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

/// The plain baseline: title and abstract as one field, lower-cased words (no stemming, no
/// accent folding), BM25, every query word OR'd (quotes, operators and fields ignored).
struct Baseline {
    index: Index,
    parser: QueryParser,
    ids: Vec<String>,
}

impl Baseline {
    fn build(docs: &[EvalDoc]) -> Result<Self, EvalError> {
        let index_err = |e: tantivy::TantivyError| EvalError::Index(e.to_string());
        let mut sb = Schema::builder();
        let text = sb.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("plain")
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        );
        let index = Index::create_in_ram(sb.build());
        index.tokenizers().register(
            "plain",
            TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .build(),
        );
        let mut writer = index
            .writer_with_num_threads::<TantivyDocument>(1, 15_000_000)
            .map_err(index_err)?;
        for d in docs {
            writer
                .add_document(doc!(text => format!("{}\n{}", d.title, d.abstract_text)))
                .map_err(index_err)?;
        }
        writer.commit().map_err(index_err)?;
        let parser = QueryParser::for_index(&index, vec![text]);
        Ok(Baseline {
            index,
            parser,
            ids: docs.iter().map(|d| d.id.clone()).collect(),
        })
    }

    fn answer(&self, query: &str, min_score: f32, max: usize) -> Result<Answer, EvalError> {
        // Words only: anything that is not a letter or digit separates words.
        let words: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        if words.is_empty() {
            return Ok(Answer {
                ranked: Vec::new(),
                sent: Vec::new(),
            });
        }
        let q = self
            .parser
            .parse_query(&words.join(" "))
            .map_err(|e| EvalError::Index(e.to_string()))?;
        let reader = self
            .index
            .reader()
            .map_err(|e| EvalError::Index(e.to_string()))?;
        let searcher = reader.searcher();
        let top = searcher
            .search(
                &q,
                &TopDocs::with_limit(RANK_DEPTH.max(max)).order_by_score(),
            )
            .map_err(|e| EvalError::Index(e.to_string()))?;
        // One writer, one commit, documents in order: the doc id is the position.
        let ranked: Vec<(f32, String)> = top
            .into_iter()
            .map(|(s, a)| (s, self.ids[a.doc_id as usize].clone()))
            .collect();
        Ok(Answer {
            sent: ranked
                .iter()
                .filter(|(s, _)| *s >= min_score)
                .take(max)
                .map(|(_, id)| id.clone())
                .collect(),
            ranked: ranked
                .into_iter()
                .take(RANK_DEPTH)
                .map(|(_, id)| id)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn list(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_is_one_for_a_perfect_ranking_and_lower_otherwise() {
        let rel = set(&["a", "b"]);
        assert!((ndcg_at(&list(&["a", "b", "c"]), &rel, 10) - 1.0).abs() < 1e-9);
        // b at rank 2 only: 1/log2(3) over (1 + 1/log2(3)).
        let g2 = 1.0 / 3f64.log2();
        let expected = g2 / (1.0 + g2);
        assert!((ndcg_at(&list(&["c", "b"]), &rel, 10) - expected).abs() < 1e-9);
        assert_eq!(ndcg_at(&list(&["c", "d"]), &rel, 10), 0.0);
    }

    #[test]
    fn sent_f1_counts_an_empty_digest_as_zero() {
        let rel = set(&["a", "b", "c", "d"]);
        let mut s = Sums::default();
        s.add(
            &Answer {
                ranked: list(&["a", "x"]),
                sent: list(&["a", "x"]),
            },
            &rel,
        );
        // precision 1/2, recall 1/4: F1 = 1/3.
        assert!((s.mean().sent_f1 - 1.0 / 3.0).abs() < 1e-9);
        s.add(
            &Answer {
                ranked: Vec::new(),
                sent: Vec::new(),
            },
            &rel,
        );
        let m = s.mean();
        assert!((m.sent_f1 - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(m.empty_digests, 1);
    }

    #[test]
    fn qrels_and_docs_parse_and_bad_lines_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q.tsv");
        std::fs::write(
            &q,
            "query\tdoc_id\trel\nneural nets\t1\t1\nneural nets\t2\t0\n",
        )
        .unwrap();
        let qrels = load_qrels(&q).unwrap();
        assert_eq!(qrels["neural nets"], set(&["1"]));
        std::fs::write(&q, "query\tdoc_id\trel\nneural nets\t1\n").unwrap();
        let err = load_qrels(&q).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");

        let d = dir.path().join("d.jsonl");
        std::fs::write(
            &d,
            "{\"id\":\"1\",\"title\":\"T\",\"abstract\":\"A\"}\n{oops}\n",
        )
        .unwrap();
        let err = load_docs(&d).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn stemming_finds_what_the_plain_baseline_misses() {
        let docs = vec![
            EvalDoc {
                id: "1".into(),
                title: "Digital library services".into(),
                abstract_text: "How academic libraries lend e-books.".into(),
            },
            EvalDoc {
                id: "2".into(),
                title: "Compilers".into(),
                abstract_text: "Register allocation for loops.".into(),
            },
        ];
        let run = |query: &str| {
            let qrels = BTreeMap::from([(query.to_string(), set(&["1"]))]);
            evaluate(
                &docs,
                &qrels,
                0.0,
                crate::matching::MEANING_FLOOR,
                10,
                &|_| {},
            )
            .unwrap()
        };
        let report = run("library");
        // "library" is in doc 1 as written ("library services"): both find it.
        assert_eq!(report.baseline.precision_at_10, 0.1);
        assert_eq!(report.ours.precision_at_10, 0.1);
        let report = run("libraries lending");
        assert_eq!(report.ours.recall_at_50, 1.0);
        assert!(report.ours.ndcg_at_10 > 0.99);
    }
}
