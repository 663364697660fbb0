//! `paperboy deliveries`: the digests planned or sent, newest first, with their last error.

use anyhow::Context;
use paperboy::config::Settings;
use paperboy::store::DeliveryStatus;
use std::io::Write;
use std::process::ExitCode;

use super::shared::{TableFormat, open_app, shorten};

pub async fn run(
    settings: Settings,
    status: Option<String>,
    limit: u32,
    format: TableFormat,
) -> anyhow::Result<ExitCode> {
    let status = match status.as_deref() {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).with_context(|| {
            format!(
                "`{s}` is not a delivery status; use planned, sending, sent, retry, failed or empty"
            )
        })?),
    };
    let app = open_app(settings).await?;
    let rows = app.store.list_deliveries(status, limit).await?;
    match format {
        TableFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        TableFormat::Table => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:>6} {:<10} {:<8} {:>8} {:>6}  {:<30} LAST ERROR",
                "ID", "DATE", "STATUS", "ATTEMPTS", "PAPERS", "SUBSCRIBER"
            )?;
            for d in &rows {
                writeln!(
                    out,
                    "{:>6} {:<10} {:<8} {:>8} {:>6}  {:<30} {}",
                    d.id,
                    d.digest_date,
                    d.status,
                    d.attempts,
                    d.papers,
                    shorten(&d.email, 30),
                    d.last_error.as_deref().unwrap_or("")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
