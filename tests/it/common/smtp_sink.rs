//! Postfix's `smtp-sink`, a real SMTP server we did not write, on a free port, dumping every mail
//! transaction to a file; and a hand-written SMTP client to check the sink itself.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{ReceivedMail, find_executable, free_port, listens_on, missing_tool, running_as_root};

pub const SMTP_SINK_INSTALL: &str = "`sudo apt-get install postfix` (Debian/Ubuntu; choose \
     \"No configuration\"), or run scripts/test.sh which installs it";

/// How to start an [`SmtpSink`].
#[derive(Clone, Debug, Default)]
pub struct SmtpSinkOptions {
    /// Listen on this port instead of a free one (e.g. to bring back a server that was down).
    pub port: Option<u16>,
    /// Extra smtp-sink flags before the address, e.g. `["-r", "RCPT"]` (soft-reject RCPT),
    /// `["-f", "."]` (hard-reject end of data), `["-w", "5"]` (slow DATA), `["-v"]` (log the
    /// conversation, for [`SmtpSink::wait_for_sessions`]).
    /// Note: smtp-sink writes the dump file even for a transaction it rejects at ".".
    pub extra_args: Vec<String>,
}

/// A running Postfix `smtp-sink` on 127.0.0.1, dumping each mail transaction into a file.
/// Killed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: TempDir,
    /// Started with `-v`: the log holds each session's commands.
    logs_conversation: bool,
}

/// smtp-sink's standard output and error, in its directory.
const LOG: &str = "smtp-sink.log";

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
        let log_path = dir.path().join(LOG);
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
                return Ok(Self {
                    child,
                    port,
                    dir,
                    logs_conversation: extra_args.iter().any(|a| a == "-v"),
                });
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

    /// Waits until at least `count` SMTP sessions have ended and none is open, and returns every
    /// ended one, oldest first, as the commands the client sent (`EHLO host`, `MAIL FROM:<…>`,
    /// `.` for the end of a message; verbs in capitals). Read from the conversation smtp-sink
    /// logs with `-v`, so the sink must have been started with it; sessions are told apart by
    /// their order in the log, so this is for one client at a time. Panics after `timeout`.
    #[track_caller]
    pub fn wait_for_sessions(&self, count: usize, timeout: Duration) -> Vec<Vec<String>> {
        assert!(
            self.logs_conversation,
            "start the sink with extra_args [\"-v\"] to see its sessions"
        );
        let deadline = Instant::now() + timeout;
        loop {
            let log = fs::read_to_string(self.dir.path().join(LOG)).unwrap_or_default();
            let (ended, open) = sessions_in(&log);
            if ended.len() >= count && open == 0 {
                return ended;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {count} ended SMTP sessions and none open within {timeout:?}, \
                     got {} ended and {open} open; smtp-sink's log:\n{log}",
                    ended.len()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
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

/// The sessions of a `-v` log that have ended, each as its client's commands, and how many are
/// still open. Lines are `smtp-sink: connect (…)`, `smtp-sink: ehlo host`, …,
/// `smtp-sink: disconnect`, among others about sockets and buffers.
fn sessions_in(log: &str) -> (Vec<Vec<String>>, usize) {
    const VERBS: [&str; 13] = [
        "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "VRFY",
        "XCLIENT", "QUIT",
    ];
    let mut ended = Vec::new();
    let mut open: Vec<Vec<String>> = Vec::new();
    for line in log.lines() {
        let Some((_, said)) = line.split_once(": ") else {
            continue;
        };
        if said.starts_with("connect (") {
            open.push(Vec::new());
        } else if said == "disconnect" {
            ended.extend(open.pop());
        } else if let Some(session) = open.last_mut() {
            let (verb, rest) = said.split_once(' ').unwrap_or((said, ""));
            let verb = verb.to_ascii_uppercase();
            if said == "." {
                session.push(".".to_string());
            } else if VERBS.contains(&verb.as_str()) {
                session.push(format!("{verb} {rest}").trim_end().to_string());
            }
        }
    }
    (ended, open.len())
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
