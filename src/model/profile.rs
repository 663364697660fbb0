//! A subscriber's profile beyond the interests query: followed authors, arXiv categories (with
//! how they count) and example papers, parsed at the edge.
//!
//! What it is for: the one place that decides what a valid profile is, so the command line,
//! the manage page and a CSV import refuse the same inputs with the same words. What it is not
//! for: what a profile does to the ranking (`matching`), or storing it (`store::profile`).

use super::PaperId;
use serde::{Deserialize, Serialize};

/// Most followed authors, categories or example papers a profile may hold. A digest ranks the
/// day's papers against every entry, so an unbounded list would be a cost anyone could impose.
pub const MAX_PROFILE_ENTRIES: usize = 50;
/// Longest author name, in characters.
pub const MAX_AUTHOR_LEN: usize = 100;

/// Whether a subscriber's categories narrow the day to those categories or lift their papers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CategoryMode {
    /// Papers in the categories rank higher; others can still be picked.
    #[default]
    Boost,
    /// Only papers in the categories (or by a followed author) are picked.
    Filter,
}

impl CategoryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CategoryMode::Boost => "boost",
            CategoryMode::Filter => "filter",
        }
    }

    /// What a person typed: `boost` or `filter` in any case; empty is the default, `boost`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "boost" => Some(CategoryMode::Boost),
            "filter" => Some(CategoryMode::Filter),
            _ => None,
        }
    }

    /// The stored text. The schema allows only `boost` and `filter`; anything else reads as
    /// the default rather than losing the subscriber's digest.
    pub fn from_stored(s: &str) -> Self {
        Self::parse(s).unwrap_or_default()
    }
}

/// A profile as stored. Lists keep the order given, without blanks or repeats. The default is
/// the empty profile: no authors, categories or examples; categories boost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub authors: Vec<String>,
    /// arXiv categories (`cs.LG`) or whole archives (`cs`).
    pub categories: Vec<String>,
    pub category_mode: CategoryMode,
    /// arXiv ids (without version) of papers the subscriber gave as examples.
    pub examples: Vec<String>,
}

/// Which part of a profile was refused, and why, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "the author `{0}` is not a name: use letters, spaces and punctuation, at most {MAX_AUTHOR_LEN} characters"
    )]
    Author(String),
    #[error(
        "`{0}` is not an arXiv category: write one like cs.LG, stat.ML, astro-ph.CO or a whole archive like cs"
    )]
    Category(String),
    #[error(
        "`{0}` is not a category mode: use boost (papers in the categories rank higher) or filter (only those papers)"
    )]
    Mode(String),
    #[error("`{0}` is not an arXiv paper: give an id such as 2410.17243 or its arxiv.org link")]
    Example(String),
    #[error("too many {what} ({count}); keep at most {MAX_PROFILE_ENTRIES}")]
    TooMany { what: &'static str, count: usize },
}

impl ProfileError {
    /// The field the error belongs to: `authors`, `categories`, `category_mode` or `examples`.
    pub fn field(&self) -> &'static str {
        match self {
            ProfileError::Author(_) => "authors",
            ProfileError::Category(_) => "categories",
            ProfileError::Mode(_) => "category_mode",
            ProfileError::Example(_) => "examples",
            ProfileError::TooMany { what, .. } => what,
        }
    }
}

impl Profile {
    pub fn is_empty(&self) -> bool {
        self.authors.is_empty() && self.categories.is_empty() && self.examples.is_empty()
    }

    /// Checks and normalises a profile from what a person typed: entries trimmed, blanks and
    /// repeats (ignoring case) dropped, example papers reduced to their arXiv id. Every problem
    /// is reported, not just the first.
    pub fn parse<A, C, E>(
        authors: A,
        categories: C,
        mode: &str,
        examples: E,
    ) -> Result<Profile, Vec<ProfileError>>
    where
        A: IntoIterator,
        A::Item: AsRef<str>,
        C: IntoIterator,
        C::Item: AsRef<str>,
        E: IntoIterator,
        E::Item: AsRef<str>,
    {
        let mut errors = Vec::new();
        let authors = distinct(authors);
        for a in &authors {
            if a.chars().count() > MAX_AUTHOR_LEN
                || a.chars().any(char::is_control)
                || !a.chars().any(char::is_alphabetic)
            {
                errors.push(ProfileError::Author(a.clone()));
            }
        }
        let categories = distinct(categories);
        for c in &categories {
            if !is_category(c) {
                errors.push(ProfileError::Category(c.clone()));
            }
        }
        let category_mode = CategoryMode::parse(mode).unwrap_or_else(|| {
            errors.push(ProfileError::Mode(mode.trim().to_ascii_lowercase()));
            CategoryMode::Boost
        });
        let mut ids: Vec<String> = Vec::new();
        for raw in distinct(examples) {
            match PaperId::parse_arxiv(&raw) {
                Ok(id) if !ids.iter().any(|i| i == id.as_str()) => {
                    ids.push(id.as_str().to_string())
                }
                Ok(_) => {}
                Err(_) => errors.push(ProfileError::Example(raw)),
            }
        }
        for (what, count) in [
            ("authors", authors.len()),
            ("categories", categories.len()),
            ("examples", ids.len()),
        ] {
            if count > MAX_PROFILE_ENTRIES {
                errors.push(ProfileError::TooMany { what, count });
            }
        }
        if errors.is_empty() {
            Ok(Profile {
                authors,
                categories,
                category_mode,
                examples: ids,
            })
        } else {
            Err(errors)
        }
    }
}

/// Splits a typed list: one entry per line or between commas (`Yann LeCun, Yoshua Bengio`).
pub fn split_list(text: &str) -> Vec<String> {
    text.split([',', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn distinct<I>(items: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let s = item
            .as_ref()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !s.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&s)) {
            out.push(s);
        }
    }
    out
}

/// An arXiv archive (`cs`, `astro-ph`, `q-bio`) optionally followed by a subject class
/// (`cs.LG`, `cond-mat.mes-hall`, `physics.acc-ph`).
fn is_category(c: &str) -> bool {
    let (archive, subject) = match c.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (c, None),
    };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 16
            && p.starts_with(|ch: char| ch.is_ascii_alphabetic())
            && p.chars().all(|ch| ch.is_ascii_alphabetic() || ch == '-')
    };
    part_ok(archive)
        && archive.chars().all(|ch| !ch.is_ascii_uppercase())
        && subject.is_none_or(part_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_profile_is_trimmed_deduplicated_and_normalised() {
        let p = Profile::parse(
            split_list("Yoshua  Bengio,\nyoshua bengio ; Fei-Fei Li,"),
            split_list("cs.LG, stat.ML, cond-mat.mes-hall, astro-ph"),
            "Filter",
            split_list("https://arxiv.org/abs/2410.17243v2, arXiv:2410.17243, quant-ph/0210005"),
        )
        .unwrap();
        assert_eq!(p.authors, ["Yoshua Bengio", "Fei-Fei Li"]);
        assert_eq!(
            p.categories,
            ["cs.LG", "stat.ML", "cond-mat.mes-hall", "astro-ph"]
        );
        assert_eq!(p.category_mode, CategoryMode::Filter);
        assert_eq!(p.examples, ["2410.17243", "quant-ph/0210005"]);
        assert!(!p.is_empty());
        assert!(
            Profile::parse(
                Vec::<String>::new(),
                Vec::<String>::new(),
                "",
                Vec::<String>::new()
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn every_bad_entry_is_named_with_its_field() {
        let errors = Profile::parse(
            ["1234", "Ada\u{7}Lovelace"],
            ["cs.LG", "Computer Science", "MATH.ag", "cs."],
            "sometimes",
            ["2410.17243", "not-a-paper"],
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(ProfileError::field).collect();
        assert_eq!(
            fields,
            [
                "authors",
                "authors",
                "categories",
                "categories",
                "categories",
                "category_mode",
                "examples"
            ]
        );
        assert!(errors[2].to_string().contains("`Computer Science`"));
        assert!(
            errors[6].to_string().contains("2410.17243"),
            "{}",
            errors[6]
        );
    }

    #[test]
    fn lists_are_bounded() {
        let many: Vec<String> = (0..=MAX_PROFILE_ENTRIES)
            .map(|i| format!("Author {i}"))
            .collect();
        let errors =
            Profile::parse(many, Vec::<String>::new(), "boost", Vec::<String>::new()).unwrap_err();
        assert_eq!(
            errors,
            [ProfileError::TooMany {
                what: "authors",
                count: MAX_PROFILE_ENTRIES + 1
            }]
        );
    }
}
