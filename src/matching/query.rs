//! The interests' query language: tantivy's parser, a pre-scan that places unclosed quotes and
//! parentheses, errors in words for the person who typed them, and the loose phrase added to
//! plain words.
//!
//! What it is for: turning interests into a query, or saying what is wrong with them and where.
//! What it is not for: the limits on what may be typed (`model::Interests`) or scoring (`rank`).

use super::explain::push_unique;
use super::index::CandidateIndex;
use crate::model::Interests;
use std::sync::LazyLock;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, QueryParserError};

/// Weight of the loose phrase added to plain multi-word interests (see `with_proximity`).
const PROXIMITY_BOOST: f32 = 1.0;
/// Words of a loose phrase may stand this many positions apart ("libraries in academia").
const PROXIMITY_SLOP: u32 = 2;

/// Interests that ask for no topic at all: the day's most-upvoted papers (within the
/// subscriber's categories, if they chose some), like Hugging Face's own email.
pub const TRENDING_ONLY: &str = "*";

/// Why interests could not be understood, for the person who typed them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot understand the interests `{input}`: {problem}. {hint}")]
pub struct InterestsSyntaxError {
    pub input: String,
    /// What is wrong, naming the character position when it is known ("at character 12").
    pub problem: String,
    pub hint: String,
    /// 1-based character position of the fault, when known.
    pub position: Option<usize>,
}

/// The terms of a parsed query, by field, for explanations.
#[derive(Default)]
pub(super) struct QueryTerms {
    /// Ids (in [`CandidateIndex::vocabulary`]) of stemmed title and abstract terms.
    pub(super) text: Vec<u32>,
    /// Folded words asked for with `author:`.
    pub(super) author: Vec<String>,
    /// Lower-cased categories asked for with `cat:`.
    pub(super) category: Vec<String>,
}

impl CandidateIndex {
    /// Parses interests into a query, or says what is wrong with them and where.
    pub fn parse_interests(&self, interests: &str) -> Result<Box<dyn Query>, InterestsSyntaxError> {
        if let Some(e) = prescan(interests) {
            return Err(e);
        }
        self.parser
            .parse_query(interests)
            .map_err(|e| explain_parse_error(interests, e))
    }

    /// Plain words (no quotes, operators, fields or parentheses) also count as a loose phrase:
    /// a paper where they stand together ("academic libraries") ranks above one that uses
    /// them apart, as search engines do for unquoted queries. Anything with syntax is left as
    /// the subscriber wrote it.
    pub(super) fn with_proximity(&self, text: &str, query: Box<dyn Query>) -> Box<dyn Query> {
        let plain = text
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '\'');
        let words: Vec<&str> = text.split_whitespace().collect();
        if !plain
            || words.len() < 2
            || words
                .iter()
                .any(|w| w.starts_with('-') || ["AND", "OR", "NOT"].contains(w))
        {
            return query;
        }
        let Ok(phrase) = self
            .parser
            .parse_query(&format!("\"{}\"~{PROXIMITY_SLOP}", words.join(" ")))
        else {
            return query;
        };
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, query),
            (
                Occur::Should,
                Box::new(BoostQuery::new(phrase, PROXIMITY_BOOST)),
            ),
        ]))
    }

    pub(super) fn query_terms(&self, query: &dyn Query) -> QueryTerms {
        let mut terms = QueryTerms::default();
        query.query_terms(&mut |term, _| {
            let value = term.value();
            let Some(text) = value.as_str() else {
                return;
            };
            let field = term.field();
            if field == self.fields.title
                || field == self.fields.abstract_text
                || field == self.fields.text
            {
                if let Some(&id) = self.vocabulary.get(text)
                    && !terms.text.contains(&id)
                {
                    terms.text.push(id);
                }
            } else if field == self.fields.author {
                push_unique(&mut terms.author, text.to_string());
            } else if field == self.fields.cat {
                push_unique(&mut terms.category, text.to_string());
            }
        });
        terms
    }
}

/// Whether interests parse: the one syntax check of the CLI, CSV import and the web forms.
/// Taking [`Interests`] means the limits on what may be typed were checked before any parser
/// runs (invariant 12). The parser is that of an index of no papers, built once per process
/// rather than per call: building one (schema, tokenizers, an empty tantivy index) is not work
/// to repeat for every row of a CSV import or every form sent.
pub fn check_interests(interests: &Interests) -> Result<(), InterestsSyntaxError> {
    static NO_PAPERS: LazyLock<Result<CandidateIndex, String>> =
        LazyLock::new(|| CandidateIndex::build(std::iter::empty()).map_err(|e| e.to_string()));
    let text = interests.as_str();
    if text == TRENDING_ONLY {
        return Ok(());
    }
    match &*NO_PAPERS {
        Ok(index) => index.parse_interests(text).map(|_| ()),
        Err(e) => Err(InterestsSyntaxError {
            input: text.to_string(),
            problem: e.clone(),
            hint: String::new(),
            position: None,
        }),
    }
}

/// Finds the faults tantivy reports without a position: a quote or parenthesis left open, a
/// parenthesis closed that was never opened. Returns the first, with its 1-based character
/// position. The parse itself stays tantivy's.
fn prescan(input: &str) -> Option<InterestsSyntaxError> {
    let mut open_quote: Option<usize> = None;
    let mut open_parens: Vec<usize> = Vec::new();
    for (pos, c) in input.chars().enumerate().map(|(i, c)| (i + 1, c)) {
        match c {
            '"' => {
                open_quote = if open_quote.is_some() {
                    None
                } else {
                    Some(pos)
                }
            }
            '(' if open_quote.is_none() => open_parens.push(pos),
            ')' if open_quote.is_none() && open_parens.pop().is_none() => {
                return Some(positioned(
                    input,
                    pos,
                    "this closing parenthesis `)` has no opening one",
                    "Remove it or add a `(` before it, e.g. (diffusion OR flow) \"protein folding\"",
                ));
            }
            _ => {}
        }
    }
    if let Some(pos) = open_quote {
        return Some(positioned(
            input,
            pos,
            "this quote \" is never closed",
            "Close the quote to search for the exact phrase, e.g. \"protein folding\"",
        ));
    }
    open_parens.first().map(|&pos| {
        positioned(
            input,
            pos,
            "this parenthesis `(` is never closed",
            "Close it with `)`, e.g. (diffusion OR flow) protein",
        )
    })
}

fn positioned(input: &str, pos: usize, problem: &str, hint: &str) -> InterestsSyntaxError {
    InterestsSyntaxError {
        input: input.to_string(),
        problem: format!("at character {pos}, {problem}"),
        hint: hint.to_string(),
        position: Some(pos),
    }
}

/// The 1-based character position where `needle` starts in `input`, ignoring case.
fn char_position(input: &str, needle: &str) -> Option<usize> {
    let lower = input.to_lowercase();
    let byte = lower.find(&needle.to_lowercase())?;
    Some(lower[..byte].chars().count() + 1)
}

fn explain_parse_error(input: &str, e: QueryParserError) -> InterestsSyntaxError {
    let (problem, hint, position) = match &e {
        QueryParserError::SyntaxError(detail) => (
            format!("the syntax is not valid ({detail})"),
            "Check that every quote \" and parenthesis is closed and that AND, OR and NOT stand \
             between two words, e.g. diffusion AND \"protein folding\"",
            None,
        ),
        QueryParserError::FieldDoesNotExist(field) => {
            let position = char_position(input, &format!("{field}:"));
            (
                format!("there is no field `{field}:`"),
                "The fields are title:, abstract:, author: and cat: (e.g. author:\"Yoshua Bengio\", \
                 cat:cs.LG); to search for a word with a colon, quote it",
                position,
            )
        }
        QueryParserError::AllButQueryForbidden => (
            "it only excludes words".to_string(),
            "Say what you want as well, e.g. diffusion -video",
            None,
        ),
        QueryParserError::NoDefaultFieldDeclared => (
            "no default field".to_string(),
            "This is a bug in paperboy; please report it",
            None,
        ),
        other => (
            other.to_string(),
            "Use plain words and \"quoted phrases\", e.g. diffusion \"protein folding\"",
            None,
        ),
    };
    InterestsSyntaxError {
        input: input.to_string(),
        problem: match position {
            Some(p) => format!("at character {p}, {problem}"),
            None => problem,
        },
        hint: hint.to_string(),
        position,
    }
}
