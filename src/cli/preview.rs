//! `paperboy preview EMAIL`: the digest a subscriber would get now; sends and records nothing.

use anyhow::Context;
use clap::ValueEnum;
use paperboy::config::Settings;
use paperboy::digest::DigestView;
use paperboy::jobs::plan::Candidates;
use paperboy::model::EmailAddress;
use std::process::ExitCode;

use super::shared::open_app;

#[derive(Clone, Copy, ValueEnum)]
pub enum PreviewFormat {
    Html,
    Text,
    Json,
}

pub async fn run(
    settings: Settings,
    email: &str,
    format: PreviewFormat,
) -> anyhow::Result<ExitCode> {
    let email = EmailAddress::parse(email)?;
    let app = open_app(settings).await?;
    let row = app
        .store
        .subscriber_by_email(&email)
        .await?
        .with_context(|| {
            format!("{email} is not a subscriber; add it with `paperboy subscriber add`")
        })?;
    let subscriber = row.parse().map_err(anyhow::Error::msg)?;
    let now = app.clock.now();
    let date = now.with_timezone(&subscriber.timezone.0).date_naive();
    let candidates = Candidates::load(&app, now).await?;
    let (picks, without_vectors) = candidates.digest_for(&app, &subscriber, date).await?;
    if without_vectors > 0 {
        eprintln!(
            "note: {without_vectors} of the interests' clauses have no vector yet, so this \
             digest is matched by words alone; `paperboy db embed` computes them"
        );
    }
    let papers = candidates.digest_papers(picks);
    match format {
        PreviewFormat::Json => {
            let out = serde_json::json!({
                "email": subscriber.email,
                "date": date,
                "status": subscriber.status.as_str(),
                "interests": subscriber.interests,
                "papers": papers.iter().map(|p| serde_json::json!({
                    "rank": p.rank,
                    "id": p.id,
                    "title": p.title,
                    "score": p.score,
                    "reasons": p.reasons,
                    // The abstract excerpt with the matched words marked, as the email shows it.
                    "snippet": p.snippet,
                    "upvotes": p.upvotes,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        PreviewFormat::Text | PreviewFormat::Html => {
            let view = DigestView::new(
                &app.signer,
                &app.settings.web.base_url,
                &subscriber,
                date,
                papers,
                None,
            );
            let rendered = app.renderer.render(&view)?;
            if matches!(format, PreviewFormat::Html) {
                println!("{}", rendered.html);
            } else {
                println!("Subject: {}\n\n{}", rendered.subject, rendered.text);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
