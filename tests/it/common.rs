//! Shared harness for the end-to-end tests: the real parts a user would run, on loopback.
//!
//! - [`SmtpSink`]: Postfix's `smtp-sink` (a real SMTP server we did not write) on a free port,
//!   dumping every mail transaction to a file; [`ReceivedMail`] reads those files back.
//! - [`FixtureServer`]: an axum server speaking the Hugging Face daily-papers API, serving the
//!   real fixture bodies from `tests/fixtures/hf/`, with per-date faults.
//! - [`TestApp`]: a temporary directory with a `paperboy.toml` and a database, and a way
//!   to run the built `paperboy` binary at a chosen "now" (`PAPERBOY_NOW`). The database is a
//!   SQLite file, or with `PAPERBOY_TEST_DATABASE=postgres` a fresh PostgreSQL database on
//!   127.0.0.1:5432 ([`PgDatabase`]) that is dropped when the test ends.
//!
//! Tools a developer laptop may lack (smtp-sink) make a test skip with a printed reason, unless
//! `PAPERBOY_REQUIRE_ALL=1` is set (CI sets it): then a missing tool fails the test.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use tempfile::TempDir;

/// The `base_url` every test config uses: links in emails must point here.
pub const BASE_URL: &str = "https://paperboy.example.org";
/// The `From` every test config uses.
pub const FROM: &str = "Paperboy <digest@paperboy.example.org>";
/// The `secret_key` every test config uses.
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef0123456789";

/// The real HF body of 2024-10-25 (29 papers, 2024 schema).
pub const HF_DAY_2024_10_25: &str = "daily_papers_2024-10-25.json";
/// One real HF item of the 2026 schema (paper 2602.23229), wrapped in `[]`.
pub const HF_ITEM_2026_03: &str = "daily_papers_item_2026-03.json";

// ---------------------------------------------------------------------------------------------
// Environment and tools
// ---------------------------------------------------------------------------------------------

/// True when `PAPERBOY_REQUIRE_ALL=1`: a missing tool must fail the test instead of skipping it.
pub fn require_all() -> bool {
    std::env::var("PAPERBOY_REQUIRE_ALL").is_ok_and(|v| v.trim() == "1")
}

/// Reports a missing tool: panics under `PAPERBOY_REQUIRE_ALL=1`, else prints why the test is
/// skipped. The caller returns early after this.
pub fn missing_tool(test: &str, what: &str, how_to_install: &str) {
    if require_all() {
        panic!(
            "{test}: {what} is missing and PAPERBOY_REQUIRE_ALL=1 forbids skipping; \
             install it: {how_to_install}"
        );
    }
    eprintln!("SKIPPED {test}: {what} is missing; install it: {how_to_install}");
}

/// Finds an executable by name on PATH, then in the given extra directories.
pub fn find_executable(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// True when this process runs as root (the owner of `/proc/self` is the effective uid).
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read, released).
/// Whether process `pid` holds the listening TCP socket on 127.0.0.1:`port` (Linux: the
/// socket's inode from `/proc/net/tcp`, found among the process's open files).
pub fn listens_on(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let local = format!("0100007F:{port:04X}");
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.get(1) == Some(&local.as_str()) && cols.get(3) == Some(&LISTEN))
                .then(|| cols.get(9).map(|inode| format!("socket:[{inode}]")))
                .flatten()
        })
        .collect();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// Leaves the developer's own `PAPERBOY*` variables out of a command the tests start: only
/// the ones a test sets reach the program.
pub fn without_developer_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("PAPERBOY")
        {
            command.env_remove(&key);
        }
    }
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Collapses every run of white space into one space and trims.
pub fn normalize_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: one fresh database per test
// ---------------------------------------------------------------------------------------------

/// The shared PostgreSQL server the tests create their databases on (trust auth, as CI runs it).
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// `PAPERBOY_TEST_DATABASE=postgres` runs every harness against PostgreSQL instead of SQLite.
pub const TEST_DATABASE_ENV: &str = "PAPERBOY_TEST_DATABASE";
pub const POSTGRES_INSTALL: &str =
    "`apt-get install postgresql` and start it on 127.0.0.1:5432 with trust auth (.ci/run does)";

/// True when this run of the suite is the PostgreSQL pass.
pub fn test_on_postgres() -> bool {
    std::env::var(TEST_DATABASE_ENV).is_ok_and(|v| v.trim().eq_ignore_ascii_case("postgres"))
}

/// A database created for one test on [`PG_SERVER`], dropped (with any session still on it)
/// when this value is dropped, however the test ends.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

fn psql(database: &str, sql: &str) -> std::io::Result<std::process::Output> {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database])
        .args(["-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
}

impl PgDatabase {
    /// Creates a fresh, empty database, or `None` when no server answers (or psql is missing).
    pub fn create() -> Option<PgDatabase> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        // Unique across the processes nextest runs side by side and across repeated runs.
        let name = format!(
            "paperboy_t_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        );
        let ok =
            psql("postgres", &format!("CREATE DATABASE {name}")).is_ok_and(|o| o.status.success());
        ok.then(|| PgDatabase {
            url: format!("{PG_SERVER}/{name}"),
            name,
        })
    }

    /// Creates a fresh database, or reports PostgreSQL missing (see [`missing_tool`]).
    pub fn create_or_skip(test: &str) -> Option<PgDatabase> {
        let db = Self::create();
        if db.is_none() {
            missing_tool(
                test,
                "a PostgreSQL server on 127.0.0.1:5432 (user postgres)",
                POSTGRES_INSTALL,
            );
        }
        db
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The database this test should use: `None` for a SQLite file, or a fresh PostgreSQL database
/// in the PostgreSQL pass. That pass was asked for explicitly, so a missing server fails.
pub fn test_database() -> Option<PgDatabase> {
    if !test_on_postgres() {
        return None;
    }
    Some(PgDatabase::create().unwrap_or_else(|| {
        panic!(
            "{TEST_DATABASE_ENV}=postgres but no PostgreSQL server answers on 127.0.0.1:5432 \
             (user postgres); {POSTGRES_INSTALL}"
        )
    }))
}

/// A database URL for a test that opens the store itself: a fresh PostgreSQL database in the
/// PostgreSQL pass (kept while the returned guard lives), else the SQLite file `sqlite_file`.
pub fn test_database_url(sqlite_file: &Path) -> (String, Option<PgDatabase>) {
    match test_database() {
        Some(db) => (db.url.clone(), Some(db)),
        None => (format!("sqlite://{}", sqlite_file.display()), None),
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP: smtp-sink
// ---------------------------------------------------------------------------------------------

pub const SMTP_SINK_INSTALL: &str = "`sudo apt-get install postfix` (Debian/Ubuntu; choose \
     \"No configuration\"), or run scripts/test.sh which installs it";

/// How to start an [`SmtpSink`].
#[derive(Clone, Debug, Default)]
pub struct SmtpSinkOptions {
    /// Listen on this port instead of a free one (e.g. to bring back a server that was down).
    pub port: Option<u16>,
    /// Extra smtp-sink flags before the address, e.g. `["-r", "RCPT"]` (soft-reject RCPT),
    /// `["-f", "."]` (hard-reject end of data), `["-w", "5"]` (slow DATA).
    /// Note: smtp-sink writes the dump file even for a transaction it rejects at ".".
    pub extra_args: Vec<String>,
}

/// A running Postfix `smtp-sink` on 127.0.0.1, dumping each mail transaction into a file.
/// Killed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl SmtpSink {
    /// Where smtp-sink is, if installed: `PAPERBOY_TEST_SMTP_SINK` when set (a path; an
    /// unusable one counts as missing), else PATH, then the usual sbin directories.
    pub fn binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("PAPERBOY_TEST_SMTP_SINK") {
            let path = PathBuf::from(path);
            let usable = fs::metadata(&path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            return usable.then_some(path);
        }
        find_executable("smtp-sink", &["/usr/sbin", "/usr/local/sbin", "/sbin"])
    }

    /// Starts smtp-sink on a free port, or reports it missing (see [`missing_tool`]) and returns
    /// `None`: the caller returns early.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        Self::start_with_or_skip(test, SmtpSinkOptions::default())
    }

    /// Starts smtp-sink on `port` (which must be free), or skips as [`Self::start_or_skip`].
    pub fn start_on_or_skip(test: &str, port: u16) -> Option<Self> {
        Self::start_with_or_skip(
            test,
            SmtpSinkOptions {
                port: Some(port),
                ..SmtpSinkOptions::default()
            },
        )
    }

    /// Starts smtp-sink with options, or skips as [`Self::start_or_skip`].
    pub fn start_with_or_skip(test: &str, options: SmtpSinkOptions) -> Option<Self> {
        let Some(binary) = Self::binary() else {
            missing_tool(test, "Postfix's smtp-sink", SMTP_SINK_INSTALL);
            return None;
        };
        Some(Self::start(&binary, &options))
    }

    fn start(binary: &Path, options: &SmtpSinkOptions) -> Self {
        // A chosen port can race with another process between our probe and smtp-sink's
        // bind: retry a few times with a new port. A given port gets one try.
        let attempts = if options.port.is_some() { 1 } else { 5 };
        let mut last_error = String::new();
        for _ in 0..attempts {
            let port = options.port.unwrap_or_else(free_port);
            match Self::try_start(binary, port, &options.extra_args) {
                Ok(sink) => return sink,
                Err(error) => last_error = error,
            }
        }
        panic!("could not start smtp-sink: {last_error}");
    }

    fn try_start(binary: &Path, port: u16, extra_args: &[String]) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("paperboy-smtp-sink-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        // As root smtp-sink drops to `nobody`, which must be able to write the dumps.
        let mail_dir = dir.path().join("mail");
        fs::create_dir(&mail_dir).map_err(|e| format!("create {}: {e}", mail_dir.display()))?;
        for d in [dir.path(), mail_dir.as_path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o777))
                .map_err(|e| format!("chmod {}: {e}", d.display()))?;
        }
        let log_path = dir.path().join("smtp-sink.log");
        let log = fs::File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("clone log: {e}"))?;

        let mut command = Command::new(binary);
        if running_as_root() {
            command.args(["-u", "nobody"]);
        }
        command
            .arg("-d")
            .arg(format!("{}/%Y%m%d%H%M%S.", mail_dir.display()))
            .args(extra_args)
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let mut child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!(
                    "smtp-sink on port {port} exited with {status} before accepting \
                     connections: {}",
                    log.trim()
                ));
            }
            // Ours, not merely someone's: under parallel tests another smtp-sink may hold the
            // port while ours has yet to fail its bind, and the test would then talk to it.
            if listens_on(child.id(), port) {
                return Ok(Self { child, port, dir });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "smtp-sink did not listen on port {port} within 10 s"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`, for `mail.smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first (by file time, then name).
    #[track_caller]
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mail_dir = self.dir.path().join("mail");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(&mail_dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", mail_dir.display()))
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.is_file())
            .map(|path| {
                let modified = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, path)
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| {
                // A dump listed a moment ago was seen to be gone when read (under load); a file
                // that is gone is no message to count.
                let bytes = match fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                    Err(e) => panic!("read {}: {e}", path.display()),
                };
                ReceivedMail::from_dump(&bytes, path.clone())
                    .unwrap_or_else(|e| panic!("parse smtp-sink dump {}: {e}", path.display()))
            })
            .collect()
    }

    /// How many dump files hold a transaction that never got to DATA. smtp-sink deletes such a
    /// dump when its session ends, so this sees only sessions still open: a zero proves little.
    pub fn transactions_without_message(&self) -> usize {
        let mail_dir = self.dir.path().join("mail");
        fs::read_dir(&mail_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| {
                        fs::read(entry.path())
                            .ok()
                            .and_then(|bytes| ReceivedMail::from_dump(&bytes, entry.path()).ok())
                            .is_some_and(|mail| mail.is_none())
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// How many mail transactions smtp-sink has recorded (dump files, complete or not): a cheap
    /// progress count to poll, where [`SmtpSink::messages`] parses every file.
    pub fn transaction_count(&self) -> usize {
        fs::read_dir(self.dir.path().join("mail"))
            .map(|entries| entries.flatten().count())
            .unwrap_or(0)
    }

    /// Messages received so far for one envelope recipient.
    #[track_caller]
    pub fn messages_to(&self, address: &str) -> Vec<ReceivedMail> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m.envelope_to
                    .iter()
                    .any(|to| to.eq_ignore_ascii_case(address))
            })
            .collect()
    }

    /// Waits until at least `count` messages arrived (for a daemon that sends in the
    /// background); returns them, or panics after `timeout`.
    #[track_caller]
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected at least {count} messages within {timeout:?}, got {}",
                    messages.len()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl SmtpSink {
    /// The smtp-sink process id (to check it is gone after drop).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as an SMTP server received it: the envelope and the bytes after DATA.
#[derive(Clone)]
pub struct ReceivedMail {
    /// `MAIL FROM` address, without angle brackets or parameters.
    pub envelope_from: String,
    /// Each `RCPT TO` address in order, without angle brackets or parameters.
    pub envelope_to: Vec<String>,
    /// The message as sent (headers and body, LF line ends, dot-unstuffed).
    pub raw: Vec<u8>,
    /// Where it came from (a dump file, or an .eml file).
    pub file: PathBuf,
}

impl fmt::Debug for ReceivedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedMail")
            .field("envelope_from", &self.envelope_from)
            .field("envelope_to", &self.envelope_to)
            .field("file", &self.file)
            .field("raw", &String::from_utf8_lossy(&self.raw))
            .finish()
    }
}

/// `<a@x.org> SIZE=12` -> `a@x.org`
fn envelope_address(args: &str) -> String {
    let first = args.split_whitespace().next().unwrap_or("");
    first
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

impl ReceivedMail {
    /// Parses one smtp-sink dump file: `X-…` lines smtp-sink adds, its three-line `Received:`
    /// header, then the message, then one empty line. `Ok(None)` for a transaction that
    /// never reached DATA (only the `X-…` lines).
    pub fn from_dump(bytes: &[u8], file: PathBuf) -> Result<Option<Self>, String> {
        let mut envelope_from = None;
        let mut envelope_to = Vec::new();
        let mut offset = 0;
        let mut in_received = false;
        loop {
            let rest = &bytes[offset..];
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                if in_received || !rest.is_empty() {
                    return Err("ended inside smtp-sink's own headers".into());
                }
                return Ok(None);
            };
            let line = String::from_utf8_lossy(&rest[..end]);
            let line = line.trim_end_matches('\r');
            if in_received {
                if line.starts_with([' ', '\t']) {
                    offset += end + 1;
                    continue;
                }
                break;
            }
            if let Some(args) = line.strip_prefix("X-Mail-Args:") {
                envelope_from = Some(envelope_address(args));
            } else if let Some(args) = line.strip_prefix("X-Rcpt-Args:") {
                envelope_to.push(envelope_address(args));
            } else if line.starts_with("Received:") {
                in_received = true;
            } else if !line.starts_with("X-") {
                return Err(format!("unexpected line before Received: {line:?}"));
            }
            offset += end + 1;
        }
        let mut raw = bytes[offset..].to_vec();
        // smtp-sink ends each dump with one empty line of its own.
        if raw.ends_with(b"\n\n") {
            raw.pop();
        }
        Ok(Some(Self {
            envelope_from: envelope_from.ok_or("no X-Mail-Args line")?,
            envelope_to,
            raw,
            file,
        }))
    }

    /// Reads an `.eml` file (e.g. from `send --dry-run` or the file transport). The envelope
    /// comes from the `To` header, the envelope sender from `From`.
    pub fn from_eml(path: &Path) -> Self {
        let raw = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut mail = Self {
            envelope_from: String::new(),
            envelope_to: Vec::new(),
            raw,
            file: path.to_path_buf(),
        };
        mail.envelope_from = mail
            .header("From")
            .map(|v| address_in(&v))
            .unwrap_or_default();
        mail.envelope_to = mail
            .header("To")
            .map(|v| v.split(',').map(address_in).collect())
            .unwrap_or_default();
        mail
    }

    /// The message parsed by mail-parser.
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .unwrap_or_else(|| panic!("mail-parser could not parse {:?}", self))
    }

    /// The top-level header block, unfolded: (name, value) in order.
    pub fn header_fields(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.raw).replace("\r\n", "\n");
        let block = text.split("\n\n").next().unwrap_or("");
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim().to_string(), value.to_string()));
            }
        }
        fields
            .into_iter()
            .map(|(name, value)| (name, value.trim().to_string()))
            .collect()
    }

    /// Every value of a top-level header (case-insensitive name), unfolded, not decoded.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.header_fields()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The single value of a top-level header; panics when it appears more than once.
    #[track_caller]
    pub fn header(&self, name: &str) -> Option<String> {
        let mut values = self.headers(name);
        assert!(
            values.len() <= 1,
            "header {name} appears {} times in {:?}",
            values.len(),
            self
        );
        values.pop()
    }

    /// The decoded Subject.
    pub fn subject(&self) -> Option<String> {
        self.parsed().subject().map(str::to_string)
    }

    /// The decoded body of the first real `text/plain` part (never converted from HTML).
    pub fn text_body(&self) -> Option<String> {
        self.first_part_of_type("text", "plain")
    }

    /// The decoded body of the first real `text/html` part (never converted from text).
    pub fn html_body(&self) -> Option<String> {
        self.first_part_of_type("text", "html")
    }

    fn first_part_of_type(&self, ctype: &str, subtype: &str) -> Option<String> {
        let message = self.parsed();
        message
            .parts
            .iter()
            .find(|part| match part.content_type() {
                Some(ct) => {
                    ct.ctype().eq_ignore_ascii_case(ctype)
                        && ct
                            .subtype()
                            .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
                }
                // No Content-Type means text/plain (RFC 2045).
                None => ctype == "text" && subtype == "plain" && !part.is_multipart(),
            })
            .and_then(|part| part.text_contents().map(str::to_string))
    }

    /// The MIME tree as `type/subtype` strings, children indented: for messages and asserts.
    pub fn mime_structure(&self) -> Vec<String> {
        fn walk(message: &mail_parser::Message<'_>, id: u32, depth: usize, out: &mut Vec<String>) {
            let Some(part) = message.part(id) else { return };
            let ct = part
                .content_type()
                .map(|ct| {
                    format!(
                        "{}/{}",
                        ct.ctype().to_ascii_lowercase(),
                        ct.subtype().unwrap_or("").to_ascii_lowercase()
                    )
                })
                .unwrap_or_else(|| "text/plain".to_string());
            out.push(format!("{}{ct}", "  ".repeat(depth)));
            if let PartType::Multipart(children) = &part.body {
                for &child in children {
                    walk(message, child, depth + 1, out);
                }
            }
        }
        let message = self.parsed();
        let mut out = Vec::new();
        walk(&message, 0, 0, &mut out);
        out
    }

    /// Ok when the message is `multipart/alternative` with exactly two parts: `text/plain`
    /// first, then `text/html`.
    pub fn check_alternative(&self) -> Result<(), String> {
        let structure = self.mime_structure();
        let expected = ["multipart/alternative", "  text/plain", "  text/html"];
        if structure == expected {
            Ok(())
        } else {
            Err(format!(
                "expected MIME structure {expected:?}, got {structure:?}"
            ))
        }
    }

    #[track_caller]
    pub fn assert_alternative(&self) {
        if let Err(e) = self.check_alternative() {
            panic!("{e}\nmessage: {self:?}");
        }
    }

    /// Every http(s) URL in the text and HTML parts.
    pub fn links(&self) -> Vec<String> {
        let mut links = Vec::new();
        for body in [self.text_body(), self.html_body()].into_iter().flatten() {
            links.extend(find_links(&body));
        }
        links
    }
}

/// `Name <a@x.org>` or `a@x.org` -> `a@x.org`
fn address_in(value: &str) -> String {
    let value = value.trim();
    match (value.rfind('<'), value.rfind('>')) {
        (Some(start), Some(end)) if start < end => value[start + 1..end].trim().to_string(),
        _ => value.to_string(),
    }
}

/// Every `http://` or `https://` URL in a text, cut at white space, quotes, angle brackets and
/// closing parentheses; HTML's `&amp;` is turned back into `&`.
pub fn find_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    loop {
        let next = [rest.find("http://"), rest.find("https://")]
            .into_iter()
            .flatten()
            .min();
        let Some(start) = next else { break };
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || "\"'<>)]".contains(c))
            .unwrap_or(candidate.len());
        let link = candidate[..end].trim_end_matches(['.', ',', ';']);
        links.push(link.replace("&amp;", "&"));
        rest = &candidate[end..];
    }
    links
}

/// Sends one message with a hand-written SMTP dialogue (no client library): for checking the
/// sink itself. `data` uses `\n` line ends; dot-stuffing and CRLF are applied here.
pub fn smtp_send_raw(port: u16, from: &str, to: &[&str], data: &str) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);

    reply(&mut reader, "220")?;
    command(&mut writer, &mut reader, "EHLO harness.test", "250")?;
    let sent = transaction(&mut writer, &mut reader, from, to, data);
    // A refused transaction still ends with QUIT, as a real client's does: hanging up instead
    // left smtp-sink's dump of it to a race (seen missing under load).
    let quit = command(&mut writer, &mut reader, "QUIT", "221");
    sent.and(quit)
}

fn transaction(
    writer: &mut impl Write,
    reader: &mut impl BufRead,
    from: &str,
    to: &[&str],
    data: &str,
) -> Result<(), String> {
    command(writer, reader, &format!("MAIL FROM:<{from}>"), "250")?;
    for rcpt in to {
        command(writer, reader, &format!("RCPT TO:<{rcpt}>"), "250")?;
    }
    command(writer, reader, "DATA", "354")?;
    let mut body = String::new();
    for line in data.lines() {
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    writer
        .write_all(body.as_bytes())
        .map_err(|e| format!("write data: {e}"))?;
    reply(reader, "250").map_err(|e| format!("end of data: {e}"))
}

/// One SMTP reply (multi-line ones read to their last line), which must start with `expect`.
fn reply(reader: &mut impl BufRead, expect: &str) -> Result<(), String> {
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read reply: {e}"))?;
        if line.is_empty() {
            return Err(format!("connection closed waiting for {expect}"));
        }
        if line.len() >= 4 && &line[3..4] == "-" {
            continue;
        }
        return if line.starts_with(expect) {
            Ok(())
        } else {
            Err(format!("expected {expect}, got {:?}", line.trim_end()))
        };
    }
}

/// One SMTP command and its reply.
fn command(
    writer: &mut impl Write,
    reader: &mut impl BufRead,
    line: &str,
    expect: &str,
) -> Result<(), String> {
    writer
        .write_all(format!("{line}\r\n").as_bytes())
        .map_err(|e| format!("write {line}: {e}"))?;
    reply(reader, expect).map_err(|e| format!("{line}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Paper source: a local Hugging Face daily-papers API
// ---------------------------------------------------------------------------------------------

/// The bytes of a fixture in `tests/fixtures/hf/`, unchanged.
pub fn hf_fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()))
}

/// What a test needs to know about one paper of a fixture.
#[derive(Clone, Debug)]
pub struct FixturePaper {
    pub id: String,
    /// White space normalised.
    pub title: String,
    pub summary: String,
}

impl FixturePaper {
    /// True when the title or abstract contains any of the (lower-case) stems.
    pub fn mentions_any(&self, stems: &[&str]) -> bool {
        let text = format!("{} {}", self.title, self.summary).to_lowercase();
        stems.iter().any(|stem| text.contains(stem))
    }
}

/// The papers of an HF fixture, in the file's order.
pub fn hf_fixture_papers(name: &str) -> Vec<FixturePaper> {
    let body: serde_json::Value =
        serde_json::from_slice(&hf_fixture(name)).expect("fixture is JSON");
    body.as_array()
        .expect("fixture is a JSON array")
        .iter()
        .map(|item| {
            let paper = &item["paper"];
            FixturePaper {
                id: paper["id"].as_str().expect("paper.id").to_string(),
                title: normalize_ws(paper["title"].as_str().expect("paper.title")),
                summary: normalize_ws(paper["summary"].as_str().unwrap_or("")),
            }
        })
        .collect()
}

/// The item [`Fault::BrokenItem`] inserts: no usable id, title or anything else.
pub const BROKEN_ITEM: &str = r#"{"paper":{"id":null,"title":null,"summary":17,"upvotes":"many","authors":"nobody","publishedAt":"yesterday"},"title":null,"publishedAt":"not a date","numComments":"x"}"#;

/// A way a date's answer goes wrong.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this HTTP status and a small JSON error body.
    Status(u16),
    /// Wait this long, then answer normally (longer than the client's timeout: a timeout).
    Delay(Duration),
    /// Answer with only the first N bytes of the body (malformed JSON).
    Truncate(usize),
    /// Insert [`BROKEN_ITEM`] at this index of the body's JSON array.
    BrokenItem(usize),
}

/// One request the fixture server saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub path: String,
    pub date: Option<String>,
    pub limit: Option<String>,
    pub page: Option<String>,
}

#[derive(Default)]
struct FixtureState {
    /// (date, page) -> body
    bodies: HashMap<(String, u32), Vec<u8>>,
    faults: HashMap<String, Fault>,
    seen: Vec<SeenRequest>,
}

type Shared = Arc<Mutex<FixtureState>>;

/// A local `GET /api/daily_papers?date=…&limit=…&p=…`, like huggingface.co's, on its own
/// thread and runtime (so tests may block while the binary talks to it). Unknown dates and
/// pages answer `[]`. Stops on drop.
pub struct FixtureServer {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FixtureServer {
    pub fn start() -> Self {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/api/daily_papers", get(daily_papers))
            .with_state(state.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind fixture server");
                addr_tx
                    .send(listener.local_addr().expect("local_addr"))
                    .expect("send addr");
                let serve = async move { axum::serve(listener, app).await };
                tokio::select! {
                    result = serve => result.expect("fixture server"),
                    _ = shutdown_rx => {}
                }
            });
            // Drop delayed handlers at once instead of waiting for them.
            runtime.shutdown_background();
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fixture server did not start");
        Self {
            addr,
            state,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `sources.hf.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `body` for `date` (page 0).
    pub fn set_day(&self, date: &str, body: impl Into<Vec<u8>>) {
        self.set_page(date, 0, body);
    }

    /// Serves the real fixture file `name` for `date` (page 0).
    pub fn set_day_fixture(&self, date: &str, name: &str) {
        self.set_day(date, hf_fixture(name));
    }

    /// Serves `body` for page `page` of `date`.
    pub fn set_page(&self, date: &str, page: u32, body: impl Into<Vec<u8>>) {
        self.lock()
            .bodies
            .insert((date.to_string(), page), body.into());
    }

    /// Makes every answer for `date` go wrong this way.
    pub fn fail(&self, date: &str, fault: Fault) {
        self.lock().faults.insert(date.to_string(), fault);
    }

    /// Answers `date` normally again.
    pub fn heal(&self, date: &str) {
        self.lock().faults.remove(date);
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }

    /// How many requests asked for `date`.
    pub fn request_count(&self, date: &str) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|r| r.date.as_deref() == Some(date))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FixtureState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn daily_papers(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let date = query.get("date").cloned();
    let page: u32 = query.get("p").and_then(|p| p.parse().ok()).unwrap_or(0);
    let (body, fault) = {
        let mut state = state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.seen.push(SeenRequest {
            path: "/api/daily_papers".into(),
            date: date.clone(),
            limit: query.get("limit").cloned(),
            page: query.get("p").cloned(),
        });
        let key = (date.clone().unwrap_or_default(), page);
        let body = state
            .bodies
            .get(&key)
            .cloned()
            .unwrap_or_else(|| b"[]".to_vec());
        let fault = date.as_ref().and_then(|d| state.faults.get(d).cloned());
        (body, fault)
    };
    let json = |status: StatusCode, body: Vec<u8>| {
        (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match fault {
        None => json(StatusCode::OK, body),
        Some(Fault::Status(code)) => json(
            StatusCode::from_u16(code).expect("valid status"),
            br#"{"error":"Internal Error - We're working hard to fix this as soon as possible!"}"#
                .to_vec(),
        ),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            json(StatusCode::OK, body)
        }
        Some(Fault::Truncate(n)) => json(StatusCode::OK, body[..n.min(body.len())].to_vec()),
        Some(Fault::BrokenItem(index)) => {
            let mut items: Vec<serde_json::Value> =
                serde_json::from_slice(&body).expect("BrokenItem needs a JSON array body");
            let broken: serde_json::Value =
                serde_json::from_str(BROKEN_ITEM).expect("BROKEN_ITEM is JSON");
            items.insert(index.min(items.len()), broken);
            json(
                StatusCode::OK,
                serde_json::to_vec(&items).expect("serialize"),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

/// Where the app sends mail.
#[derive(Clone, Debug)]
pub enum MailSetting {
    /// `transport = "smtp"` with this `smtp_url`.
    Smtp(String),
    /// `transport = "file"` with `file_dir = "<tmp>/outbox"`.
    File,
}

/// Builds a [`TestApp`].
#[derive(Clone, Debug)]
pub struct TestAppBuilder {
    hf_base_url: Option<String>,
    mail: MailSetting,
    source_timeout_secs: u64,
    extra_toml: String,
    /// Why this test must run on SQLite whatever `PAPERBOY_TEST_DATABASE` says.
    sqlite_only: Option<&'static str>,
    /// A database the test made itself (e.g. always PostgreSQL), whatever the pass.
    database_url: Option<String>,
}

impl TestAppBuilder {
    /// Keeps this test on a SQLite file even in the PostgreSQL pass, because it inspects the
    /// file itself; `why` is printed so the opt-out is visible in the test output.
    pub fn sqlite_only(mut self, why: &'static str) -> Self {
        self.sqlite_only = Some(why);
        self
    }

    /// `database.url` = this database, in both passes (the test owns and drops it).
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_string());
        self
    }

    /// `sources.hf` enabled, pointing at this fixture server.
    pub fn hf(mut self, server: &FixtureServer) -> Self {
        self.hf_base_url = Some(server.base_url());
        self
    }

    /// Mail through this smtp-sink.
    pub fn smtp(self, sink: &SmtpSink) -> Self {
        self.smtp_url(sink.url())
    }

    /// Mail through `smtp://127.0.0.1:PORT` (whether anything listens there or not).
    pub fn smtp_port(self, port: u16) -> Self {
        self.smtp_url(format!("smtp://127.0.0.1:{port}"))
    }

    pub fn smtp_url(mut self, url: String) -> Self {
        self.mail = MailSetting::Smtp(url);
        self
    }

    /// Mail into `<tmp>/outbox` as .eml files (the default).
    pub fn file_transport(mut self) -> Self {
        self.mail = MailSetting::File;
        self
    }

    /// `sources.timeout_secs` (default 2).
    pub fn source_timeout_secs(mut self, secs: u64) -> Self {
        self.source_timeout_secs = secs;
        self
    }

    /// Raw TOML appended to the config file; start it with a `[table]` header.
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push('\n');
        self.extra_toml.push_str(toml);
        self
    }

    pub fn build(self) -> TestApp {
        let dir = tempfile::Builder::new()
            .prefix("paperboy-test-")
            .tempdir()
            .expect("tempdir");
        let config_path = dir.path().join("paperboy.toml");
        let db_path = dir.path().join("paperboy.db");
        let outbox = dir.path().join("outbox");
        let pg = match self.sqlite_only {
            _ if self.database_url.is_some() => None,
            Some(why) if test_on_postgres() => {
                eprintln!("this test stays on SQLite in the PostgreSQL pass: {why}");
                None
            }
            Some(_) => None,
            None => test_database(),
        };
        let database_url = match (&self.database_url, &pg) {
            (Some(url), _) => url.clone(),
            (None, Some(d)) => d.url.clone(),
            (None, None) => format!("sqlite://{}", db_path.display()),
        };
        let mail = match &self.mail {
            MailSetting::Smtp(url) => {
                format!("transport = \"smtp\"\nsmtp_url = {}\n", toml_string(url))
            }
            MailSetting::File => format!(
                "transport = \"file\"\nfile_dir = {}\n",
                toml_string(&outbox.display().to_string())
            ),
        };
        let hf = match &self.hf_base_url {
            Some(url) => format!("enabled = true\nbase_url = {}\n", toml_string(url)),
            None => "enabled = false\n".to_string(),
        };
        let config = format!(
            "secret_key = {secret}\n\
             \n\
             [database]\n\
             url = {db}\n\
             \n\
             [web]\n\
             bind = \"127.0.0.1:0\"\n\
             base_url = {base}\n\
             \n\
             [mail]\n\
             {mail}\
             from = {from}\n\
             \n\
             [sources]\n\
             timeout_secs = {timeout}\n\
             retries = 1\n\
             backoff_ms = 50\n\
             \n\
             [sources.hf]\n\
             {hf}\
             \n\
             [sources.arxiv]\n\
             enabled = false\n\
             {extra}\n",
            secret = toml_string(SECRET_KEY),
            db = toml_string(&database_url),
            base = toml_string(BASE_URL),
            from = toml_string(FROM),
            timeout = self.source_timeout_secs,
            extra = self.extra_toml,
        );
        fs::write(&config_path, config).expect("write config");
        TestApp {
            dir,
            config_path,
            db_path,
            database_url,
            outbox,
            _pg: pg,
        }
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A temporary home for one paperboy: config file, database, outbox.
pub struct TestApp {
    dir: TempDir,
    pub config_path: PathBuf,
    /// The SQLite file `database.url` names on SQLite (on PostgreSQL nothing is there).
    pub db_path: PathBuf,
    /// `database.url` as written in the config: the SQLite file or the test's PostgreSQL database.
    pub database_url: String,
    /// `mail.file_dir` when the file transport is used.
    pub outbox: PathBuf,
    /// The PostgreSQL database of this test, dropped with it (after the fields above).
    _pg: Option<PgDatabase>,
}

impl TestApp {
    /// Defaults: HF disabled, file transport, `timeout_secs = 2`, `retries = 1`,
    /// `backoff_ms = 50`.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            hf_base_url: None,
            mail: MailSetting::File,
            source_timeout_secs: 2,
            extra_toml: String::new(),
            sqlite_only: None,
            database_url: None,
        }
    }

    /// The temporary directory everything lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `sqlite` or `postgres`: the backend `database.url` names, as `paperboy check` says it.
    pub fn backend(&self) -> &'static str {
        if self.database_url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.config_path).expect("read config")
    }

    /// `paperboy --config <file> ARGS…`, to be run with [`Invocation::run`].
    pub fn paperboy<I, S>(&self, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all = vec![
            "--config".to_string(),
            self.config_path.display().to_string(),
        ];
        all.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        Invocation {
            program: PathBuf::from(env!("CARGO_BIN_EXE_paperboy")),
            args: all,
            now: None,
            env: Vec::new(),
            timeout: Duration::from_secs(90),
            cwd: self.dir.path().to_path_buf(),
            stdin: None,
        }
    }

    /// Any other program, with the same environment rules (for checking the harness).
    pub fn program<I, S>(&self, program: &Path, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Invocation {
            program: program.to_path_buf(),
            args: args.into_iter().map(|a| a.as_ref().to_string()).collect(),
            now: None,
            env: Vec::new(),
            timeout: Duration::from_secs(90),
            cwd: self.dir.path().to_path_buf(),
            stdin: None,
        }
    }

    /// `papers --format json` at `now`, as parsed JSON (asserting success and an array).
    #[track_caller]
    pub fn papers_json(&self, now: &str) -> Vec<serde_json::Value> {
        let out = self.paperboy(["papers", "--format", "json"]).at(now).run();
        out.assert_success();
        out.json()
            .as_array()
            .unwrap_or_else(|| panic!("papers --format json is not an array:\n{out}"))
            .clone()
    }

    /// The ids that `papers --format json` lists at `now`.
    #[track_caller]
    pub fn paper_ids(&self, now: &str) -> Vec<String> {
        self.papers_json(now)
            .iter()
            .map(|p| {
                p["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("paper without a string id: {p}"))
                    .to_string()
            })
            .collect()
    }

    /// `subscriber list --format json` at `now`, parsed.
    #[track_caller]
    pub fn subscribers_json(&self, now: &str) -> Vec<serde_json::Value> {
        let out = self
            .paperboy(["subscriber", "list", "--format", "json"])
            .at(now)
            .run();
        out.assert_success();
        out.json()
            .as_array()
            .unwrap_or_else(|| panic!("subscriber list --format json is not an array:\n{out}"))
            .clone()
    }

    /// `subscriber add EMAIL --interests QUERY --confirmed` at `now`, asserting success.
    #[track_caller]
    pub fn add_confirmed_subscriber(&self, now: &str, email: &str, interests: &str) {
        self.paperboy([
            "subscriber",
            "add",
            email,
            "--interests",
            interests,
            "--confirmed",
        ])
        .at(now)
        .run()
        .assert_success();
    }

    /// The `.eml` files in the outbox (file transport), parsed, sorted by name.
    pub fn outbox_messages(&self) -> Vec<ReceivedMail> {
        eml_files(&self.outbox)
    }
}

/// Every `.eml` file under `dir` (recursively), parsed, sorted by path. Empty when `dir` does
/// not exist.
pub fn eml_files(dir: &Path) -> Vec<ReceivedMail> {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "eml") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    collect(dir, &mut paths);
    paths.sort();
    paths.iter().map(|p| ReceivedMail::from_eml(p)).collect()
}

/// One run of a program, configured before [`Invocation::run`].
#[derive(Clone, Debug)]
pub struct Invocation {
    program: PathBuf,
    args: Vec<String>,
    now: Option<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    cwd: PathBuf,
    stdin: Option<PathBuf>,
}

impl Invocation {
    /// Feeds this file to the program's standard input (else it reads an empty one).
    pub fn stdin_from(mut self, file: &Path) -> Self {
        self.stdin = Some(file.to_path_buf());
        self
    }

    /// Runs with `PAPERBOY_NOW` set to this RFC 3339 time.
    pub fn at(mut self, now: &str) -> Self {
        self.now = Some(now.to_string());
        self
    }

    /// Sets an environment variable for this run (e.g. `PAPERBOY__MAIL__MAX_CONNECTIONS`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Kills the program and fails the test after this long (default 90 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs to completion, capturing stdout and stderr. The developer's `PAPERBOY*`
    /// variables are never passed on; only the ones set here are.
    pub fn run(self) -> CmdOutput {
        let mut command = Command::new(&self.program);
        command.args(&self.args).current_dir(&self.cwd);
        without_developer_env(&mut command);
        command.env("NO_COLOR", "1");
        if let Some(now) = &self.now {
            command.env("PAPERBOY_NOW", now);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let stdin = match &self.stdin {
            Some(file) => Stdio::from(
                std::fs::File::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            ),
            None => Stdio::null(),
        };
        command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let description = format!(
            "{}{} {}",
            self.now
                .as_ref()
                .map(|n| format!("PAPERBOY_NOW={n} "))
                .unwrap_or_default(),
            self.program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            self.args.join(" ")
        );
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display()));
        let stdout = read_in_background(child.stdout.take().expect("stdout"));
        let stderr = read_in_background(child.stderr.take().expect("stderr"));
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = stdout.collect(Duration::from_millis(300));
                let stderr = stderr.collect(Duration::from_millis(300));
                panic!(
                    "`{description}` did not finish within {:?}; killed.\n--- stdout\n{}\n\
                     --- stderr\n{}",
                    self.timeout,
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let elapsed = started.elapsed();
        CmdOutput {
            description,
            status,
            stdout: String::from_utf8_lossy(&stdout.collect(Duration::from_secs(10))).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.collect(Duration::from_secs(10))).into_owned(),
            elapsed,
        }
    }
}

/// A pipe drained on its own thread (so a chatty program never blocks on a full pipe).
struct PipeReader(std::sync::mpsc::Receiver<Vec<u8>>);

impl PipeReader {
    /// Everything the pipe gave until it closed; if a left-over grandchild keeps it open
    /// longer than `wait`, a note saying so instead.
    fn collect(self, wait: Duration) -> Vec<u8> {
        self.0.recv_timeout(wait).unwrap_or_else(|_| {
            b"<not collected: the pipe stayed open, held by a process the program left behind>"
                .to_vec()
        })
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> PipeReader {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    PipeReader(rx)
}

/// What a run printed and how it ended. `Display` shows all of it, for assertion messages.
#[derive(Clone, Debug)]
pub struct CmdOutput {
    pub description: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` -> {} in {:.1?}\n--- stdout\n{}\n--- stderr\n{}\n---",
            self.description,
            self.status,
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Asserts a non-zero exit (not a crash by signal: the program must decide to fail).
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            self.status.code().is_some_and(|code| code != 0),
            "expected a non-zero exit code:\n{self}"
        );
        assert!(
            !self.stderr.contains("panicked at"),
            "expected a clean failure, not a panic:\n{self}"
        );
        self
    }

    /// stdout and stderr together, for "is this said anywhere" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

/// Polls `done` every `every` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}
