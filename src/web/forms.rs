//! The subscribe and manage forms: their fields, turning them into domain types, and what the
//! templates need to show them again (with the visitor's values and what to fix).
//!
//! Every message names the field and says what to write instead. Nothing here touches the
//! database.

use crate::config::Settings;
use crate::matching::{InterestsSyntaxError, check_interests};
use crate::model::{
    CategoryMode, EmailAddress, Frequency, Interests, MaxPapers, Profile, SendTime, Subscriber,
    TimeZoneName, split_list,
};
use crate::store::Preferences;
use chrono::Weekday;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Every field any of our forms sends. All optional: a missing field is reported by the parser
/// with a message, rather than rejected by the extractor with a bare 422.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Fields {
    pub email: Option<String>,
    pub interests: Option<String>,
    pub time: Option<String>,
    pub timezone: Option<String>,
    pub frequency: Option<String>,
    pub weekday: Option<String>,
    pub max_papers: Option<String>,
    /// Followed authors, one a line (or comma-separated).
    pub authors: Option<String>,
    /// arXiv categories, comma-separated.
    pub categories: Option<String>,
    /// `boost` or `filter`.
    pub category_mode: Option<String>,
    /// Example papers: arXiv ids or links, one a line.
    pub examples: Option<String>,
    /// The honeypot: hidden from people, filled in by naive bots.
    pub website: Option<String>,
    pub csrf: Option<String>,
    pub action: Option<String>,
    pub confirm_delete: Option<String>,
    pub vote: Option<String>,
}

/// A problem with one field, shown at the top of the form and linked to the field.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// The form's values as the template shows them.
#[derive(Debug, Clone, Serialize)]
pub struct FormView {
    pub email: String,
    pub interests: String,
    pub time: String,
    pub timezone: String,
    /// True on a fresh sign-up form: the page's script may set the browser's time zone.
    pub timezone_auto: bool,
    /// `daily`, `weekdays` or `weekly`.
    pub frequency: String,
    pub weekday: String,
    pub max_papers: String,
    /// Followed authors, one a line.
    pub authors: String,
    /// Categories, comma-separated.
    pub categories: String,
    pub category_mode: String,
    /// Example papers, one a line.
    pub examples: String,
}

#[derive(Serialize)]
pub struct WeekdayOption {
    value: &'static str,
    label: &'static str,
}

pub const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

pub fn weekday_options() -> Vec<WeekdayOption> {
    WEEKDAYS
        .iter()
        .map(|&(value, label)| WeekdayOption { value, label })
        .collect()
}

/// Every IANA zone name chrono-tz knows, sorted, for the select.
pub static TIMEZONES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut names: Vec<&'static str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    names.sort_unstable();
    names
});

impl FormView {
    /// A blank sign-up form with the configured defaults.
    pub fn defaults(settings: &Settings) -> Self {
        FormView {
            email: String::new(),
            interests: String::new(),
            time: settings.schedule.send_time.to_string(),
            timezone: settings.schedule.timezone.to_string(),
            timezone_auto: true,
            frequency: "daily".into(),
            weekday: "mon".into(),
            max_papers: settings.digest.max_papers.to_string(),
            authors: String::new(),
            categories: String::new(),
            category_mode: CategoryMode::default().as_str().into(),
            examples: String::new(),
        }
    }

    /// A subscriber's current settings.
    pub fn of(subscriber: &Subscriber) -> Self {
        let (frequency, weekday) = split_frequency(subscriber.frequency);
        FormView {
            email: subscriber.email.to_string(),
            interests: subscriber.interests.as_str().to_string(),
            time: subscriber.send_time.to_string(),
            timezone: subscriber.timezone.to_string(),
            timezone_auto: false,
            frequency,
            weekday,
            max_papers: subscriber.max_papers.to_string(),
            authors: String::new(),
            categories: String::new(),
            category_mode: CategoryMode::default().as_str().into(),
            examples: String::new(),
        }
    }

    /// The profile's fields filled from what is stored.
    pub fn with_profile(mut self, profile: &Profile) -> Self {
        self.authors = profile.authors.join("\n");
        self.categories = profile.categories.join(", ");
        self.category_mode = profile.category_mode.as_str().into();
        self.examples = profile.examples.join("\n");
        self
    }

    /// What the visitor sent, over `base` for the fields they did not send.
    pub fn with_fields(mut self, f: &Fields) -> Self {
        let pick = |v: &Option<String>, into: &mut String| {
            if let Some(v) = v {
                *into = v.clone();
            }
        };
        pick(&f.email, &mut self.email);
        pick(&f.interests, &mut self.interests);
        pick(&f.time, &mut self.time);
        if let Some(tz) = &f.timezone {
            self.timezone = tz.clone();
            self.timezone_auto = false;
        }
        if let Some(freq) = &f.frequency {
            match freq.parse::<Frequency>() {
                Ok(parsed) => {
                    let (kind, day) = split_frequency(parsed);
                    self.frequency = kind;
                    if parsed != Frequency::Daily && parsed != Frequency::Weekdays {
                        self.weekday = day;
                    }
                }
                Err(_) => self.frequency = freq.clone(),
            }
        }
        pick(&f.weekday, &mut self.weekday);
        pick(&f.max_papers, &mut self.max_papers);
        pick(&f.authors, &mut self.authors);
        pick(&f.categories, &mut self.categories);
        pick(&f.category_mode, &mut self.category_mode);
        pick(&f.examples, &mut self.examples);
        self
    }
}

fn split_frequency(f: Frequency) -> (String, String) {
    match f {
        Frequency::Daily => ("daily".into(), "mon".into()),
        Frequency::Weekdays => ("weekdays".into(), "mon".into()),
        Frequency::Weekly(d) => ("weekly".into(), weekday_code(d).into()),
    }
}

fn weekday_code(d: Weekday) -> &'static str {
    WEEKDAYS[d.num_days_from_monday() as usize].0
}

/// The email field, parsed.
pub fn parse_email(f: &Fields) -> Result<EmailAddress, FieldError> {
    let raw = f.email.as_deref().unwrap_or("");
    EmailAddress::parse(raw).map_err(|e| {
        let message = match e {
            crate::model::EmailError::Empty => {
                "Enter your email address, e.g. name@example.org.".to_string()
            }
            other => format!("{other}."),
        };
        FieldError::new("email", message)
    })
}

/// The interests field as text: bounded, one line, no control or invisible characters, no
/// nesting deeper than people write (`model::Interests::parse`). No query parser runs, so this
/// is safe on the async runtime's threads.
pub fn interests_text(raw: &str) -> Result<Interests, FieldError> {
    Interests::parse(raw).map_err(|e| FieldError::new("interests", cap(e)))
}

/// What the visitor reads when the matcher cannot parse their interests.
pub fn syntax_message(e: &InterestsSyntaxError) -> String {
    format!(
        "We cannot understand these interests: {}. {}",
        e.problem.trim_end_matches('.'),
        e.hint
    )
}

/// The interests field: bounded text that the matcher can parse. tantivy's parser runs on a
/// blocking thread, so whatever a visitor types, the runtime keeps serving everyone else.
pub async fn parse_interests(raw: &str) -> Result<Interests, FieldError> {
    let interests = interests_text(raw)?;
    let checked = interests.clone();
    match tokio::task::spawn_blocking(move || check_interests(&checked)).await {
        Ok(Ok(())) => Ok(interests),
        Ok(Err(e)) => Err(FieldError::new("interests", syntax_message(&e))),
        Err(e) => {
            tracing::error!(error = %e, "checking interests failed");
            Err(FieldError::new(
                "interests",
                "We could not check these interests just now; please send the form again.",
            ))
        }
    }
}

/// The profile fields of the manage page. A field the form did not send counts as empty.
pub fn parse_profile(f: &Fields) -> Result<Profile, Vec<FieldError>> {
    let list = |v: &Option<String>| split_list(v.as_deref().unwrap_or(""));
    Profile::parse(
        list(&f.authors),
        list(&f.categories),
        f.category_mode.as_deref().unwrap_or(""),
        list(&f.examples),
    )
    .map_err(|errors| {
        errors
            .into_iter()
            .map(|e| FieldError::new(e.field(), cap(&e)))
            .collect()
    })
}

/// The preference fields; `max_papers` falls back to `default_max` when the form has none
/// (the sign-up form does not ask).
pub async fn parse_preferences(
    f: &Fields,
    settings: &Settings,
    default_max: MaxPapers,
) -> Result<Preferences, Vec<FieldError>> {
    let mut errors = Vec::new();
    let interests = parse_interests(f.interests.as_deref().unwrap_or(""))
        .await
        .map_err(|e| errors.push(e))
        .ok();
    let send_time = match f.time.as_deref().map(str::trim) {
        None | Some("") => Some(settings.schedule.send_time),
        Some(t) => t
            .parse::<SendTime>()
            .map_err(|e| errors.push(FieldError::new("time", cap(e))))
            .ok(),
    };
    let timezone = match f.timezone.as_deref().map(str::trim) {
        None | Some("") => Some(settings.schedule.timezone),
        Some(t) => t
            .parse::<TimeZoneName>()
            .map_err(|e| errors.push(FieldError::new("timezone", cap(e))))
            .ok(),
    };
    let frequency = parse_frequency(f).map_err(|e| errors.push(e)).ok();
    let max_papers = max_papers_field(f.max_papers.as_deref(), default_max)
        .map_err(|e| errors.push(e))
        .ok();
    match (interests, send_time, timezone, frequency, max_papers) {
        (Some(interests), Some(send_time), Some(timezone), Some(frequency), Some(max_papers))
            if errors.is_empty() =>
        {
            Ok(Preferences {
                interests,
                frequency,
                send_time,
                timezone,
                max_papers,
            })
        }
        _ => Err(errors),
    }
}

/// The "most papers per digest" field (the manage form's, or the live preview's `max_papers`):
/// `default` when it is empty or absent. The same range as everywhere else (`MaxPapers`):
/// `digest.max_papers` is only the default, so a subscriber added with `--max-papers 50` can
/// save their manage page.
pub fn max_papers_field(raw: Option<&str>, default: MaxPapers) -> Result<MaxPapers, FieldError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(n) => n.parse::<MaxPapers>().map_err(|_| {
            FieldError::new(
                "max_papers",
                format!(
                    "The most papers per digest must be {}.",
                    MaxPapers::allowed()
                ),
            )
        }),
    }
}

fn parse_frequency(f: &Fields) -> Result<Frequency, FieldError> {
    let kind = f.frequency.as_deref().unwrap_or("daily").trim();
    let text = if kind == "weekly" {
        format!("weekly:{}", f.weekday.as_deref().unwrap_or("mon").trim())
    } else {
        kind.to_string()
    };
    text.parse::<Frequency>().map_err(|_| {
        FieldError::new(
            "frequency",
            "Choose how often: every day, Monday to Friday, or once a week on a chosen day.",
        )
    })
}

/// Error messages from the model start lower-case; on a page they are sentences.
fn cap(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => {
            let mut out: String = c.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::load_with_env(None, Vec::<(String, String)>::new()).unwrap()
    }

    #[tokio::test]
    async fn weekly_combines_with_the_weekday() {
        let f = Fields {
            interests: Some("diffusion".into()),
            frequency: Some("weekly".into()),
            weekday: Some("thu".into()),
            ..Fields::default()
        };
        let p = parse_preferences(&f, &settings(), MaxPapers::new(10).unwrap())
            .await
            .unwrap();
        assert_eq!(p.frequency.to_string(), "weekly:thu");
        assert_eq!(p.send_time.to_string(), "07:00");
    }

    #[tokio::test]
    async fn every_bad_field_is_reported_with_what_to_do() {
        let f = Fields {
            interests: Some("\"unclosed".into()),
            time: Some("25:99".into()),
            timezone: Some("Mars/Base".into()),
            frequency: Some("hourly".into()),
            max_papers: Some("1000".into()),
            ..Fields::default()
        };
        let errors = parse_preferences(&f, &settings(), MaxPapers::new(10).unwrap())
            .await
            .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["interests", "time", "timezone", "frequency", "max_papers"]
        );
        assert!(errors[0].message.contains("quote"), "{:?}", errors[0]);
        assert!(errors[1].message.contains("HH:MM"), "{:?}", errors[1]);
    }
}
