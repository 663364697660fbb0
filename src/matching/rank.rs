//! Ranking one subscriber's day: BM25 over the interests, the profile's signals, the relevance
//! floor, the bounded trending boost, the cut at the digest's size.
//!
//! What it is for: the order of a digest and the scores behind it. What it is not for: which
//! papers a subscriber may get (the caller's `allowed`), or the words of an explanation
//! (`explain`).

use super::MatchError;
use super::explain::{Explainer, Explanation, Signals};
use super::index::CandidateIndex;
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
    /// The most that trending can add to a matching paper's score (0 turns it off).
    pub trending_weight: f32,
}

impl Blend {
    /// Relevance alone: no trending boost.
    pub fn floor(min_score: f32) -> Self {
        Blend {
            min_score,
            trending_weight: 0.0,
        }
    }
}

impl CandidateIndex {
    /// Ranks the candidates that `allowed` accepts for one subscriber: papers by followed
    /// authors first, then by relevance plus the trending boost; none whose relevance is below
    /// the floor; at most `max`. Explanations are computed for the picks only.
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

        let mut ranked: Vec<(bool, f32, usize)> = Vec::new();
        // `allowed` (the window and the papers already sent) is asked last: most of the day's
        // papers fail a cheaper test first.
        for i in 0..n {
            let trending = self.trending(i);
            if followed[i] {
                if !allowed(i) {
                    continue;
                }
                ranked.push((
                    true,
                    relevance[i].max(0.0) + blend.trending_weight * trending,
                    i,
                ));
                continue;
            }
            if filter && !in_category[i] {
                continue;
            }
            if profile.browse {
                // No words to match: the day's most-upvoted papers (in the categories, when
                // given). Papers nobody upvoted are not "trending".
                let in_scope = if profile.categories.is_empty() {
                    self.papers[i].upvotes > 0
                } else {
                    in_category[i]
                };
                if in_scope && allowed(i) {
                    ranked.push((false, trending, i));
                }
                continue;
            }
            let mut r = relevance[i];
            if r <= 0.0 {
                continue;
            }
            if in_category[i] {
                r *= 1.0 + CATEGORY_BOOST;
            }
            // The floor judges relevance alone: trending lifts a match, never makes one.
            if r >= blend.min_score && allowed(i) {
                ranked.push((false, r + blend.trending_weight * trending, i));
            }
        }
        // Followed first, then by score, then by position: a total order, so picking the best
        // `max` first and sorting only those gives the same list as sorting everything.
        let order = |a: &(bool, f32, usize), b: &(bool, f32, usize)| {
            b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2))
        };
        if ranked.len() > max {
            ranked.select_nth_unstable_by(max - 1, order);
            ranked.truncate(max);
        }
        ranked.sort_unstable_by(order);

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
                        liked: liked_part[i] > 0.0 && liked_part[i] >= 0.3 * relevance[i].max(0.0),
                        trending: self.trending(i),
                        browse: profile.browse,
                    },
                ),
            })
            .collect())
    }

    /// Upvotes relative to the day's most-upvoted paper, on a log scale: 0 to 1.
    pub(super) fn trending(&self, i: usize) -> f32 {
        self.papers[i].trending
    }
}
