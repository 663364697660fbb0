//! Subscribers and the small types that describe when and what they receive.

use super::EmailAddress;
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

/// What a subscriber cares about, as they typed it: words and "quoted phrases" (the matcher
/// decides what the syntax means and rejects what it cannot parse; this type only guarantees a
/// sane, bounded, single-line string).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Interests(String);

pub const MAX_INTERESTS_LEN: usize = 2000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterestsError {
    #[error(
        "the interests are empty; give a few words or \"quoted phrases\", e.g. diffusion \"protein folding\""
    )]
    Empty,
    #[error("the interests are {0} characters long; keep them under {MAX_INTERESTS_LEN}")]
    TooLong(usize),
    #[error(
        "the interests contain a control character at position {0}; use plain text on one line"
    )]
    ControlCharacter(usize),
}

impl Interests {
    pub fn parse(input: &str) -> Result<Self, InterestsError> {
        let t = input.trim();
        if t.is_empty() {
            return Err(InterestsError::Empty);
        }
        let len = t.chars().count();
        if len > MAX_INTERESTS_LEN {
            return Err(InterestsError::TooLong(len));
        }
        if let Some((i, _)) = t.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(InterestsError::ControlCharacter(i + 1));
        }
        Ok(Interests(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
    pub max_papers: u32,
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
    fn interests_are_bounded_single_line() {
        assert_eq!(
            Interests::parse("  diffusion ").unwrap().as_str(),
            "diffusion"
        );
        assert_eq!(Interests::parse(" ").unwrap_err(), InterestsError::Empty);
        assert!(matches!(
            Interests::parse("a\nb"),
            Err(InterestsError::ControlCharacter(2))
        ));
        assert!(Interests::parse(&"x".repeat(3000)).is_err());
    }
}
