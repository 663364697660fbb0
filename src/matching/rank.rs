//! Ranking one subscriber's day: BM25 over the interests, the profile's signals, the relevance
//! floor, the bounded trending boost, the cut at the digest's size.
//!
//! What it is for: the order of a digest and the scores behind it. What it is not for: which
//! papers a subscriber may get (the caller's `allowed`), or the words of an explanation
//! (`explain`).

use super::MatchError;
use super::explain::{Explainer, Explanation, Signals};
use super::index::CandidateIndex;
use super::meaning::{MEANING_FLOOR, MEANING_STANDOUT, closeness, closest_liked};
use super::profile::RankingProfile;
use crate::model::CategoryMode;

/// A paper in one of the subscriber's categories (boost mode) scores this much more.
const CATEGORY_BOOST: f32 = 0.5;
/// Weight of the more-like-this score of liked papers. Its terms are boosted relative to the
/// best one (1.0), so a close paper scores like a good multi-word match; halved, it pulls
/// similar papers up without drowning the subscriber's own words.
const LIKE_WEIGHT: f32 = 0.5;
/// Disliked papers push similar ones down a little harder than liked ones pull: a reader who
/// said "less like this" notices a repeat more than a miss.
const DISLIKE_WEIGHT: f32 = 0.75;

/// One paper picked for one subscriber.
#[derive(Debug, Clone)]
pub struct Pick {
    /// Position of the paper in the slice given to [`CandidateIndex::build`].
    pub index: usize,
    pub score: f32,
    pub explanation: Explanation,
}

/// How the signals are weighed: the same for every subscriber in a run.
#[derive(Debug, Clone, Copy)]
pub struct Blend {
    /// Relevance floor: a paper scoring below it is never picked (followed authors excepted).
    pub min_score: f32,
    /// The floor of closeness in meaning (a cosine): below it meaning alone never qualifies a
    /// paper. [`MEANING_FLOOR`] for digests.
    pub meaning_floor: f32,
    /// How far above the day's mean (in standard deviations) a closeness must also stand for
    /// meaning alone to qualify a paper: [`MEANING_STANDOUT`] for digests.
    pub meaning_standout: f32,
    /// The most that trending can add to a matching paper's score (0 turns it off).
    pub trending_weight: f32,
    /// How words and meaning are combined, when the run has vectors.
    pub fusion: Fusion,
}

/// How BM25 and closeness in meaning make one score. `paperboy eval` compares them
/// (BENCHMARKS.md); planning uses [`Fusion::CHOSEN`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Words alone: BM25 and more-like-this, as before vectors (and whenever a run or a
    /// subscriber has none).
    Words,
    /// Meaning alone (for the evaluation).
    Meaning,
    /// `(1 - w) × words + w × meaning`, each scaled to 0..1 per subscriber and day: words by
    /// the best BM25 score among the papers that qualified, meaning from [`MEANING_ZERO`] to
    /// the best closeness among them.
    Weighted(f32),
    /// Reciprocal-rank fusion: `1/(60 + rank by words) + 1/(60 + rank by meaning)`.
    ReciprocalRank,
}

impl Fusion {
    /// What planning uses: chosen on the Inspec development set over the other fusions and
    /// weights (BENCHMARKS.md, "Matching by meaning").
    pub const CHOSEN: Fusion = Fusion::Weighted(0.4);
}

/// Fused scores are scaled to about this for the best paper, the range BM25 scores of a good
/// match take here, so that `trending_weight` weighs the same against either.
const FUSED_SCALE: f32 = 10.0;
/// The closeness that counts as no relation at all when scaling meaning (unrelated abstracts
/// sit around 0 to 0.2 against a short interest).
const MEANING_ZERO: f32 = 0.15;
/// Reciprocal-rank fusion's constant (the usual 60).
const RRF_K: f32 = 60.0;
/// A liked paper this close to a pick is named in its explanation.
const LIKED_REASON: f32 = 0.55;

impl Blend {
    /// Relevance alone: no trending boost, the chosen fusion.
    pub fn floor(min_score: f32) -> Self {
        Blend {
            min_score,
            meaning_floor: MEANING_FLOOR,
            meaning_standout: MEANING_STANDOUT,
            trending_weight: 0.0,
            fusion: Fusion::CHOSEN,
        }
    }
}

/// A paper that qualified for one subscriber, before fusion.
struct Qualified {
    index: usize,
    followed: bool,
    /// BM25 (with the profile's signals and the category boost); 0 when words did not qualify it.
    words: f32,
    /// Closeness in meaning; 0 without vectors.
    meaning: f32,
    /// Whether closeness in meaning alone passed its floor.
    by_meaning: bool,
}

impl CandidateIndex {
    /// Ranks the candidates that `allowed` accepts for one subscriber: papers by followed
    /// authors first, then by relevance (words and meaning fused, [`Blend::fusion`]) plus the
    /// trending boost; none whose relevance is below the floor of either signal; at most
    /// `max`. Explanations are computed for the picks only.
    pub fn rank_profile(
        &self,
        profile: &RankingProfile,
        blend: &Blend,
        allowed: impl Fn(usize) -> bool,
        max: usize,
    ) -> Result<Vec<Pick>, MatchError> {
        let n = self.len();
        if n == 0 || max == 0 || profile.is_empty() {
            return Ok(Vec::new());
        }
        let mut relevance = vec![0f32; n];
        let mut liked_part = vec![0f32; n];
        if let Some(q) = &profile.interests {
            self.for_each_hit(q.as_ref(), |i, s| relevance[i] += s)?;
        }
        if let Some(q) = &profile.liked {
            self.for_each_hit(q.as_ref(), |i, s| liked_part[i] += LIKE_WEIGHT * s)?;
            for (r, l) in relevance.iter_mut().zip(&liked_part) {
                *r += l;
            }
        }
        if let Some(q) = &profile.disliked {
            self.for_each_hit(q.as_ref(), |i, s| relevance[i] -= DISLIKE_WEIGHT * s)?;
        }
        let mut in_category = vec![false; n];
        for c in &profile.categories {
            for &i in self.by_category.get(c).into_iter().flatten() {
                in_category[i] = true;
            }
        }
        let mut followed = vec![false; n];
        for a in &profile.followed {
            for &i in self.by_author.get(a).into_iter().flatten() {
                followed[i] = true;
            }
        }
        let filter =
            !profile.categories.is_empty() && profile.category_mode == CategoryMode::Filter;
        if profile.browse {
            return self.browse(
                profile,
                blend,
                &in_category,
                &followed,
                filter,
                allowed,
                max,
            );
        }
        let fusion = if self.has_vectors() && !profile.meaning.is_empty() {
            blend.fusion
        } else {
            Fusion::Words
        };
        let close = (fusion != Fusion::Words).then(|| {
            let clauses = &profile.meaning.clauses;
            let scored = |key: &String| profile.scored.as_ref().and_then(|t| t.get(key)).cloned();
            // A profile ranked alone (preview, eval) scores its own clauses here.
            let own = if clauses.iter().all(|(key, _)| scored(key).is_some()) {
                Default::default()
            } else {
                self.score_clauses(clauses.iter().map(|(k, v)| (k.as_str(), v)))
            };
            // Every clause is in one or the other: the run has vectors (`fusion` is not Words).
            let scores: Vec<_> = clauses
                .iter()
                .filter_map(|(key, _)| scored(key).or_else(|| own.get(key).cloned()))
                .collect();
            closeness(&profile.meaning, &self.vectors, scores)
        });
        let passes_filters = match &close {
            Some(_) => self.passes_hard_filters(profile)?,
            None => Vec::new(),
        };
        let mut qualified: Vec<Qualified> = Vec::new();
        // `allowed` (the window and the papers already sent) is asked last: most of the day's
        // papers fail a cheaper test first.
        for i in 0..n {
            let meaning = close.as_ref().map_or(0.0, |c| c.score(i));
            if followed[i] {
                if allowed(i) {
                    qualified.push(Qualified {
                        index: i,
                        followed: true,
                        words: relevance[i].max(0.0),
                        meaning,
                        by_meaning: false,
                    });
                }
                continue;
            }
            if filter && !in_category[i] {
                continue;
            }
            let mut words = relevance[i];
            if words > 0.0 && in_category[i] {
                words *= 1.0 + CATEGORY_BOOST;
            }
            // Each signal has its floor, judged on relevance alone: trending lifts a match,
            // never makes one, and weak matches never pad a digest.
            let by_words = fusion != Fusion::Meaning && words > 0.0 && words >= blend.min_score;
            // By the interests' clauses: close enough, and standing out of the day. By taste
            // alone (no clause: examples and votes only): close enough. (The floor first:
            // most of the day's papers fail it.)
            let by_meaning = close.as_ref().is_some_and(|c| {
                meaning >= blend.meaning_floor
                    && (profile.meaning.clauses.is_empty()
                        || c.standout(i) >= blend.meaning_standout)
            }) && passes_filters[i];
            if (by_words || by_meaning) && allowed(i) {
                qualified.push(Qualified {
                    index: i,
                    followed: false,
                    words: if by_words { words } else { 0.0 },
                    meaning,
                    by_meaning,
                });
            }
        }
        let fused = fuse(fusion, &qualified);
        let mut ranked: Vec<(bool, f32, usize)> = qualified
            .iter()
            .zip(&fused)
            .map(|(q, f)| {
                (
                    q.followed,
                    f + blend.trending_weight * self.trending(q.index),
                    q.index,
                )
            })
            .collect();
        sort_and_cut(&mut ranked, max);
        if ranked.is_empty() {
            return Ok(Vec::new());
        }
        let mut explainer = Explainer::new(self, profile)?;
        Ok(ranked
            .into_iter()
            .map(|(is_followed, score, i)| {
                // `qualified` is in candidate order: a search, not a map built per subscriber.
                let q = &qualified[qualified.partition_point(|q| q.index < i)];
                // Meaning is a reason when it qualified the paper and words did not carry
                // it on their own.
                let meaning_reason = (q.by_meaning && q.words == 0.0)
                    .then(|| {
                        profile
                            .meaning
                            .clauses
                            .get(close.as_ref().map_or(0, |c| c.clause(i)))
                            .map(|(t, _)| t.clone())
                    })
                    .flatten();
                let liked_title = close
                    .as_ref()
                    .and_then(|_| closest_liked(&profile.meaning, &self.vectors, i, LIKED_REASON))
                    .map(str::to_string);
                Pick {
                    index: i,
                    score,
                    explanation: explainer.explain(
                        i,
                        &Signals {
                            followed: is_followed,
                            in_category: in_category[i],
                            liked: liked_part[i] > 0.0
                                && liked_part[i] >= 0.3 * relevance[i].max(0.0),
                            trending: self.trending(i),
                            browse: false,
                            meaning: meaning_reason,
                            liked_title,
                        },
                    ),
                }
            })
            .collect())
    }

    /// No words to match (`*`, or categories alone): the day's most-upvoted papers, in the
    /// categories when given; followed authors first. Papers nobody upvoted are not "trending".
    #[allow(clippy::too_many_arguments)]
    fn browse(
        &self,
        profile: &RankingProfile,
        blend: &Blend,
        in_category: &[bool],
        followed: &[bool],
        filter: bool,
        allowed: impl Fn(usize) -> bool,
        max: usize,
    ) -> Result<Vec<Pick>, MatchError> {
        let mut ranked: Vec<(bool, f32, usize)> = Vec::new();
        for i in 0..self.len() {
            let trending = self.trending(i);
            if followed[i] {
                if allowed(i) {
                    ranked.push((true, blend.trending_weight * trending, i));
                }
                continue;
            }
            if filter && !in_category[i] {
                continue;
            }
            let in_scope = if profile.categories.is_empty() {
                self.papers[i].upvotes > 0
            } else {
                in_category[i]
            };
            if in_scope && allowed(i) {
                ranked.push((false, trending, i));
            }
        }
        sort_and_cut(&mut ranked, max);
        let mut explainer = Explainer::new(self, profile)?;
        Ok(ranked
            .into_iter()
            .map(|(is_followed, score, i)| Pick {
                index: i,
                score,
                explanation: explainer.explain(
                    i,
                    &Signals {
                        followed: is_followed,
                        in_category: in_category[i],
                        liked: false,
                        trending: self.trending(i),
                        browse: true,
                        meaning: None,
                        liked_title: None,
                    },
                ),
            })
            .collect())
    }

    /// Which candidates pass the interests' hard filters (`NOT x`, `-x`; one of the `title:`,
    /// `cat:`, `author:` terms when there are any): what a paper qualified by meaning alone
    /// must also satisfy.
    fn passes_hard_filters(&self, profile: &RankingProfile) -> Result<Vec<bool>, MatchError> {
        let n = self.len();
        let mut pass = match &profile.required {
            Some(q) => {
                let mut p = vec![false; n];
                self.for_each_hit(q.as_ref(), |i, _| p[i] = true)?;
                p
            }
            None => vec![true; n],
        };
        if let Some(q) = &profile.excluded {
            self.for_each_hit(q.as_ref(), |i, _| pass[i] = false)?;
        }
        Ok(pass)
    }

    /// Upvotes relative to the day's most-upvoted paper, on a log scale: 0 to 1.
    pub(super) fn trending(&self, i: usize) -> f32 {
        self.papers[i].trending
    }
}

/// Followed first, then by score, then by position: a total order, so picking the best `max`
/// first and sorting only those gives the same list as sorting everything.
fn sort_and_cut(ranked: &mut Vec<(bool, f32, usize)>, max: usize) {
    let order = |a: &(bool, f32, usize), b: &(bool, f32, usize)| {
        b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2))
    };
    if ranked.len() > max {
        ranked.select_nth_unstable_by(max - 1, order);
        ranked.truncate(max);
    }
    ranked.sort_unstable_by(order);
}

/// One score per qualified paper, by `fusion` (per subscriber and day: the scales come from
/// the papers that qualified).
fn fuse(fusion: Fusion, qualified: &[Qualified]) -> Vec<f32> {
    match fusion {
        Fusion::Words => qualified.iter().map(|q| q.words).collect(),
        Fusion::Meaning => qualified.iter().map(|q| FUSED_SCALE * q.meaning).collect(),
        Fusion::Weighted(w) => {
            let words_max = qualified.iter().map(|q| q.words).fold(0f32, f32::max);
            let meaning_max = qualified.iter().map(|q| q.meaning).fold(0f32, f32::max);
            qualified
                .iter()
                .map(|q| {
                    let words = if words_max > 0.0 {
                        q.words / words_max
                    } else {
                        0.0
                    };
                    let meaning = if meaning_max > MEANING_ZERO {
                        ((q.meaning - MEANING_ZERO) / (meaning_max - MEANING_ZERO)).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    FUSED_SCALE * ((1.0 - w) * words + w * meaning)
                })
                .collect()
        }
        Fusion::ReciprocalRank => {
            let rank_by = |key: &dyn Fn(&Qualified) -> f32| {
                let mut order: Vec<usize> = (0..qualified.len()).collect();
                order.sort_by(|&a, &b| key(&qualified[b]).total_cmp(&key(&qualified[a])));
                let mut rank = vec![0usize; qualified.len()];
                for (r, &k) in order.iter().enumerate() {
                    rank[k] = r + 1;
                }
                rank
            };
            let by_words = rank_by(&|q| q.words);
            let by_meaning = rank_by(&|q| q.meaning);
            // Scaled so that first by both scores FUSED_SCALE.
            let top = 2.0 / (RRF_K + 1.0);
            (0..qualified.len())
                .map(|k| {
                    // A paper no word matched has no rank by words.
                    let words = if qualified[k].words > 0.0 {
                        1.0 / (RRF_K + by_words[k] as f32)
                    } else {
                        0.0
                    };
                    FUSED_SCALE * (words + 1.0 / (RRF_K + by_meaning[k] as f32)) / top
                })
                .collect()
        }
    }
}
