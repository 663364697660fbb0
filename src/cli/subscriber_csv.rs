//! `paperboy subscriber import` and `subscriber export`: subscribers and their profiles as CSV.
//!
//! What it is for: moving a list of subscribers in and out in bulk (100,000 rows), with every
//! row checked by the same domain types the CLI and the web forms use, bad rows reported by
//! line number, good ones written in batches. What it is not for: merging changes into existing
//! subscribers (an address already subscribed is left as it is; change it through its manage
//! link, or remove it first).
//!
//! Columns (header line required, any order; only `email` and `interests` are required):
//! `email, status, interests, frequency, send_time, timezone, max_papers, authors, categories,
//! category_mode, examples`. Lists (`authors`, `categories`, `examples`) are separated by `;`
//! (`model::split_list`, which also splits at commas and line breaks) and checked as a whole
//! by `model::Profile::parse`, as `subscriber add` and the manage page do.

use anyhow::{Context, bail};
use paperboy::config::Settings;
use paperboy::matching::check_interests;
use paperboy::model::{
    EmailAddress, Frequency, Interests, MaxPapers, Profile, SendTime, SubscriberStatus,
    TimeZoneName, split_list,
};
use paperboy::shutdown::Shutdown;
use paperboy::store::{NewSubscriber, SubscriberRow};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use super::progress::{EmbedBars, progress};
use super::shared::open_app;
use paperboy::jobs::embed;

/// The columns, in the order `export` writes them.
pub const COLUMNS: [&str; 11] = [
    "email",
    "status",
    "interests",
    "frequency",
    "send_time",
    "timezone",
    "max_papers",
    "authors",
    "categories",
    "category_mode",
    "examples",
];

/// Subscribers written per transaction.
const BATCH: usize = 1_000;
/// How many bad rows are printed one by one; the rest are counted.
const SHOWN_BAD_ROWS: usize = 200;
/// Subscribers read per page by `export`, so memory stays flat.
const EXPORT_PAGE: u32 = 5_000;

/// A row that could not be imported: where and why.
struct BadRow {
    line: u64,
    problem: String,
}

/// The defaults a row's empty cells take.
struct Defaults {
    status: SubscriberStatus,
    send_time: SendTime,
    timezone: TimeZoneName,
    max_papers: MaxPapers,
}

/// Where the CSV comes from: a file, opened again for each pass, or standard input, read once.
enum CsvSource {
    File(std::path::PathBuf),
    Bytes(Vec<u8>),
}

impl CsvSource {
    fn reader(&self) -> anyhow::Result<csv::Reader<Box<dyn std::io::Read + '_>>> {
        let input: Box<dyn std::io::Read + '_> = match self {
            CsvSource::File(path) => Box::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            ),
            CsvSource::Bytes(bytes) => Box::new(bytes.as_slice()),
        };
        Ok(csv::ReaderBuilder::new().flexible(true).from_reader(input))
    }
}

/// Reads and checks every row of `file`; then (unless `check_only`) adds the good ones.
pub async fn import(
    settings: Settings,
    file: &Path,
    confirmed: bool,
    check_only: bool,
    shutdown: &Shutdown,
) -> anyhow::Result<ExitCode> {
    let defaults = Defaults {
        status: if confirmed {
            SubscriberStatus::Active
        } else {
            SubscriberStatus::Pending
        },
        send_time: settings.schedule.send_time,
        timezone: settings.schedule.timezone,
        max_papers: settings.digest.max_papers,
    };
    // The file is read twice: once to check every row (nothing is written when the check
    // finds only bad rows, or with --check), once to write the good rows a batch at a time.
    // Holding the parsed rows between the two grew memory with the file (173 MB for 300,000
    // rows); only the addresses seen are kept now. Standard input cannot be read twice, so
    // its bytes are kept instead (a third of the parsed rows' size).
    let source = if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read the CSV from standard input")?;
        CsvSource::Bytes(bytes)
    } else {
        CsvSource::File(file.to_path_buf())
    };
    let mut reader = source.reader()?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header line", file.display()))?
        .clone();
    let mut column: HashMap<&'static str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let name = h.trim();
        let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
            bail!(
                "{}: line 1: unknown column `{name}`; the columns are {}",
                file.display(),
                COLUMNS.join(", ")
            );
        };
        if column.insert(known, i).is_some() {
            bail!("{}: line 1: column `{name}` appears twice", file.display());
        }
    }
    for required in ["email", "interests"] {
        if !column.contains_key(required) {
            bail!(
                "{}: line 1: the column `{required}` is missing; the columns are {}",
                file.display(),
                COLUMNS.join(", ")
            );
        }
    }

    let mut good: u64 = 0;
    let mut bad: Vec<BadRow> = Vec::new();
    // Address → the line it first appeared on: a repeat within the file is a bad row.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        if shutdown.requested() {
            println!(
                "stopped on request while checking the file; nothing was written. Run the same \
                 command again"
            );
            return Ok(ExitCode::SUCCESS);
        }
        let line = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => record.position().map_or(0, |p| p.line()),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(BadRow {
                    line,
                    problem: format!("not readable as CSV: {e}"),
                });
                continue;
            }
        };
        let row = Row {
            record: &record,
            column: &column,
        };
        match parse_row(&row, &defaults) {
            Ok(row) => {
                let email = row.0.email.as_str().to_string();
                if let Some(first) = seen.get(&email) {
                    bad.push(BadRow {
                        line,
                        problem: format!("email `{email}` already appears on line {first}"),
                    });
                } else {
                    seen.insert(email, line);
                    good += 1;
                }
            }
            Err(problem) => bad.push(BadRow { line, problem }),
        }
    }

    for b in bad.iter().take(SHOWN_BAD_ROWS) {
        eprintln!("{}: line {}: {}", file.display(), b.line, b.problem);
    }
    if bad.len() > SHOWN_BAD_ROWS {
        eprintln!(
            "… and {} more bad rows (use --check to list them after fixing these)",
            bad.len() - SHOWN_BAD_ROWS
        );
    }
    if check_only {
        println!(
            "checked {} rows: {good} good, {} bad; nothing was written",
            good + bad.len() as u64,
            bad.len()
        );
        return Ok(exit_code(&bad));
    }

    drop(seen);
    let bad_lines: std::collections::HashSet<u64> = bad.iter().map(|b| b.line).collect();
    let app = open_app(settings).await?;
    let bar = progress(good, "importing subscribers");
    let mut added = 0;
    let mut existing = 0;
    let span = tracing::info_span!("subscriber_import", file = %file.display(), rows = good);
    let _enter = span.enter();
    let mut reader = source.reader()?;
    let mut batch: Vec<(NewSubscriber, Profile)> = Vec::with_capacity(BATCH);
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            // Reported by the check above.
            Err(_) => continue,
        };
        if more {
            let line = record.position().map_or(0, |p| p.line());
            let row = Row {
                record: &record,
                column: &column,
            };
            if !bad_lines.contains(&line)
                && let Ok(row) = parse_row(&row, &defaults)
            {
                batch.push(row);
            }
        }
        if batch.len() == BATCH || (!more && !batch.is_empty()) {
            // A batch is the unit: the one being written commits whole, no other starts.
            if shutdown.requested() {
                bar.finish();
                println!(
                    "stopped on request: {added} subscribers imported, {existing} already \
                     subscribed; the rest of the file was not written. Run the same command \
                     again: addresses already imported are left unchanged, the rest are added"
                );
                return Ok(ExitCode::SUCCESS);
            }
            let counts = app
                .store
                .import_subscribers(&batch, app.clock.now())
                .await
                .context("writing a batch of subscribers")?;
            added += counts.added;
            existing += counts.existing;
            bar.inc(batch.len() as u64);
            batch.clear();
        }
        if !more {
            break;
        }
    }
    bar.finish();
    println!(
        "imported {added} subscribers; {existing} already subscribed (left unchanged); {} bad \
         rows skipped",
        bad.len()
    );
    // Their interests' vectors: each distinct clause once, in batches on every core. A stop
    // or a failure here loses nothing imported: planning matches those by words alone until
    // the daemon's next fetch run or `paperboy db embed` fills them in.
    let bars = EmbedBars::default();
    let embedded = tokio::select! {
        r = embed::embed_all_interests(&app, &bars) => Some(r),
        _ = shutdown.wait() => None,
    };
    drop(bars);
    match embedded {
        Some(Ok(n)) => println!("embedded {n} new interest clauses"),
        Some(Err(e)) => eprintln!(
            "warning: could not embed the interests ({e}); those digests are matched by words \
             alone until `paperboy db embed` succeeds"
        ),
        None => println!(
            "stopped on request while embedding interests; run `paperboy db embed` to finish"
        ),
    }
    Ok(exit_code(&bad))
}

fn exit_code(bad: &[BadRow]) -> ExitCode {
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One CSV record, read by column name.
struct Row<'a> {
    record: &'a csv::StringRecord,
    column: &'a HashMap<&'static str, usize>,
}

impl Row<'_> {
    /// The trimmed cell of `name`; empty when the file has no such column.
    fn cell(&self, name: &str) -> &str {
        self.column
            .get(name)
            .and_then(|&i| self.record.get(i))
            .map_or("", str::trim)
    }
}

/// One row as domain types, or what is wrong with it (naming the column).
fn parse_row(row: &Row, defaults: &Defaults) -> Result<(NewSubscriber, Profile), String> {
    let cell = |name: &str| row.cell(name);
    let bad = |column: &str, e: &dyn std::fmt::Display| format!("{column} `{}`: {e}", cell(column));
    let email = EmailAddress::parse(cell("email")).map_err(|e| bad("email", &e))?;
    let status = match cell("status") {
        "" => defaults.status,
        s => SubscriberStatus::parse(s).ok_or_else(|| {
            bad(
                "status",
                &"not a status; use pending, active, paused, unsubscribed or suspended",
            )
        })?,
    };
    let interests = Interests::parse(cell("interests")).map_err(|e| bad("interests", &e))?;
    check_interests(&interests).map_err(|e| format!("interests: {e}"))?;
    let frequency = match cell("frequency") {
        "" => Frequency::Daily,
        f => f.parse::<Frequency>().map_err(|e| bad("frequency", &e))?,
    };
    let send_time = match cell("send_time") {
        "" => defaults.send_time,
        t => t.parse::<SendTime>().map_err(|e| bad("send_time", &e))?,
    };
    let timezone = match cell("timezone") {
        "" => defaults.timezone,
        t => t.parse::<TimeZoneName>().map_err(|e| bad("timezone", &e))?,
    };
    let max_papers = match cell("max_papers") {
        "" => defaults.max_papers,
        m => m.parse::<MaxPapers>().map_err(|e| bad("max_papers", &e))?,
    };
    let profile = Profile::parse(
        split_list(cell("authors")),
        split_list(cell("categories")),
        cell("category_mode"),
        split_list(cell("examples")),
    )
    .map_err(|errors| {
        let problems: Vec<String> = errors
            .iter()
            .map(|e| match e.field() {
                // One value, quoted like the other one-value columns; lists name the entry.
                "category_mode" => bad("category_mode", e),
                column => format!("{column}: {e}"),
            })
            .collect();
        problems.join("; ")
    })?;
    Ok((
        NewSubscriber {
            email,
            status,
            interests,
            frequency,
            send_time,
            timezone,
            max_papers,
        },
        profile,
    ))
}

/// Writes every subscriber, a page at a time, with their profile.
pub async fn export(settings: Settings, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    let app = open_app(settings).await?;
    let sink: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut w = csv::Writer::from_writer(sink);
    w.write_record(COLUMNS)?;
    let mut after = 0;
    let mut written = 0u64;
    loop {
        let rows = app.store.subscribers_after(after, EXPORT_PAGE).await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            break;
        };
        let mut profiles = app.store.profiles_between(after, last).await?;
        for r in rows {
            let profile = profiles.remove(&r.id).unwrap_or_default();
            write_row(&mut w, r, profile)?;
            written += 1;
        }
        after = last;
    }
    w.flush()?;
    if let Some(path) = output {
        eprintln!("exported {written} subscribers to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn write_row<W: Write>(
    w: &mut csv::Writer<W>,
    r: SubscriberRow,
    profile: Profile,
) -> anyhow::Result<()> {
    w.write_record([
        r.email,
        r.status,
        r.interests,
        r.frequency,
        r.send_time,
        r.timezone,
        r.max_papers.to_string(),
        profile.authors.join("; "),
        profile.categories.join("; "),
        profile.category_mode.as_str().to_string(),
        profile.examples.join("; "),
    ])?;
    Ok(())
}
