//! Subscribers and the small types that describe when and what they receive.

use super::EmailAddress;
use super::text::{self, Unseen};
use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriberId(pub i64);

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a subscription stands. Only `Active` subscribers are ever mailed a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// Signed up, has not confirmed yet: no digest goes out.
    Pending,
    Active,
    Paused,
    Unsubscribed,
    /// Too many hard bounces: mailed again only after re-confirming.
    Suspended,
}

impl SubscriberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Unsubscribed => "unsubscribed",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "paused" => Self::Paused,
            "unsubscribed" => Self::Unsubscribed,
            "suspended" => Self::Suspended,
            _ => return None,
        })
    }
}

/// How often a subscriber wants a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frequency {
    Daily,
    /// Monday to Friday in the subscriber's time zone.
    Weekdays,
    Weekly(Weekday),
}

impl Frequency {
    /// Whether a digest is due on this local date.
    pub fn includes(self, date: NaiveDate) -> bool {
        match self {
            Frequency::Daily => true,
            Frequency::Weekdays => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
            Frequency::Weekly(day) => date.weekday() == day,
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frequency::Daily => f.write_str("daily"),
            Frequency::Weekdays => f.write_str("weekdays"),
            Frequency::Weekly(d) => write!(f, "weekly:{}", d.to_string().to_ascii_lowercase()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a frequency; use `daily`, `weekdays` or `weekly:<day>` (e.g. `weekly:mon`)")]
pub struct FrequencyError(String);

impl FromStr for Frequency {
    type Err = FrequencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "daily" => Ok(Frequency::Daily),
            "weekdays" => Ok(Frequency::Weekdays),
            _ => t
                .strip_prefix("weekly:")
                .and_then(|d| d.parse::<Weekday>().ok())
                .map(Frequency::Weekly)
                .ok_or_else(|| FrequencyError(s.to_string())),
        }
    }
}

impl Serialize for Frequency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The local wall-clock time at which a subscriber wants their digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SendTime(pub NaiveTime);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a time of day; write it as HH:MM in 24-hour time, e.g. 07:00")]
pub struct SendTimeError(String);

impl FromStr for SendTime {
    type Err = SendTimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map(SendTime)
            .map_err(|_| SendTimeError(s.to_string()))
    }
}

impl fmt::Display for SendTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M"))
    }
}

impl Serialize for SendTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An IANA time zone name, checked against the tz database that chrono-tz ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZoneName(pub chrono_tz::Tz);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not an IANA time zone; use a name such as UTC, Europe/Paris or America/Los_Angeles"
)]
pub struct TimeZoneError(String);

impl FromStr for TimeZoneName {
    type Err = TimeZoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<chrono_tz::Tz>()
            .map(TimeZoneName)
            .map_err(|_| TimeZoneError(s.to_string()))
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Serialize for TimeZoneName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The most papers one digest may carry. Every path that sets it (the command line, a CSV
/// import, the manage page, `digest.max_papers`, a stored row) goes through [`MaxPapers::new`]
/// or its `FromStr`, so the range is decided here alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MaxPapers(u32);

impl MaxPapers {
    pub const MIN: u32 = 1;
    /// A digest is read in one sitting; more papers than this is a listing, not a digest.
    pub const MAX: u32 = 100;

    pub fn new(n: u32) -> Result<Self, MaxPapersError> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(MaxPapers(n))
        } else {
            Err(MaxPapersError(n.to_string()))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// What is allowed, in words: "a whole number from 1 to 100".
    pub fn allowed() -> String {
        format!("a whole number from {} to {}", Self::MIN, Self::MAX)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a number of papers per digest; use {allowed}", allowed = MaxPapers::allowed())]
pub struct MaxPapersError(String);

impl FromStr for MaxPapers {
    type Err = MaxPapersError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<u32>()
            .ok()
            .and_then(|n| MaxPapers::new(n).ok())
            .ok_or_else(|| MaxPapersError(s.to_string()))
    }
}

impl fmt::Display for MaxPapers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a subscriber cares about, as they typed it: words and "quoted phrases" (the matcher
/// decides what the syntax means and rejects what it cannot parse; this type guarantees a sane,
/// bounded, single-line string that no parser can choke on).
///
/// Any Unicode whitespace (a tab, a line break from a pasted list) becomes one space. The
/// bounds on nesting and on the number of words are what no person types: tantivy 0.24's query
/// grammar took time doubling with each level of parentheses, and every path to the parser
/// (web forms, preview, CLI, CSV import) comes through here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Interests(String);

pub const MAX_INTERESTS_LEN: usize = 2000;
/// Levels of parentheses: `((a OR b) AND c) -d` is two.
pub const MAX_INTERESTS_NESTING: usize = 4;
/// Words and quoted phrases (a phrase counts once; AND, OR, NOT do not count).
pub const MAX_INTERESTS_CLAUSES: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterestsError {
    #[error(
        "the interests are empty; give a few words or \"quoted phrases\", e.g. diffusion \"protein folding\""
    )]
    Empty,
    #[error("the interests are {0} characters long; keep them under {MAX_INTERESTS_LEN}")]
    TooLong(usize),
    #[error(
        "the interests contain a control character (U+{code:04X}) at character {position}; use plain text"
    )]
    ControlCharacter { position: usize, code: u32 },
    #[error(
        "the interests contain an invisible formatting character (U+{code:04X}, a direction \
         override or zero-width mark) at character {position}; delete it, or retype that part"
    )]
    InvisibleCharacter { position: usize, code: u32 },
    #[error(
        "the interests nest parentheses {0} levels deep; at most {MAX_INTERESTS_NESTING} are \
         allowed. Put groups side by side instead, e.g. (diffusion OR flow) AND (protein OR molecule)"
    )]
    TooDeep(usize),
    #[error(
        "the interests have {0} words and phrases; at most {MAX_INTERESTS_CLAUSES} are allowed. \
         Keep the ones that matter most (papers need not contain them all), or add example \
         papers to your profile"
    )]
    TooManyClauses(usize),
}

impl Interests {
    pub fn parse(input: &str) -> Result<Self, InterestsError> {
        // Positions count characters of the input as given, so the person can find the fault.
        // Whitespace of any kind becomes a space below; every other unseen character
        // (`model::text`) only hides what the query says.
        for (i, c) in input.chars().enumerate() {
            let (position, code) = (i + 1, c as u32);
            match text::unseen(c) {
                _ if c.is_whitespace() => {}
                Some(Unseen::Control) => {
                    return Err(InterestsError::ControlCharacter { position, code });
                }
                Some(_) => return Err(InterestsError::InvisibleCharacter { position, code }),
                None => {}
            }
        }
        let t = input.split_whitespace().collect::<Vec<_>>().join(" ");
        if t.is_empty() {
            return Err(InterestsError::Empty);
        }
        // Nesting first: it names the fault of a hostile query better than its length does.
        let shape = Shape::of(&t);
        if shape.depth > MAX_INTERESTS_NESTING {
            return Err(InterestsError::TooDeep(shape.depth));
        }
        let len = t.chars().count();
        if len > MAX_INTERESTS_LEN {
            return Err(InterestsError::TooLong(len));
        }
        if shape.clauses > MAX_INTERESTS_CLAUSES {
            return Err(InterestsError::TooManyClauses(shape.clauses));
        }
        Ok(Interests(t))
    }

    /// Interests read back from the database. Rows stored before the limits on nesting, words
    /// and invisible characters still read, so their subscribers keep getting digests (tantivy
    /// 0.27 parses any nesting quickly); changing them goes through [`Interests::parse`].
    pub fn from_stored(stored: &str) -> Result<Self, InterestsError> {
        match Interests::parse(stored) {
            Err(
                InterestsError::TooDeep(_)
                | InterestsError::TooManyClauses(_)
                | InterestsError::InvisibleCharacter { .. },
            ) => Ok(Interests(stored.trim().to_string())),
            other => other,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How deep the parentheses go and how many words and phrases there are: a scan that knows only
/// quotes and parentheses (the rest of the syntax is the matcher's).
struct Shape {
    depth: usize,
    clauses: usize,
}

impl Shape {
    fn of(text: &str) -> Shape {
        let (mut depth, mut open, mut clauses) = (0usize, 0usize, 0usize);
        let mut word = String::new();
        let mut in_quote = false;
        fn end_word(word: &mut String, clauses: &mut usize) {
            let operator = matches!(word.as_str(), "AND" | "OR" | "NOT" | "&&" | "||")
                || word.chars().all(|c| c == '+' || c == '-');
            if !operator {
                *clauses += 1;
            }
            word.clear();
        }
        for c in text.chars() {
            if in_quote {
                in_quote = c != '"';
                continue;
            }
            match c {
                '"' => {
                    // A phrase is one clause, with any field prefix before it (`title:"a b"`).
                    in_quote = true;
                    word.push(c);
                }
                '(' => {
                    end_word(&mut word, &mut clauses);
                    open += 1;
                    depth = depth.max(open);
                }
                ')' => {
                    end_word(&mut word, &mut clauses);
                    open = open.saturating_sub(1);
                }
                c if c.is_whitespace() => end_word(&mut word, &mut clauses),
                c => word.push(c),
            }
        }
        end_word(&mut word, &mut clauses);
        Shape { depth, clauses }
    }
}

/// The local calendar date a digest belongs to. One digest per subscriber per date.
pub type DigestDate = NaiveDate;

#[derive(Clone, Debug, Serialize)]
pub struct Subscriber {
    pub id: SubscriberId,
    pub email: EmailAddress,
    pub status: SubscriberStatus,
    pub interests: Interests,
    pub frequency: Frequency,
    pub send_time: SendTime,
    pub timezone: TimeZoneName,
    pub max_papers: MaxPapers,
    /// Bumped to revoke the manage, feedback and digest links mailed so far (`jobs::revoke`);
    /// unsubscribe links survive it.
    pub token_version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_round_trip() {
        for s in ["daily", "weekdays", "weekly:mon", "weekly:sun"] {
            assert_eq!(s.parse::<Frequency>().unwrap().to_string(), s);
        }
        assert!("fortnightly".parse::<Frequency>().is_err());
        assert!("weekly:funday".parse::<Frequency>().is_err());
    }

    #[test]
    fn weekdays_skip_the_weekend() {
        let sat = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let mon = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert!(!Frequency::Weekdays.includes(sat));
        assert!(Frequency::Weekdays.includes(mon));
        assert!(Frequency::Weekly(Weekday::Mon).includes(mon));
        assert!(!Frequency::Weekly(Weekday::Mon).includes(sat));
    }

    #[test]
    fn send_time_and_zone_parse() {
        assert_eq!("7:05".parse::<SendTime>().unwrap().to_string(), "07:05");
        assert!("25:00".parse::<SendTime>().is_err());
        assert_eq!(
            "Pacific/Auckland"
                .parse::<TimeZoneName>()
                .unwrap()
                .to_string(),
            "Pacific/Auckland"
        );
        let err = "Mars/Olympus".parse::<TimeZoneName>().unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"));
    }

    #[test]
    fn max_papers_is_one_to_a_hundred() {
        assert_eq!(" 50 ".parse::<MaxPapers>().unwrap().get(), 50);
        assert_eq!(MaxPapers::new(1).unwrap().to_string(), "1");
        assert_eq!(MaxPapers::new(100).unwrap().get(), 100);
        for bad in ["0", "101", "1000", "-3", "ten", ""] {
            let err = bad.parse::<MaxPapers>().unwrap_err();
            assert!(err.to_string().contains("from 1 to 100"), "{err}");
        }
        assert!(MaxPapers::new(0).is_err());
        assert!(MaxPapers::new(101).is_err());
    }

    #[test]
    fn interests_are_bounded_single_line() {
        assert_eq!(
            Interests::parse("  diffusion ").unwrap().as_str(),
            "diffusion"
        );
        assert_eq!(Interests::parse(" ").unwrap_err(), InterestsError::Empty);
        assert_eq!(
            Interests::parse(" \t\r\n ").unwrap_err(),
            InterestsError::Empty
        );
        assert!(matches!(
            Interests::parse(&"x".repeat(3000)),
            Err(InterestsError::TooLong(3000))
        ));
    }

    #[test]
    fn any_whitespace_is_one_space() {
        // A tab, line breaks from a pasted list, NEL, no-break and ideographic spaces.
        let pasted =
            "\"protein folding\"\tdiffusion\r\nflow\u{85}matching\u{A0}x\u{3000}y\u{2028}z";
        assert_eq!(
            Interests::parse(pasted).unwrap().as_str(),
            "\"protein folding\" diffusion flow matching x y z"
        );
    }

    #[test]
    fn control_and_invisible_characters_are_refused_with_their_position() {
        assert_eq!(
            Interests::parse("ab\u{7}c").unwrap_err(),
            InterestsError::ControlCharacter {
                position: 3,
                code: 7
            }
        );
        assert_eq!(
            Interests::parse("a\0").unwrap_err(),
            InterestsError::ControlCharacter {
                position: 2,
                code: 0
            }
        );
        for (c, code) in [
            ('\u{202E}', 0x202E),
            ('\u{202A}', 0x202A),
            ('\u{2066}', 0x2066),
            ('\u{2069}', 0x2069),
            ('\u{200B}', 0x200B),
            ('\u{200D}', 0x200D),
            ('\u{FEFF}', 0xFEFF),
        ] {
            let err = Interests::parse(&format!("diffusion {c}flow")).unwrap_err();
            assert_eq!(
                err,
                InterestsError::InvisibleCharacter { position: 11, code }
            );
            assert!(err.to_string().contains("character 11"), "{err}");
        }
        // The same rule as addresses (`model::text`): soft hyphens, variation selectors and
        // the Arabic letter mark hide in interests as well.
        for (c, code) in [('\u{AD}', 0xAD), ('\u{FE0F}', 0xFE0F), ('\u{061C}', 0x61C)] {
            assert_eq!(
                Interests::parse(&format!("ab{c}")).unwrap_err(),
                InterestsError::InvisibleCharacter { position: 3, code }
            );
        }
        assert_eq!(
            Interests::parse("ab\u{9F}").unwrap_err(),
            InterestsError::ControlCharacter {
                position: 3,
                code: 0x9F
            }
        );
        // Letters outside ASCII are text, not format characters.
        assert!(Interests::parse("Schrödinger équation 量子").is_ok());
    }

    #[test]
    fn nesting_deeper_than_people_write_is_refused() {
        let nested = |depth: usize| format!("{}memory{}", "(".repeat(depth), ")".repeat(depth));
        assert!(Interests::parse(&nested(MAX_INTERESTS_NESTING)).is_ok());
        assert!(Interests::parse("((diffusion OR flow) AND (protein OR molecule)) -video").is_ok());
        for depth in [MAX_INTERESTS_NESTING + 1, 26, 1000] {
            let err = Interests::parse(&nested(depth)).unwrap_err();
            assert_eq!(err, InterestsError::TooDeep(depth));
            let message = err.to_string();
            assert!(
                message.contains(&format!("{depth} levels deep")),
                "{message}"
            );
            assert!(message.contains("at most 4"), "{message}");
            assert!(message.contains("side by side"), "{message}");
        }
        // Parentheses inside a phrase are text.
        let quoted = format!("\"{}\"", "(".repeat(30));
        assert!(Interests::parse(&quoted).is_ok());
    }

    #[test]
    fn rows_stored_before_the_limits_still_read() {
        for stored in [
            "((((((memory))))))".to_string(),
            vec!["w"; 70].join(" "),
            "diffusion \u{200B}flow".to_string(),
        ] {
            assert!(Interests::parse(&stored).is_err());
            assert_eq!(Interests::from_stored(&stored).unwrap().as_str(), stored);
        }
        assert_eq!(
            Interests::from_stored(" ").unwrap_err(),
            InterestsError::Empty
        );
    }

    #[test]
    fn more_words_than_people_write_are_refused() {
        let words = |n: usize| vec!["w"; n].join(" ");
        assert!(Interests::parse(&words(MAX_INTERESTS_CLAUSES)).is_ok());
        assert_eq!(
            Interests::parse(&words(MAX_INTERESTS_CLAUSES + 1)).unwrap_err(),
            InterestsError::TooManyClauses(MAX_INTERESTS_CLAUSES + 1)
        );
        // A phrase counts once, operators and signs not at all.
        let phrase = format!("\"{}\" AND +x OR -y NOT -(z)", words(200));
        assert_eq!(Shape::of(&phrase).clauses, 4);
        assert_eq!(Shape::of("title:\"state space\" author:x").clauses, 2);
    }
}
