//! `paperboy subscriber …`: add, list, remove, revoke links; import and export as CSV live in
//! `subscriber_csv`.

use clap::{Subcommand, ValueEnum};
use paperboy::config::Settings;
use paperboy::matching::check_interests;
use paperboy::model::{
    EmailAddress, Frequency, Interests, MaxPapers, SendTime, SubscriberStatus, TimeZoneName,
};
use paperboy::shutdown::Shutdown;
use paperboy::store::NewSubscriber;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::shared::{open_app, paperboy_time, shorten};
use super::subscriber_csv;

// Built once per process from the command line: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum SubscriberCommand {
    /// Add a subscriber. Without --confirmed they stay pending and get nothing.
    Add {
        email: String,
        /// A query: words, "phrases", AND/OR/NOT, -word, (…), title: abstract: author: cat:,
        /// e.g. 'diffusion "protein folding" -video'; `*` for the day's top trending papers.
        #[arg(long)]
        interests: String,
        /// Mark the address as confirmed (you have their consent).
        #[arg(long)]
        confirmed: bool,
        /// Local delivery time, HH:MM. Default: schedule.send_time.
        #[arg(long, value_name = "HH:MM")]
        time: Option<String>,
        /// IANA time zone. Default: schedule.timezone.
        #[arg(long, value_name = "TZ")]
        timezone: Option<String>,
        /// daily, weekdays or weekly:<day>.
        #[arg(long, default_value = "daily")]
        frequency: String,
        /// Most papers per digest, 1 to 100. Default: digest.max_papers.
        #[arg(long)]
        max_papers: Option<MaxPapers>,
        /// Followed authors, comma-separated: a new paper by one is always included.
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        authors: Vec<String>,
        /// arXiv categories or archives, comma-separated (e.g. cs.LG,stat.ML or cs).
        #[arg(long, value_name = "CATS", value_delimiter = ',')]
        categories: Vec<String>,
        /// boost: papers in the categories rank higher; filter: only those papers.
        #[arg(long, default_value = "boost", value_name = "boost|filter")]
        category_mode: String,
        /// Example papers by arXiv id, comma-separated: "more like these".
        #[arg(long, value_name = "IDS", value_delimiter = ',')]
        like: Vec<String>,
    },
    /// List subscribers.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Delete a subscriber and their history.
    Remove { email: String },
    /// Switch off every manage, feedback and "view in browser" link mailed to a subscriber so
    /// far (unsubscribe links keep working), and mail them the new manage link.
    RevokeLinks {
        email: String,
        /// Revoke only; mail nothing (the next digest carries the new links).
        #[arg(long)]
        no_mail: bool,
    },
    /// Add subscribers from a CSV file (columns in README, "Subscribers in bulk"). Every row is
    /// checked first; bad rows are reported with their line numbers and skipped; the good ones
    /// are added in batches. Addresses already subscribed are left unchanged, so running the
    /// same file twice adds nothing the second time.
    Import {
        /// The CSV file, with a header line; `-` reads standard input.
        file: PathBuf,
        /// Rows without a `status` column value become active (you have their consent);
        /// otherwise pending.
        #[arg(long)]
        confirmed: bool,
        /// Check every row and report, but write nothing.
        #[arg(long)]
        check: bool,
    },
    /// Write every subscriber with their profile as CSV (what `subscriber import` reads).
    Export {
        /// Write here instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
    Csv,
}

pub async fn run(settings: Settings, cmd: SubscriberCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SubscriberCommand::Add {
            email,
            interests,
            confirmed,
            time,
            timezone,
            frequency,
            max_papers,
            authors,
            categories,
            category_mode,
            like,
        } => {
            // Parse everything before touching the database: a bad value writes nothing.
            let email = EmailAddress::parse(&email)?;
            let profile = profile_from_flags(authors, categories, &category_mode, like)?;
            let interests = Interests::parse(&interests)?;
            check_interests(&interests)?;
            let send_time = match time {
                Some(t) => t.parse::<SendTime>()?,
                None => settings.schedule.send_time,
            };
            let timezone = match timezone {
                Some(t) => t.parse::<TimeZoneName>()?,
                None => settings.schedule.timezone,
            };
            let frequency: Frequency = frequency.parse()?;
            let max_papers = max_papers.unwrap_or(settings.digest.max_papers);
            let app = open_app(settings).await?;
            let status = if confirmed {
                SubscriberStatus::Active
            } else {
                SubscriberStatus::Pending
            };
            let id = app
                .store
                .add_subscriber(
                    &NewSubscriber {
                        email: email.clone(),
                        status,
                        interests: interests.clone(),
                        frequency,
                        send_time,
                        timezone,
                        max_papers,
                    },
                    app.clock.now(),
                )
                .await?;
            if !profile.is_empty() {
                app.store.set_profile(id, &profile, app.clock.now()).await?;
            }
            embed_interests_now(&app, &interests).await;
            println!(
                "added subscriber {id}: {email} ({}; {frequency} at {send_time} {timezone})",
                status.as_str()
            );
            if !confirmed {
                println!(
                    "they get nothing until they confirm; use --confirmed if you have their consent"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriberCommand::List { format } => {
            let app = open_app(settings).await?;
            let rows = app.store.list_subscribers().await?;
            match format {
                ListFormat::Json => {
                    let list: Vec<_> = rows
                        .into_iter()
                        .map(|r| {
                            serde_json::json!({
                                "id": r.id,
                                "email": r.email,
                                "status": r.status,
                                "interests": r.interests,
                                "frequency": r.frequency,
                                "send_time": r.send_time,
                                "timezone": r.timezone,
                                "max_papers": r.max_papers,
                                "created_at": paperboy_time(r.created_at),
                                "confirmed_at": r.confirmed_at.map(paperboy_time),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                ListFormat::Csv => {
                    let mut w = csv::Writer::from_writer(std::io::stdout().lock());
                    w.write_record([
                        "email",
                        "status",
                        "interests",
                        "frequency",
                        "send_time",
                        "timezone",
                        "max_papers",
                    ])?;
                    for r in rows {
                        w.write_record([
                            r.email,
                            r.status,
                            r.interests,
                            r.frequency,
                            r.send_time,
                            r.timezone,
                            r.max_papers.to_string(),
                        ])?;
                    }
                    w.flush()?;
                }
                ListFormat::Table => {
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "{:>5}  {:<32} {:<12} {:<9} {:<5} {:<20} INTERESTS",
                        "ID", "EMAIL", "STATUS", "FREQUENCY", "TIME", "TIME ZONE"
                    )?;
                    for r in &rows {
                        writeln!(
                            out,
                            "{:>5}  {:<32} {:<12} {:<9} {:<5} {:<20} {}",
                            r.id,
                            shorten(&r.email, 32),
                            r.status,
                            r.frequency,
                            r.send_time,
                            r.timezone,
                            shorten(&r.interests, 60)
                        )?;
                    }
                    writeln!(out, "{} subscribers", rows.len())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriberCommand::Import {
            file,
            confirmed,
            check,
        } => {
            let shutdown = Shutdown::install()?;
            subscriber_csv::import(settings, &file, confirmed, check, &shutdown).await
        }
        SubscriberCommand::Export { output } => {
            subscriber_csv::export(settings, output.as_deref()).await
        }
        SubscriberCommand::RevokeLinks { email, no_mail } => {
            revoke_links_command(settings, &email, !no_mail).await
        }
        SubscriberCommand::Remove { email } => {
            let email = EmailAddress::parse(&email)?;
            let app = open_app(settings).await?;
            if app.store.remove_subscriber(&email).await? {
                println!("removed {email} and their history");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: {email} is not a subscriber");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// `paperboy subscriber revoke-links`: bump, mail, say what was done. Exit 1 when the address
/// is unknown or the new link could not be mailed (the links are revoked all the same).
async fn revoke_links_command(
    settings: Settings,
    email: &str,
    mail: bool,
) -> anyhow::Result<ExitCode> {
    use paperboy::jobs::revoke::{NewLink, revoke_links};
    let email = EmailAddress::parse(email)?;
    let app = open_app(settings).await?;
    let Some(row) = app.store.subscriber_by_email(&email).await? else {
        eprintln!("error: {email} is not a subscriber");
        return Ok(ExitCode::FAILURE);
    };
    let subscriber = row.parse().map_err(anyhow::Error::msg)?;
    let Some(done) = revoke_links(&app, &subscriber, mail).await? else {
        eprintln!(
            "error: the links of {email} were revoked by someone else at this very moment; \
             run the command again to revoke them once more"
        );
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "revoked the manage, feedback and digest links of {email} (token version {} -> {}); \
         unsubscribe links keep working",
        done.old_version, done.new_version
    );
    let ask = format!(
        "{}/manage",
        app.settings.web.base_url.as_str().trim_end_matches('/')
    );
    match done.new_link {
        NewLink::Mailed => {
            println!("mailed the new manage link to {email}");
            Ok(ExitCode::SUCCESS)
        }
        NewLink::NotMailed => {
            println!(
                "mailed nothing (--no-mail): their next digest carries the new links, or they \
                 can ask for one at {ask}"
            );
            Ok(ExitCode::SUCCESS)
        }
        NewLink::NeverConfirmed => {
            println!("mailed nothing: {email} never confirmed, so it only gets its confirmation");
            Ok(ExitCode::SUCCESS)
        }
        NewLink::Failed(why) => {
            eprintln!(
                "error: {why}; the old links stay revoked. Check the [mail] settings \
                 (`paperboy check`) and run the command again, or let them ask at {ask}"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The profile flags of `subscriber add`, checked by `model::Profile::parse`; each problem is
/// reported with the flag that carried it.
fn profile_from_flags(
    authors: Vec<String>,
    categories: Vec<String>,
    category_mode: &str,
    like: Vec<String>,
) -> anyhow::Result<paperboy::model::Profile> {
    paperboy::model::Profile::parse(authors, categories, category_mode, like).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| {
                let flag = match e.field() {
                    "authors" => "--authors",
                    "categories" => "--categories",
                    "category_mode" => "--category-mode",
                    _ => "--like",
                };
                format!("{flag}: {e}")
            })
            .collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })
}

/// The new interests' vectors, now, so that their first digest is matched by meaning too. A
/// failure does not fail the command: the digest falls back to words, and the daemon's next
/// fetch run (or `paperboy db embed`) fills the vectors in.
async fn embed_interests_now(app: &paperboy::jobs::App, interests: &Interests) {
    use paperboy::jobs::embed;
    if let Err(e) = embed::embed_interests(app, &[interests], &embed::Quiet).await {
        eprintln!(
            "warning: could not embed the interests ({e}); their digests are matched by words \
             alone until `paperboy db embed` succeeds"
        );
    }
}
