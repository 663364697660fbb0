//! `paperboy migrate`, `paperboy db copy` and `paperboy db embed`: the database tools.

use anyhow::{Context, bail};
use clap::Subcommand;
use paperboy::config::Settings;
use paperboy::config::without_password;
use paperboy::shutdown::Shutdown;
use paperboy::store::Store;
use std::process::ExitCode;

use super::progress::{EmbedBars, progress};
use super::shared::open_app;
use paperboy::jobs::embed;

#[derive(Subcommand)]
pub enum DbCommand {
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
    /// Compute the sentence vectors that are missing: papers stored before vectors existed,
    /// and interests whose embedding failed or was left for later. Fetch, sign-up and import
    /// do this by themselves; this is for an upgraded database or after --again.
    Embed {
        /// Forget every stored vector first and compute them all again (after a model change).
        #[arg(long)]
        again: bool,
    },
}

/// `paperboy migrate`: apply the pending migrations and name them.
pub async fn migrate(settings: Settings) -> anyhow::Result<ExitCode> {
    let store = Store::open(
        settings.database.url.expose(),
        settings.database.max_connections,
    )
    .await?;
    let pending = store.pending_migrations().await?;
    store.migrate().await?;
    if pending.is_empty() {
        println!("the database is up to date");
    } else {
        for m in pending {
            println!("applied {m}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(settings: Settings, command: DbCommand) -> anyhow::Result<ExitCode> {
    match command {
        DbCommand::Copy { from, to, force } => {
            let shutdown = Shutdown::install()?;
            copy(&settings, &from, &to, force, &shutdown).await
        }
        DbCommand::Embed { again } => embed_missing(settings, again).await,
    }
}

/// `paperboy db embed`: every paper and interest clause without a vector gets one, under a
/// progress bar per phase. Each batch is stored as it is done, so a stop keeps what was done.
async fn embed_missing(settings: Settings, again: bool) -> anyhow::Result<ExitCode> {
    let app = open_app(settings).await?;
    if again {
        app.store.forget_vectors().await?;
        println!("forgot every stored vector");
    }
    let bars = EmbedBars::default();
    let started = std::time::Instant::now();
    let papers = embed::embed_papers(&app, &bars).await?;
    let paper_secs = started.elapsed().as_secs_f64();
    let interests = embed::embed_all_interests(&app, &bars).await?;
    let sentences_started = std::time::Instant::now();
    let with_sentences = embed::embed_sentences(&app, &bars).await?;
    let sentence_secs = sentences_started.elapsed().as_secs_f64();
    drop(bars);
    let rate = |n: usize, secs: f64| {
        if n == 0 {
            String::new()
        } else {
            format!(" ({:.0} a second)", n as f64 / secs.max(1e-3))
        }
    };
    println!(
        "embedded {papers} papers{}, {interests} interest clauses{}, the abstract sentences of \
         {with_sentences} papers{}",
        rate(papers, paper_secs),
        rate(
            interests,
            started.elapsed().as_secs_f64() - paper_secs - sentence_secs
        ),
        rate(with_sentences, sentence_secs)
    );
    Ok(ExitCode::SUCCESS)
}

/// `paperboy db copy`: both databases are opened and migrated to this binary's schema; a
/// target holding any row is refused unless `force`, which empties it; then every table is
/// copied (`Store::copy_into`) under one progress bar.
async fn copy(
    settings: &Settings,
    from: &str,
    to: &str,
    force: bool,
    shutdown: &Shutdown,
) -> anyhow::Result<ExitCode> {
    let check_url = |flag: &str, url: &str| {
        if url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:")
        {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{flag} `{}` is not a database URL: use sqlite://PATH or postgres://user@host/db",
                without_password(url)
            ))
        }
    };
    check_url("--from", from)?;
    check_url("--to", to)?;
    if from == to {
        bail!(
            "--from and --to name the same database `{}`",
            without_password(from)
        );
    }
    let pool = (&settings.database).into();
    let source = Store::open_with_and_migrate(from, &pool)
        .await
        .with_context(|| format!("cannot open --from `{}`", without_password(from)))?;
    let target = Store::open_with_and_migrate(to, &pool)
        .await
        .with_context(|| format!("cannot open --to `{}`", without_password(to)))?;
    let held: Vec<String> = target
        .table_counts()
        .await?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t} ({n} rows)"))
        .collect();
    if !held.is_empty() {
        if !force {
            bail!(
                "the target --to `{}` is not empty: {}; refusing to copy into it. \
                 Pass --force to delete those rows first",
                without_password(to),
                held.join(", ")
            );
        }
        tracing::warn!(tables = %held.join(", "), "--force: emptying the target first");
        target.empty_copied_tables().await?;
    }
    let total: u64 = source.table_counts().await?.iter().map(|(_, n)| n).sum();
    let bar = progress(total, "rows copied");
    let report = source
        .copy_into(&target, &|n| bar.inc(n), &shutdown.receiver())
        .await?;
    bar.finish();
    for (table, n) in &report.tables {
        println!("{table:<20} {n:>10}");
    }
    if report.stopped {
        println!(
            "stopped on request after {} rows: the target holds a partial copy (whole batches, \
             parents before children); the source is unchanged. Run the same command again \
             with --force to empty the target and copy everything",
            report.tables.iter().map(|(_, n)| n).sum::<u64>()
        );
        source.close().await;
        target.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "copied {} rows from {} to {}",
        report.tables.iter().map(|(_, n)| n).sum::<u64>(),
        source.backend_name(),
        target.backend_name()
    );
    source.close().await;
    target.close().await;
    Ok(ExitCode::SUCCESS)
}
