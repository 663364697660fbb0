//! Closeness in meaning: which parts of the interests are embedded, and how a subscriber's
//! vectors (interests, liked and disliked papers) score one day's candidates.
//!
//! What it is for: [`meaning_clauses`], the one rule of what an interest means as a sentence
//! (the embedder and the planner both ask it), and [`Meaning`], the per-subscriber scores in
//! meaning that `rank` fuses with BM25. What it is not for: computing vectors (`embed`) or
//! storing them (`store::vectors`); the hard filters (`NOT`, `-word`, `cat:`, `title:`) stay
//! with the query, which meaning never overrides.

use crate::embed::{DIMENSIONS, Embedding, interest_key};
use ndarray::{Array2, ArrayView1};

/// At most this many clauses of one subscriber's interests are embedded.
pub const MAX_MEANING_CLAUSES: usize = 16;

/// The parts of `interests` that say what the subscriber is interested in, as sentences the
/// model reads: each quoted phrase, and the plain words of each `OR`-separated part together
/// ("video generation" stays one idea). Left out: what only filters or names people
/// (`NOT x`, `-x`, `author:`, `cat:`), operators and parentheses, and [`super::TRENDING_ONLY`].
/// Each clause is in [`interest_key`] form, without repeats.
pub fn meaning_clauses(interests: &str) -> Vec<String> {
    let mut clauses: Vec<String> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let push = |clause: String, clauses: &mut Vec<String>| {
        let key = interest_key(&clause);
        if key.chars().any(char::is_alphanumeric)
            && !clauses.contains(&key)
            && clauses.len() < MAX_MEANING_CLAUSES
        {
            clauses.push(key);
        }
    };
    let mut negate_next = false;
    for token in tokens(interests) {
        match token {
            Token::Or => push(std::mem::take(&mut words).join(" "), &mut clauses),
            Token::And | Token::Paren => {}
            Token::Not => negate_next = true,
            Token::Term {
                field,
                text,
                negated,
            } => {
                let dropped = negated
                    || std::mem::take(&mut negate_next)
                    || matches!(field.as_deref(), Some("author" | "cat"))
                    || text == super::TRENDING_ONLY;
                if dropped {
                    continue;
                }
                if text.contains(' ') {
                    push(text, &mut clauses);
                } else {
                    words.push(text);
                }
            }
        }
    }
    push(words.join(" "), &mut clauses);
    clauses
}

enum Token {
    Or,
    And,
    Not,
    Paren,
    /// A word or a quoted phrase (without its quotes), with its field prefix if any.
    Term {
        field: Option<String>,
        text: String,
        negated: bool,
    },
}

/// A scan that knows quotes, parentheses, operators, `-` and `field:`; everything else of the
/// language is tantivy's, and does not change what a clause means.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '(' || c == ')' {
            chars.next();
            out.push(Token::Paren);
            continue;
        }
        let mut negated = false;
        if c == '-' || c == '+' {
            negated = c == '-';
            chars.next();
        }
        let mut field = None;
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '(' || c == ')' {
                break;
            }
            if c == '"' {
                chars.next();
                if word.ends_with(':') {
                    word.pop();
                    field = Some(std::mem::take(&mut word).to_lowercase());
                }
                let phrase: String = chars.by_ref().take_while(|&c| c != '"').collect();
                word.push_str(&phrase);
                // A phrase with a proximity (`"a b"~2`) keeps its words.
                while chars
                    .peek()
                    .is_some_and(|c| !c.is_whitespace() && *c != ')')
                {
                    chars.next();
                }
                break;
            }
            if c == ':' && field.is_none() && !word.is_empty() {
                chars.next();
                field = Some(std::mem::take(&mut word).to_lowercase());
                continue;
            }
            word.push(c);
            chars.next();
        }
        let token = match word.as_str() {
            _ if field.is_some() || negated => Token::Term {
                field,
                text: word,
                negated,
            },
            "OR" | "||" => Token::Or,
            "AND" | "&&" => Token::And,
            "NOT" => Token::Not,
            "" => continue,
            _ => Token::Term {
                field,
                text: word,
                negated,
            },
        };
        out.push(token);
    }
    out
}

/// The parts of the interests that filter rather than describe, as two query texts for the
/// candidate index: `excluded` (what `NOT x` and `-x` rule out) and `required` (the `title:`,
/// `cat:` and `author:` terms, of which a paper must match one). Words decide nothing here:
/// a paper qualified by meaning alone must still pass these, so they stay hard.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HardFilters {
    pub excluded: Option<String>,
    pub required: Option<String>,
}

pub fn hard_filters(interests: &str) -> HardFilters {
    let mut excluded = Vec::new();
    let mut required = Vec::new();
    let mut negate_next = false;
    for token in tokens(interests) {
        let Token::Term {
            field,
            text,
            negated,
        } = token
        else {
            negate_next = matches!(token, Token::Not);
            continue;
        };
        let negated = negated || std::mem::take(&mut negate_next);
        if text.is_empty() || text == super::TRENDING_ONLY {
            continue;
        }
        // As the subscriber wrote it: a phrase quoted again, a word bare (a category's
        // analyzer reads `cs.CV` as typed).
        let quoted = if text.contains(' ') {
            format!("\"{text}\"")
        } else {
            text
        };
        let term = match &field {
            Some(f) => format!("{f}:{quoted}"),
            None => quoted,
        };
        if negated {
            excluded.push(term);
        } else if matches!(field.as_deref(), Some("title" | "cat" | "author")) {
            required.push(term);
        }
    }
    let join = |terms: Vec<String>| (!terms.is_empty()).then(|| terms.join(" OR "));
    HardFilters {
        excluded: join(excluded),
        required: join(required),
    }
}

/// The default floor of closeness in meaning (`matching.min_closeness`; a test holds the
/// embedded configuration to it): below it, meaning alone never qualifies a paper. Where it
/// comes from (BENCHMARKS.md, "Matching by meaning"): on the Inspec development set the F1 of
/// the set sent by meaning alone only grows as the floor falls (0.30 at 0.30, 0.24 at 0.40,
/// every keyphrase there has ten relevant papers or more), so the floor is set by the other
/// side, what must never qualify: interests about nothing in the day (quantum gravity,
/// cooking, football…) reach at most 0.30 against the real Hugging Face day of 2024-10-25,
/// while paraphrases of its papers reach 0.33 to 0.35.
pub const MEANING_FLOOR: f32 = 0.32;
/// How far, in standard deviations above the day's mean for that clause, a paper's closeness
/// must stand out for meaning alone to qualify it. Why: an absolute floor lets the best of a
/// day with nothing on topic through ("confabulation in chatbots" reached 0.32 with a paper on
/// chart reasoning, 2.5 deviations out), while a paraphrase of a paper that is there stands
/// far out (3.5 and 3.7 for the two of `tests/it/matching_meaning.rs`).
pub const MEANING_STANDOUT: f32 = 3.0;
/// How much the taste (closeness to liked papers, away from disliked ones) counts beside the
/// interests.
const TASTE_WEIGHT: f32 = 0.5;

/// A subscriber's vectors as ranking reads them: their interests' clauses (with the clause
/// text, for explanations), the papers they liked or gave as examples, and those they
/// disliked.
#[derive(Debug, Clone, Default)]
pub struct MeaningProfile {
    pub clauses: Vec<(String, Embedding)>,
    /// With each paper's title, to name the closest one in an explanation.
    pub liked: Vec<(String, Embedding)>,
    pub disliked: Vec<Embedding>,
}

impl MeaningProfile {
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty() && self.liked.is_empty()
    }
}

/// Every candidate's closeness in meaning to one subscriber, by position: columns rather than a
/// struct per paper, so that taking the best clause is a pass the compiler vectorises (this
/// ran for every subscriber over every candidate, and was the largest part of what meaning
/// cost planning after the matrix product).
#[derive(Debug, Default)]
pub struct Closeness {
    /// The best cosine with one of the interests' clauses (0 when none is embedded).
    interest: Vec<f32>,
    /// Which clause that was.
    clause: Vec<u32>,
    /// Closeness to the liked papers' centroid minus closeness to the disliked ones' (empty:
    /// no vote and no example).
    taste: Vec<f32>,
    /// The clauses' scores, for how far a paper stands out of the day.
    scores: Vec<std::sync::Arc<ClauseScores>>,
}

impl Closeness {
    /// What meaning says about candidate `i`, for qualifying and ranking: the interests first,
    /// then the taste.
    pub fn score(&self, i: usize) -> f32 {
        let taste = self.taste.get(i).copied().unwrap_or(0.0);
        self.interest.get(i).copied().unwrap_or(0.0) + TASTE_WEIGHT * taste
    }

    /// Which of the interests' clauses candidate `i` is closest to.
    pub fn clause(&self, i: usize) -> usize {
        self.clause.get(i).map_or(0, |&k| k as usize)
    }

    /// How far candidate `i`'s best cosine stands out among the day's candidates for that
    /// clause, in standard deviations above their mean: a paper that only meaning qualifies
    /// must stand out. 0 with no clause.
    pub fn standout(&self, i: usize) -> f32 {
        match (self.interest.get(i), self.scores.get(self.clause(i))) {
            (Some(&s), Some(scores)) if s > 0.0 => scores.standout(s),
            _ => 0.0,
        }
    }
}

/// The candidates' vectors as one matrix, a row per candidate (a missing vector is a row of
/// zeros), so that many clauses are scored against every candidate in one matrix product.
#[derive(Debug)]
pub struct PaperMatrix {
    rows: Array2<f32>,
}

impl Default for PaperMatrix {
    fn default() -> Self {
        PaperMatrix {
            rows: Array2::zeros((0, DIMENSIONS)),
        }
    }
}

/// Clauses scored per matrix product: enough that the candidates' matrix is read from cache a
/// block at a time, few enough that the product's scratch stays small (256 × 2,000 × 4 bytes).
const CLAUSES_PER_PRODUCT: usize = 256;

impl PaperMatrix {
    pub fn new(vectors: &[Option<Embedding>]) -> PaperMatrix {
        let mut rows = Array2::zeros((vectors.len(), DIMENSIONS));
        for (mut row, v) in rows.outer_iter_mut().zip(vectors) {
            if let Some(v) = v {
                row.assign(&ArrayView1::from(v.as_slice()));
            }
        }
        PaperMatrix { rows }
    }

    /// The cosine of `v` with every candidate (0 for one without a vector).
    pub fn cosines(&self, v: &[f32]) -> Vec<f32> {
        self.rows.dot(&ArrayView1::from(v)).to_vec()
    }

    /// Each clause's cosines with every candidate, and the day's mean and spread of them. One
    /// blocked matrix product per [`CLAUSES_PER_PRODUCT`] clauses (ndarray hands it to
    /// `matrixmultiply`, which picks AVX2/FMA kernels at run time): this is most of what
    /// meaning costs planning (BENCHMARKS.md, "Matching by meaning", planning speed).
    pub fn score(&self, clauses: &[&Embedding]) -> Vec<ClauseScores> {
        let mut out = Vec::with_capacity(clauses.len());
        for block in clauses.chunks(CLAUSES_PER_PRODUCT) {
            let mut a = Array2::zeros((block.len(), DIMENSIONS));
            for (mut row, v) in a.outer_iter_mut().zip(block) {
                row.assign(&ArrayView1::from(v.as_slice()));
            }
            let product = a.dot(&self.rows.t());
            out.extend(
                product
                    .outer_iter()
                    .map(|cosines| ClauseScores::new(cosines.to_vec())),
            );
        }
        out
    }

    pub fn rows(&self) -> usize {
        self.rows.nrows()
    }

    /// Candidate `i`'s vector (zeros when it has none).
    pub fn row(&self, i: usize) -> ArrayView1<'_, f32> {
        self.rows.row(i)
    }
}

/// One clause against the day's candidates: its cosine with each (by position), and the mean
/// and spread of those, which say how far a paper stands out of the day for that clause.
#[derive(Debug)]
pub struct ClauseScores {
    pub cosines: Box<[f32]>,
    mean: f32,
    spread: f32,
}

impl ClauseScores {
    pub fn new(cosines: Vec<f32>) -> ClauseScores {
        let n = cosines.len().max(1) as f32;
        let mean = cosines.iter().sum::<f32>() / n;
        let spread = (cosines.iter().map(|s| (s - mean) * (s - mean)).sum::<f32>() / n)
            .sqrt()
            .max(1e-6);
        ClauseScores {
            cosines: cosines.into_boxed_slice(),
            mean,
            spread,
        }
    }

    /// How far `cosine` stands above the day's mean, in standard deviations.
    pub fn standout(&self, cosine: f32) -> f32 {
        (cosine - self.mean) / self.spread
    }

    /// The memory one takes for `candidates` papers (what the run's cache counts).
    pub fn bytes_for(candidates: usize) -> usize {
        candidates * std::mem::size_of::<f32>() + std::mem::size_of::<ClauseScores>()
    }
}

/// The liked paper (its title) closest to candidate `i`, when at least `at_least` close: for
/// the picks' explanations only, so it costs one dot product per liked paper and pick.
pub fn closest_liked<'a>(
    profile: &'a MeaningProfile,
    papers: &PaperMatrix,
    i: usize,
    at_least: f32,
) -> Option<&'a str> {
    let row = papers.row(i);
    profile
        .liked
        .iter()
        .map(|(title, v)| (row.dot(&ArrayView1::from(v.as_slice())), title.as_str()))
        .filter(|(s, _)| *s >= at_least)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, title)| title)
}

/// Scores every candidate for one subscriber. `scores` holds each of the profile's clauses
/// scored against the candidates (in the order of `profile.clauses`; see
/// `CandidateIndex::score_clauses`).
pub fn closeness(
    profile: &MeaningProfile,
    papers: &PaperMatrix,
    scores: Vec<std::sync::Arc<ClauseScores>>,
) -> Closeness {
    let n = papers.rows();
    let (mut interest, mut clause) = match scores.first() {
        Some(first) => (
            first.cosines.iter().map(|s| s.max(0.0)).collect(),
            vec![0u32; n],
        ),
        None => (vec![0f32; n], vec![0u32; n]),
    };
    for (k, scored) in scores.iter().enumerate().skip(1) {
        let k = k as u32;
        // Branch-free, so that it vectorises: a clause is rarely better everywhere.
        for ((best, which), &s) in interest
            .iter_mut()
            .zip(&mut clause)
            .zip(&scored.cosines[..])
        {
            let better = s > *best;
            *best = if better { s } else { *best };
            *which = if better { k } else { *which };
        }
    }
    let liked: Vec<Embedding> = profile.liked.iter().map(|(_, v)| v.clone()).collect();
    let mut taste = Vec::new();
    if let Some(centroid) = centroid(&liked) {
        taste = papers.cosines(&centroid);
        taste.iter_mut().for_each(|s| *s = s.max(0.0));
    }
    if let Some(centroid) = centroid(&profile.disliked) {
        if taste.is_empty() {
            taste = vec![0f32; n];
        }
        for (t, s) in taste.iter_mut().zip(papers.cosines(&centroid)) {
            *t -= s.max(0.0);
        }
    }
    Closeness {
        interest,
        clause,
        taste,
        scores,
    }
}

/// The mean direction of `vectors`, normalised; `None` for none.
fn centroid(vectors: &[Embedding]) -> Option<Vec<f32>> {
    let first = vectors.first()?;
    let mut sum = vec![0f32; first.as_slice().len()];
    for v in vectors {
        for (s, x) in sum.iter_mut().zip(v.as_slice()) {
            *s += x;
        }
    }
    Embedding::normalized(sum).map(|e| e.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_are_one_clause_and_phrases_their_own() {
        assert_eq!(meaning_clauses("video generation"), ["video generation"]);
        assert_eq!(
            meaning_clauses("diffusion \"Protein Folding\" -survey"),
            ["protein folding", "diffusion"]
        );
        assert_eq!(
            meaning_clauses("\"mind reading\" OR \"brain decoding\""),
            ["mind reading", "brain decoding"]
        );
        assert_eq!(
            meaning_clauses("(diffusion OR flow) AND protein"),
            ["diffusion", "flow protein"]
        );
    }

    #[test]
    fn filters_authors_and_categories_are_not_meaning() {
        assert_eq!(
            meaning_clauses("language models NOT survey author:bengio cat:cs.LG"),
            ["language models"]
        );
        assert_eq!(
            meaning_clauses("title:\"graph networks\" abstract:molecules author:\"Yann LeCun\""),
            ["graph networks", "molecules"]
        );
        assert_eq!(meaning_clauses("*"), Vec::<String>::new());
        assert_eq!(meaning_clauses("-survey"), Vec::<String>::new());
        assert_eq!(meaning_clauses("\"a b\"~2 c"), ["a b", "c"]);
    }

    #[test]
    fn hard_filters_keep_exclusions_and_fields() {
        assert_eq!(hard_filters("video generation"), HardFilters::default());
        assert_eq!(
            hard_filters("diffusion -survey NOT \"position paper\" cat:cs.CV title:video"),
            HardFilters {
                excluded: Some("survey OR \"position paper\"".into()),
                required: Some("cat:cs.CV OR title:video".into()),
            }
        );
        assert_eq!(
            hard_filters("-cat:cs.CL author:\"Yann LeCun\""),
            HardFilters {
                excluded: Some("cat:cs.CL".into()),
                required: Some("author:\"Yann LeCun\"".into()),
            }
        );
    }

    #[test]
    fn clauses_are_keys_without_repeats_and_capped() {
        assert_eq!(meaning_clauses("LLM OR llm OR  LLM"), ["llm"]);
        let many: Vec<String> = (0..40).map(|i| format!("topic{i}")).collect();
        assert_eq!(
            meaning_clauses(&many.join(" OR ")).len(),
            MAX_MEANING_CLAUSES
        );
    }

    fn unit(values: &[f32]) -> Embedding {
        let mut v = vec![0f32; crate::embed::DIMENSIONS];
        v[..values.len()].copy_from_slice(values);
        Embedding::normalized(v).unwrap()
    }

    /// Deterministic unit vectors with every coordinate in use.
    fn spread_out(count: usize, seed: u64) -> Vec<Embedding> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                let values = (0..crate::embed::DIMENSIONS)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                Embedding::normalized(values).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_blocked_product_gives_each_clause_its_own_cosines() {
        let papers: Vec<Option<Embedding>> = spread_out(300, 1)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i % 7 != 3).then_some(v))
            .collect();
        let matrix = PaperMatrix::new(&papers);
        // More clauses than one product takes, so the blocks are joined too.
        let clauses = spread_out(CLAUSES_PER_PRODUCT + 45, 2);
        let refs: Vec<&Embedding> = clauses.iter().collect();
        let scored = matrix.score(&refs);
        assert_eq!(scored.len(), clauses.len());
        for (clause, scores) in clauses.iter().zip(&scored) {
            assert_eq!(scores.cosines.len(), papers.len());
            for (paper, &s) in papers.iter().zip(scores.cosines.iter()) {
                let expected = paper.as_ref().map_or(0.0, |p| p.cosine(clause));
                assert!((s - expected).abs() < 1e-5, "{s} against {expected}");
            }
            let n = papers.len() as f32;
            let mean = scores.cosines.iter().sum::<f32>() / n;
            let best = scores.cosines.iter().copied().fold(f32::MIN, f32::max);
            let spread = (scores
                .cosines
                .iter()
                .map(|s| (s - mean).powi(2))
                .sum::<f32>()
                / n)
                .sqrt();
            assert!((scores.standout(best) - (best - mean) / spread).abs() < 1e-3);
        }
    }

    #[test]
    fn closeness_takes_the_best_clause_and_the_taste() {
        let profile = MeaningProfile {
            clauses: vec![("a".into(), unit(&[1.0])), ("b".into(), unit(&[0.0, 1.0]))],
            liked: vec![("liked".into(), unit(&[0.0, 0.0, 1.0]))],
            disliked: vec![unit(&[0.0, 0.0, 0.0, 1.0])],
        };
        let papers = PaperMatrix::new(&[
            Some(unit(&[0.0, 1.0, 1.0])),
            Some(unit(&[0.0, 0.0, 0.0, 1.0])),
            None,
        ]);
        let clauses: Vec<&Embedding> = profile.clauses.iter().map(|(_, v)| v).collect();
        let scores: Vec<_> = papers
            .score(&clauses)
            .into_iter()
            .map(std::sync::Arc::new)
            .collect();
        let c = closeness(&profile, &papers, scores);
        assert_eq!(c.clause(0), 1);
        assert!((c.interest[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5);
        assert!(c.taste[0] > 0.7);
        assert!(
            c.taste[1] < -0.99,
            "a paper like the disliked one is pushed away"
        );
        assert_eq!(c.score(2), 0.0, "a paper without a vector scores nothing");
    }
}
