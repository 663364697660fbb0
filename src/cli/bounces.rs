//! `paperboy bounces`: reads the bounce mailbox once, as the daemon does every
//! `mail.bounce_check_secs`, and says what it found. For a first run after setting it up, and
//! for a cron job where no daemon runs.

use paperboy::config::Settings;
use std::process::ExitCode;

use super::shared::open_app;

pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let app = open_app(settings).await?;
    match paperboy::bounces::read_mailbox(&app).await {
        Ok(None) => {
            eprintln!(
                "no bounce mailbox is configured: set `mail.bounce_address` and \
                 `mail.bounce_imap_url` (see the operator guide, \"Bounces\")"
            );
            Ok(ExitCode::from(2))
        }
        Ok(Some(s)) => {
            println!("read {} unread messages: {s}", s.read);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("cannot read the bounce mailbox: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
