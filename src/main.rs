//! The `paperboy` command line. Parses arguments, loads the configuration, sets up logging and
//! hands each command to `cli`; business logic lives in the library.

mod cli;

use clap::Parser;
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
    command: cli::Command,
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
