//! The `paperboy` command line. Parses arguments, loads the configuration, sets up logging and
//! hands each command to `cli`; business logic lives in the library.

mod cli;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Planning and rendering allocate many small strings per subscriber (explanations, snippets,
/// links); with glibc's allocator malloc and free were a sixth of planning's CPU time.
/// mimalloc's per-thread free lists cost less (BENCHMARKS.md, "Planning speed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "paperboy",
    version,
    about = "Emails each subscriber a daily digest of new research papers matched to their interests"
)]
struct Args {
    /// The configuration file (TOML). Built-in defaults apply to every key it leaves out.
    #[arg(long, global = true, env = "PAPERBOY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Check the configuration, the database, the SMTP server and the sources.
    Check,
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

// Built once per process from the command line: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum SubscriberCommand {
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
        /// Most papers per digest. Default: digest.max_papers.
        #[arg(long)]
        max_papers: Option<u32>,
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

#[derive(Subcommand)]
enum DbCommand {
    /// Copy everything (papers, subscribers, profiles, deliveries, feedback, source state) from
    /// one database into another, e.g. from SQLite to PostgreSQL, in one consistent pass.
    /// Both are migrated first; the target must be empty unless --force.
    Copy {
        /// The database to read: sqlite://PATH or postgres://user@host/db.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The database to write.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Empty a target that already holds data before copying (its rows are deleted).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PreviewFormat {
    Html,
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TableFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
    Csv,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let settings = match paperboy::config::Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    paperboy::reload::set_config_path(args.config.clone());
    cli::init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(settings, args.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            exit_code(&e)
        }
    }
}

/// The error and its causes on one line, each said once: a layer whose text its outer layer
/// already quotes (thiserror's `{0}` beside `#[from]`, sqlx quoting the SQLite error) is left
/// out, where `{:#}` would print the same words two or three times.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for layer in error.chain() {
        let layer = layer.to_string();
        if text.contains(&layer) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&layer);
    }
    text
}

/// 2 when a setting or the filesystem must be fixed (as for a bad config file), 1 otherwise:
/// systemd and scripts retry 1, and a person fixes 2.
fn exit_code(error: &anyhow::Error) -> ExitCode {
    let configuration = error.chain().any(|layer| {
        layer
            .downcast_ref::<paperboy::store::StoreError>()
            .is_some_and(paperboy::store::StoreError::is_configuration)
    });
    ExitCode::from(if configuration { 2 } else { 1 })
}
