//! What several commands share: opening the application, the table/JSON format flag, and
//! the small text formatting of tables. A leaf: it imports no command module.

use paperboy::config::Settings;
use paperboy::jobs::{App, Clock};
use paperboy::store::Store;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TableFormat {
    Table,
    Json,
}

pub async fn open_app(settings: Settings) -> anyhow::Result<App> {
    let clock = Clock::from_env().map_err(anyhow::Error::msg)?;
    let store =
        Store::open_with_and_migrate(settings.database.url.expose(), &(&settings.database).into())
            .await?;
    if settings.secret_key_generated {
        tracing::warn!(
            "no secret_key configured: links in emails are signed with a temporary key and stop \
             working when paperboy restarts; set secret_key before mailing real people"
        );
    }
    App::new(settings, store, clock).map_err(anyhow::Error::msg)
}

/// One line on a source's state: when it last succeeded, its checkpoint, its last error, stale.
pub fn source_status_line(
    name: &str,
    state: Option<&paperboy::store::SourceStatus>,
    stale: Option<&str>,
) -> String {
    let Some(st) = state else {
        return format!("{name}: never fetched");
    };
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into())
    };
    let mut line = format!(
        "{name}: last success {}, checkpoint {}, {} papers and {} skipped in the last run",
        at(st.last_success_at),
        st.checkpoint
            .map(|d| d.to_string())
            .unwrap_or_else(|| "none".into()),
        st.last_fetched.unwrap_or(0),
        st.last_skipped.unwrap_or(0),
    );
    if let Some(err) = &st.last_error
        && st.last_error_at > st.last_success_at
    {
        line.push_str(&format!("; FAILING since {}: {err}", at(st.last_error_at)));
    }
    if let Some(stale) = stale {
        line.push_str(&format!("; STALE: {stale}"));
    }
    line
}

pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

pub fn paperboy_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}
