//! The card cache: each paper's card rendered once per layout, with stand-ins where one
//! subscriber's digest differs from another's, and each digest's own values spliced in.
//!
//! See [`DigestRenderer`] for why. Not for: the page around the cards or the text part
//! (`render`, `page`), or loading the templates (`templates`).

use super::page::{PaperCard, PaperParts, PaperTextFixed, SubscriberParts};
use super::render::{DigestRenderer, RenderError};
use super::templates::{CARD_TEMPLATE, push_escaped};
use super::{DigestPaper, SnippetPart};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// Stand in for what differs between subscribers while a card is rendered for the cache. Our
/// own text never contains NUL; a card whose paper text does is rendered without the cache.
pub(super) const RANK_MARK: &str = "\u{0}rank\u{0}";
pub(super) const SNIPPET_MARK: &str = "\u{0}snippet\u{0}";
pub(super) const WHY_MARK: &str = "\u{0}why\u{0}";
pub(super) const MORE_MARK: &str = "\u{0}more-like-this\u{0}";
pub(super) const LESS_MARK: &str = "\u{0}less-like-this\u{0}";
/// Cards kept at most: a day's papers times the few ways a card can be laid out (with or
/// without snippet, reasons, feedback links). When full the cache starts afresh, which costs one
/// render per card and bounds memory (~5 KB a card).
pub(super) const CARD_CACHE_MAX: usize = 8192;
/// Ranks whose text blocks a cached card keeps; digests seldom hold more papers.
const TEXT_RANKS_KEPT: usize = 16;

/// The cached cards, by a hash of the paper's id and title and the card's shape; each entry
/// keeps its full key to compare.
#[derive(Default)]
pub(super) struct CardCache {
    pub(super) by_hash: HashMap<u64, Vec<Arc<CachedCard>>>,
    pub(super) len: usize,
}

impl DigestRenderer {
    /// The card for `paper` from the cache, rendered with stand-ins and stored first if need be.
    pub(super) fn card(
        &self,
        paper: &DigestPaper,
        mine: &SubscriberParts,
    ) -> Result<Arc<CachedCard>, RenderError> {
        let shape = mine.shape();
        let hash = card_hash(paper, shape);
        {
            let cache = self.cards.lock().expect("card cache lock");
            if let Some(found) = cache
                .by_hash
                .get(&hash)
                .and_then(|v| v.iter().find(|c| c.key.matches(paper, shape)))
            {
                return Ok(found.clone());
            }
        }
        let parts = PaperParts::of(paper);
        let html = self.render_with_stand_ins(&parts, shape)?;
        let cached = Arc::new(CachedCard {
            key: CardKey::of(paper, shape),
            html,
            parts,
            text: Default::default(),
        });
        let mut cache = self.cards.lock().expect("card cache lock");
        if cache.len >= CARD_CACHE_MAX {
            *cache = CardCache::default();
        }
        cache.by_hash.entry(hash).or_default().push(cached.clone());
        cache.len += 1;
        Ok(cached)
    }

    /// Appends the card of `cached` as `mine` sees it: the cached HTML with their parts spliced
    /// in, or, for a card that could not be cut, rendered whole.
    pub(super) fn push_card(
        &self,
        cached: &CachedCard,
        mine: &SubscriberParts,
        out: &mut String,
    ) -> Result<(), RenderError> {
        match &cached.html {
            CardHtml::Spliced { html, slots } => {
                let mut from = 0;
                for &(at, slot) in slots {
                    out.push_str(&html[from..at]);
                    mine.push_slot(slot, &self.highlight, out);
                    from = at;
                }
                out.push_str(&html[from..]);
            }
            CardHtml::Uncacheable => {
                let card = PaperCard::new(cached.parts.clone(), mine.clone(), String::new());
                out.push_str(&self.render_card(&card)?);
            }
        }
        Ok(())
    }

    /// Renders a card of `shape` with a stand-in for each per-subscriber part and cuts it there.
    fn render_with_stand_ins(
        &self,
        parts: &PaperParts,
        shape: Shape,
    ) -> Result<CardHtml, RenderError> {
        let stand_ins = SubscriberParts {
            rank: 0,
            snippet: if shape.snippet {
                vec![SnippetPart {
                    text: SNIPPET_MARK.to_string(),
                    highlighted: false,
                }]
            } else {
                Vec::new()
            },
            why: if shape.why {
                WHY_MARK.to_string()
            } else {
                String::new()
            },
            more_url: shape.feedback.then(|| MORE_MARK.to_string()),
            less_url: shape.feedback.then(|| LESS_MARK.to_string()),
        };
        let mut card = tera::to_value(PaperCard::new(parts.clone(), stand_ins, String::new()))
            .map_err(|e| RenderError::template(CARD_TEMPLATE, e.into()))?;
        // The rank is a number in the card; as a stand-in it has to be a string.
        card["rank"] = tera::Value::from(RANK_MARK);
        let rendered = self.render_card(&card)?;

        let expected: Vec<Slot> = Slot::ALL
            .into_iter()
            .filter(|s| match s {
                Slot::Rank => true,
                Slot::Snippet => shape.snippet,
                Slot::Why => shape.why,
                Slot::More | Slot::Less => shape.feedback,
            })
            .collect();
        // Any NUL beyond the stand-ins' own came from the paper's text, and might be read as a
        // stand-in: such a card is not cut at all.
        if rendered.matches('\u{0}').count() != 2 * expected.len() {
            return Ok(CardHtml::Uncacheable);
        }
        let mut found = Vec::with_capacity(expected.len());
        for slot in expected {
            match rendered.match_indices(slot.mark()).next() {
                Some((at, _)) => found.push((at, slot)),
                None => return Ok(CardHtml::Uncacheable),
            }
        }
        found.sort_unstable_by_key(|&(at, _)| at);
        let mut html = String::with_capacity(rendered.len());
        let mut slots = Vec::with_capacity(found.len());
        let mut from = 0;
        for (at, slot) in found {
            html.push_str(&rendered[from..at]);
            slots.push((html.len(), slot));
            from = at + slot.mark().len();
        }
        html.push_str(&rendered[from..]);
        Ok(CardHtml::Spliced { html, slots })
    }

    /// Learns what the card template puts around a highlighted snippet run, and checks that a
    /// snippet built from it is what tera renders; a template whose snippet markup is not of the
    /// assumed shape (plain runs as they are, highlighted ones wrapped, nothing in between) is
    /// refused here rather than rendering digests that differ from the reference.
    pub(super) fn learn_highlight(&self) -> Result<Highlight, RenderError> {
        let probe = |snippet: &[(&str, bool)]| -> Result<String, RenderError> {
            let mine = SubscriberParts {
                rank: 1,
                snippet: runs(snippet),
                why: String::new(),
                more_url: None,
                less_url: None,
            };
            self.render_card(&PaperCard::new(PaperParts::default(), mine, String::new()))
        };
        let unexpected = |what: &str| RenderError::Template {
            template: CARD_TEMPLATE,
            detail: format!("the snippet's markup is not what the card cache assumes: {what}"),
        };
        let learnt = probe(&[
            ("\u{0}1\u{0}", false),
            ("\u{0}2\u{0}", true),
            ("\u{0}3\u{0}", false),
        ])?;
        let between = |a: &str, b: &str| -> Option<String> {
            let start = learnt.find(a)? + a.len();
            let end = start + learnt[start..].find(b)?;
            Some(learnt[start..end].to_string())
        };
        let highlight = Highlight {
            open: between("\u{0}1\u{0}", "\u{0}2\u{0}").ok_or_else(|| unexpected("no runs"))?,
            close: between("\u{0}2\u{0}", "\u{0}3\u{0}").ok_or_else(|| unexpected("no runs"))?,
        };

        let check: &[(&str, bool)] = &[
            ("<a & \"b\">", true),
            (" plain ", false),
            (" 'c' ", false),
            ("d", true),
            ("e", true),
        ];
        let whole = probe(check)?;
        let mut spliced = probe(&[(SNIPPET_MARK, false)])?;
        let mut snippet = String::new();
        push_snippet(&runs(check), &highlight, &mut snippet);
        spliced = spliced.replacen(SNIPPET_MARK, &snippet, 1);
        if whole != spliced {
            return Err(unexpected(&format!(
                "tera gives {whole:?}, splicing {spliced:?}"
            )));
        }
        Ok(highlight)
    }
}

fn runs(parts: &[(&str, bool)]) -> Vec<SnippetPart> {
    parts
        .iter()
        .map(|&(text, highlighted)| SnippetPart {
            text: text.to_string(),
            highlighted,
        })
        .collect()
}

/// The markup around one highlighted snippet run.
#[derive(Default)]
pub(super) struct Highlight {
    open: String,
    close: String,
}

/// The snippet's HTML, as the card template renders it.
fn push_snippet(parts: &[SnippetPart], highlight: &Highlight, out: &mut String) {
    for part in parts {
        if part.highlighted {
            out.push_str(&highlight.open);
            push_escaped(&part.text, out);
            out.push_str(&highlight.close);
        } else {
            push_escaped(&part.text, out);
        }
    }
}

/// A per-subscriber part of a card, cut out of the cached HTML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Rank,
    Snippet,
    Why,
    More,
    Less,
}

impl Slot {
    const ALL: [Slot; 5] = [Slot::Rank, Slot::Snippet, Slot::Why, Slot::More, Slot::Less];

    fn mark(self) -> &'static str {
        match self {
            Slot::Rank => RANK_MARK,
            Slot::Snippet => SNIPPET_MARK,
            Slot::Why => WHY_MARK,
            Slot::More => MORE_MARK,
            Slot::Less => LESS_MARK,
        }
    }
}

/// Which optional parts a card shows: the template leaves out the markup of an absent one, so a
/// cached card is one of these layouts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    snippet: bool,
    why: bool,
    feedback: bool,
}

impl SubscriberParts {
    fn shape(&self) -> Shape {
        Shape {
            snippet: !self.snippet.is_empty(),
            why: !self.why.is_empty(),
            feedback: self.more_url.is_some() && self.less_url.is_some(),
        }
    }

    /// Appends what `slot` stands for, escaped as tera escapes it.
    fn push_slot(&self, slot: Slot, highlight: &Highlight, out: &mut String) {
        match slot {
            Slot::Rank => {
                use std::fmt::Write;
                let _ = write!(out, "{}", self.rank);
            }
            Slot::Snippet => push_snippet(&self.snippet, highlight, out),
            Slot::Why => push_escaped(&self.why, out),
            Slot::More => push_escaped(self.more_url.as_deref().unwrap_or_default(), out),
            Slot::Less => push_escaped(self.less_url.as_deref().unwrap_or_default(), out),
        }
    }
}

/// A card as the cache keeps it.
pub(super) struct CachedCard {
    key: CardKey,
    pub(super) html: CardHtml,
    /// Also what the text part and the inbox preview line show of the paper.
    pub(super) parts: PaperParts,
    /// The text part's fixed blocks at ranks 1, 2, …, made when first needed.
    pub(super) text: [OnceLock<PaperTextFixed>; TEXT_RANKS_KEPT],
}

pub(super) enum CardHtml {
    /// The card without its per-subscriber parts; each slot goes in at its byte offset, in order.
    Spliced {
        html: String,
        slots: Vec<(usize, Slot)>,
    },
    /// The paper's own text contains a NUL: render this card whole every time.
    Uncacheable,
}

/// What a cached card depends on: the paper as given, and its shape. Owned, to compare on a hash
/// match.
#[derive(PartialEq)]
struct CardKey {
    id: String,
    title: String,
    authors: Vec<String>,
    upvotes: Option<i64>,
    urls: [Option<String>; 5],
    categories: Vec<String>,
    doi: Option<String>,
    journal_ref: Option<String>,
    shape: Shape,
}

impl CardKey {
    fn of(p: &DigestPaper, shape: Shape) -> Self {
        CardKey {
            id: p.id.clone(),
            title: p.title.clone(),
            authors: p.authors.clone(),
            upvotes: p.upvotes,
            urls: urls_of(p).map(|u| u.map(str::to_string)),
            categories: p.categories.clone(),
            doi: p.doi.clone(),
            journal_ref: p.journal_ref.clone(),
            shape,
        }
    }

    fn matches(&self, p: &DigestPaper, shape: Shape) -> bool {
        self.shape == shape
            && self.upvotes == p.upvotes
            && self.id == p.id
            && self.title == p.title
            && self.authors == p.authors
            && self.categories == p.categories
            && self.doi == p.doi
            && self.journal_ref == p.journal_ref
            && self
                .urls
                .iter()
                .zip(urls_of(p))
                .all(|(a, b)| a.as_deref() == b)
    }
}

fn urls_of(p: &DigestPaper) -> [Option<&str>; 5] {
    [
        p.abstract_url.as_deref(),
        p.pdf_url.as_deref(),
        p.hf_url.as_deref(),
        p.code_url.as_deref(),
        p.project_url.as_deref(),
    ]
}

/// Id and title tell a day's papers apart; the rest of the key is compared on a match, which is
/// cheaper than hashing it for every card of every digest.
fn card_hash(p: &DigestPaper, shape: Shape) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&p.id, &p.title, shape).hash(&mut h);
    h.finish()
}
