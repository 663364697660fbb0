//! The command line: the commands, their dispatch and logging set-up. One file per command or
//! family of commands; what several share (opening the application, progress, table
//! formatting) lives in the leaves `shared` and `progress`, which import no command.
//! What it is not for: business logic, which lives in the library.

mod bounces;
mod check;
mod db;
mod deliveries;
mod eval;
mod fetch;
mod papers;
mod preview;
mod progress;
mod send;
mod shared;
mod subscriber;
mod subscriber_csv;

use clap::Subcommand;
use paperboy::config::{LogFormat, Settings};
use paperboy::daemon;
use paperboy::shutdown::Shutdown;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

use db::DbCommand;
use preview::PreviewFormat;
use shared::{TableFormat, open_app};
use subscriber::SubscriberCommand;

#[derive(Subcommand)]
pub enum Command {
    /// The daemon: fetch on schedule, plan and send every minute, serve the web pages.
    Run,
    /// Create or upgrade the database schema.
    Migrate,
    /// Fetch papers from the sources and store them. Without a date: each source's missed days
    /// since its checkpoint, then its current listing (what the daemon does on schedule).
    Fetch {
        /// Only this source (hf, arxiv, or a [[sources.feeds]] name), even if not enabled.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// One day to fetch (UTC), YYYY-MM-DD.
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with_all = ["from", "to"])]
        date: Option<chrono::NaiveDate>,
        /// Backfill: the first day of a range (UTC), with --to. arXiv comes from its API.
        #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
        from: Option<chrono::NaiveDate>,
        /// Backfill: the last day of the range, inclusive.
        #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
        to: Option<chrono::NaiveDate>,
    },
    /// Plan and send the digests that are due.
    Send {
        /// Every active subscriber is due today, whatever their send time.
        #[arg(long)]
        now: bool,
        /// Write the messages as .eml files into DIR instead of sending; nothing is recorded.
        #[arg(long, value_name = "DIR")]
        dry_run: Option<PathBuf>,
    },
    /// Show the digest EMAIL would get now, without sending or recording anything.
    Preview {
        email: String,
        #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
        format: PreviewFormat,
    },
    /// Manage subscribers from the command line.
    #[command(subcommand)]
    Subscriber(SubscriberCommand),
    /// List the papers that have been fetched.
    Papers {
        /// Only papers first seen on or after this UTC date.
        #[arg(long, value_name = "YYYY-MM-DD")]
        since: Option<chrono::NaiveDate>,
        /// Only papers this source listed (hf, arxiv, arxiv-api, a feed's name).
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// List deliveries (digests planned or sent), newest first, with their last error.
    Deliveries {
        /// planned, sending, sent, retry, failed or empty.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Check the configuration, the database, the SMTP server, the bounce mailbox and the
    /// sources.
    Check,
    /// Read the bounce mailbox once (mail.bounce_imap_url): record the bounces that arrived
    /// after sending, suspending addresses that bounce hard.
    Bounces,
    /// Database tools.
    #[command(subcommand)]
    Db(DbCommand),
    /// Measure ranking quality on a labelled set: nDCG@10, P@10, R@50 and the F1 of what
    /// would be sent, against a plain BM25 baseline computed in the same run.
    Eval {
        /// Documents, JSON lines: {"id", "title", "abstract"} a line.
        #[arg(long, value_name = "FILE")]
        docs: PathBuf,
        /// Judgements, tab-separated: query, doc_id, relevance (a `query…` header is skipped).
        #[arg(long, value_name = "FILE")]
        qrels: PathBuf,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
}

pub fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| {
            eprintln!(
                "warning: config key `log.level` = `{}` is not a level or filter; using info",
                settings.log.level
            );
            EnvFilter::new("info")
        });
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The filter sits behind a reload handle so that SIGHUP can change `log.level` in a
    // running daemon (see `paperboy::reload`).
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    paperboy::reload::set_log_reloader(Box::new(move |level| {
        let filter = EnvFilter::try_new(level)
            .map_err(|e| format!("not a level or tracing filter ({e})"))?;
        handle.reload(filter).map_err(|e| e.to_string())
    }));
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match settings.log.format {
        LogFormat::Json => registry.with(layer.json()).init(),
        LogFormat::Text => registry.with(layer).init(),
    }
}

pub async fn dispatch(settings: Settings, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run => {
            // Before the database opens: a SIGTERM during migrations must still stop cleanly.
            let signals = daemon::Signals::install()?;
            let app = open_app(settings).await?;
            daemon::run(app, signals).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => db::migrate(settings).await,
        Command::Fetch {
            source,
            date,
            from,
            to,
        } => {
            let shutdown = Shutdown::install()?;
            fetch::run(settings, source, date, from.zip(to), &shutdown).await
        }
        Command::Send { now, dry_run } => {
            let shutdown = Shutdown::install()?;
            send::run(settings, now, dry_run, &shutdown).await
        }
        Command::Preview { email, format } => preview::run(settings, &email, format).await,
        Command::Subscriber(cmd) => subscriber::run(settings, cmd).await,
        Command::Papers {
            since,
            source,
            format,
        } => papers::run(settings, since, source, format).await,
        Command::Deliveries {
            status,
            limit,
            format,
        } => deliveries::run(settings, status, limit, format).await,
        Command::Check => check::run(settings).await,
        Command::Bounces => bounces::run(settings).await,
        Command::Db(cmd) => db::run(settings, cmd).await,
        Command::Eval {
            docs,
            qrels,
            format,
        } => eval::run(&settings, &docs, &qrels, format),
    }
}
