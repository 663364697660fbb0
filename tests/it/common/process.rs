//! Running a program the way a user would: arguments, `PAPERBOY_NOW`, the environment it is
//! given (never the developer's own `PAPERBOY*` variables), a timeout, and what it printed.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::without_developer_env;

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
    /// `program ARGS…` in `cwd`, with no `PAPERBOY_NOW`, no extra variables, an empty standard
    /// input and the default timeout of 90 s.
    pub fn new(program: PathBuf, args: Vec<String>, cwd: PathBuf) -> Self {
        Invocation {
            program,
            args,
            now: None,
            env: Vec::new(),
            timeout: Duration::from_secs(90),
            cwd,
            stdin: None,
        }
    }

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
