//! [`TestApp`]: a temporary directory with a `paperboy.toml` and a database, and the built
//! `paperboy` binary run against them at a chosen "now" (`PAPERBOY_NOW`).

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{
    FixtureServer, Invocation, PgDatabase, ReceivedMail, SmtpSink, eml_files, test_database,
    test_on_postgres,
};

/// The `base_url` every test config uses: links in emails must point here.
pub const BASE_URL: &str = "https://paperboy.example.org";
/// The `From` every test config uses.
pub const FROM: &str = "Paperboy <digest@paperboy.example.org>";
/// The `secret_key` every test config uses.
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef0123456789";

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
    /// `matching.highlight_sentences` (off unless a test turns it on).
    highlight_sentences: bool,
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

    /// `matching.highlight_sentences = true`, the embedded default. Off otherwise: embedding
    /// every abstract sentence after each fetch costs about one and a half times the papers'
    /// own embedding, which every test that fetches would pay for a highlight it never looks
    /// at. (The config file then has a `[matching]` table: `extra_toml` must not add one.)
    pub fn highlight_sentences(mut self, on: bool) -> Self {
        self.highlight_sentences = on;
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
             \n\
             [matching]\n\
             highlight_sentences = {highlight}\n\
             {extra}\n",
            secret = toml_string(SECRET_KEY),
            db = toml_string(&database_url),
            base = toml_string(BASE_URL),
            from = toml_string(FROM),
            timeout = self.source_timeout_secs,
            highlight = self.highlight_sentences,
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
            highlight_sentences: false,
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
        Invocation::new(
            PathBuf::from(env!("CARGO_BIN_EXE_paperboy")),
            all,
            self.dir.path().to_path_buf(),
        )
    }

    /// Any other program, with the same environment rules (for checking the harness).
    pub fn program<I, S>(&self, program: &Path, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Invocation::new(
            program.to_path_buf(),
            args.into_iter().map(|a| a.as_ref().to_string()).collect(),
            self.dir.path().to_path_buf(),
        )
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
