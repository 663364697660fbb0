//! Harness for the web tests: the real `paperboy run` daemon on a free port, an HTTP client that
//! keeps no cookies and follows no redirects, and helpers to take links out of received emails.
//!
//! Builds on `tests/common` (smtp-sink, the HF fixture server, `TestApp`). Links in emails point
//! at the configured `web.base_url` (`https://paperboy.example.org`); [`WebDaemon::local`] swaps
//! only that prefix for the daemon's loopback address, so the path and token are exactly those
//! that were mailed.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `paperboy run`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct WebDaemon {
    child: Child,
    pub port: u16,
    log: std::path::PathBuf,
}

impl WebDaemon {
    /// Starts the daemon for `app` at the fixed "now" `now`, with extra environment variables
    /// (config overrides such as `PAPERBOY__SECRET_KEY`; `{port}` in a value is replaced by the
    /// daemon's port), and waits until `/healthz` answers.
    pub fn start(app: &TestApp, now: &str, env: &[(&str, &str)]) -> WebDaemon {
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let log = app.dir().join(format!("daemon-{port}-{attempt}.log"));
            let out = std::fs::File::create(&log).expect("create daemon log");
            let err = out.try_clone().expect("clone log");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_paperboy"));
            cmd.arg("--config")
                .arg(&app.config_path)
                .arg("run")
                .current_dir(app.dir())
                .env("PAPERBOY__WEB__BIND", format!("127.0.0.1:{port}"))
                .env("PAPERBOY_NOW", now)
                .env("RUST_LOG", "paperboy=debug,info")
                .env_remove("NOTIFY_SOCKET")
                .env_remove("WATCHDOG_USEC")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            // Every web test fetched its day before starting the daemon, so the daemon's own
            // fetch at start (hourly by default, and 06:00 to 09:00 missed three ticks) would
            // only repeat it, and with the embedding model it lasts long enough that the plan
            // turn it releases lands in the middle of a test: a subscriber confirmed a moment
            // before would get a digest the test did not ask for (before pausing, say). No
            // tick between the fixture fetch and the test's "now" means no fetch at start, so
            // the only plan turns are the one at start and the next a minute later. A test
            // may set its own schedule.
            cmd.env("PAPERBOY__SCHEDULE__FETCH", "0 0 0 1 1 *");
            // `{port}` in a value stands for the port chosen here (e.g. for web.base_url).
            for (k, v) in env {
                cmd.env(k, v.replace("{port}", &port.to_string()));
            }
            let child = cmd.spawn().expect("spawn paperboy run");
            let mut daemon = WebDaemon { child, port, log };
            match daemon.wait_healthy(Duration::from_secs(30)) {
                Ok(()) => return daemon,
                Err(e) => last = e,
            }
        }
        panic!("paperboy run did not become healthy: {last}");
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if raw_get(self.port, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no answer on /healthz:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `base()` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// A link from an email, pointed at this daemon instead of the public `base_url`.
    #[track_caller]
    pub fn local(&self, link: &str) -> String {
        let rest = link
            .strip_prefix(BASE_URL)
            .unwrap_or_else(|| panic!("{link} does not start with the configured {BASE_URL}"));
        format!("{}{rest}", self.base())
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it (SIGTERM, waiting up to 10 s, then SIGKILL).
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WebDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// A bare HTTP/1.1 GET over a fresh socket (for the health probe, before any client exists).
fn raw_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// An HTTP client like a mail provider's or a script's: no cookie store, no redirects followed.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// A response read in full.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The value of the hidden input `name` in the page (the first one).
    #[track_caller]
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in the page:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        self.body[start..end].to_string()
    }
}

pub async fn read(response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("response body");
    Page {
        status,
        headers,
        body,
    }
}

pub async fn get(c: &reqwest::Client, url: &str) -> Page {
    read(c.get(url).send().await.expect("GET")).await
}

/// POSTs an `application/x-www-form-urlencoded` form.
pub async fn post_form(c: &reqwest::Client, url: &str, fields: &[(&str, &str)]) -> Page {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    read(
        c.post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST"),
    )
    .await
}

/// POSTs a `multipart/form-data` body, built by hand as a mail provider would send it.
pub async fn post_multipart(c: &reqwest::Client, url: &str, fields: &[(&str, &str)]) -> Page {
    let boundary = "----paperboy-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    read(
        c.post(url)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("POST multipart"),
    )
    .await
}

/// Percent-encodes for a form body.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The one link in `mail` whose path starts with `/{route}/`.
#[track_caller]
pub fn link_to(mail: &ReceivedMail, route: &str) -> String {
    let prefix = format!("{BASE_URL}/{route}/");
    let mut links: Vec<String> = mail
        .links()
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    links.sort();
    links.dedup();
    assert!(
        !links.is_empty(),
        "no {route} link in the email: {:?}",
        mail.links()
    );
    links.remove(0)
}

/// Waits for the `n`-th message to `to` (1-based) and returns it.
#[track_caller]
pub fn wait_for_mail_to(sink: &SmtpSink, to: &str, n: usize) -> ReceivedMail {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = sink.messages_to(to);
        if got.len() >= n {
            return got[n - 1].clone();
        }
        if Instant::now() > deadline {
            panic!(
                "expected {n} messages to {to} within 20 s, got {}",
                got.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fetches the HF fixture day into `app` at `FETCH` time, so that previews and digests have
/// papers.
pub fn fetch_fixture_day(app: &TestApp, date: &str, at: &str) {
    app.paperboy(["fetch", "--date", date])
        .at(at)
        .run()
        .assert_success();
}

/// One subscriber's row from `subscriber list --format json`, if the address is there.
pub fn subscriber_row(app: &TestApp, now: &str, email: &str) -> Option<serde_json::Value> {
    app.subscribers_json(now)
        .into_iter()
        .find(|s| s["email"].as_str() == Some(email))
}

/// The status of a subscriber (`pending`, `active`, …), or `None` when absent.
pub fn status_of(app: &TestApp, now: &str, email: &str) -> Option<String> {
    subscriber_row(app, now, email).map(|s| s["status"].as_str().unwrap_or("").to_string())
}

/// Runs `paperboy send --now` at `now` and returns how many messages `sink` holds for `to`
/// afterwards.
pub fn send_now(app: &TestApp, now: &str) {
    app.paperboy(["send", "--now"])
        .at(now)
        .run()
        .assert_success();
}

/// Signs `email` up through the form with `interests` (and any extra fields), opens the
/// confirmation link from the email that arrives (it must be message number `nth` to that
/// address), presses Confirm, and returns the manage link that the "you are subscribed" page
/// offers (pointed at this daemon).
pub async fn subscribe_and_confirm(
    d: &WebDaemon,
    c: &reqwest::Client,
    sink: &SmtpSink,
    email: &str,
    interests: &str,
    extra: &[(&str, &str)],
    nth: usize,
) -> String {
    let mut fields = vec![("email", email), ("interests", interests)];
    fields.extend_from_slice(extra);
    let answer = post_form(c, &d.url("/subscribe"), &fields).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("Check your inbox"), "{}", answer.body);
    let mail = wait_for_mail_to(sink, email, nth);
    let confirm = d.local(&link_to(&mail, "confirm"));
    let page = get(c, &confirm).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let done = post_form(c, &confirm, &[]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("You are subscribed"), "{}", done.body);
    let manage = find_links(&done.body.replace("&#x2F;", "/"))
        .into_iter()
        .find(|l| l.starts_with(&format!("{BASE_URL}/manage/")))
        .unwrap_or_else(|| panic!("no manage link on the confirmed page:\n{}", done.body));
    d.local(&manage)
}

/// The links in an HTML page that start with `BASE_URL/route/`, pointed at the daemon.
pub fn page_links(d: &WebDaemon, page: &Page, route: &str) -> Vec<String> {
    let prefix = format!("{BASE_URL}/{route}/");
    find_links(&page.body.replace("&#x2F;", "/"))
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| d.local(&l))
        .collect()
}

impl WebDaemon {
    /// Sends SIGTERM and waits up to `within` for the daemon to exit: its exit status, or `None`
    /// (then it is killed) when it ignored the signal.
    pub fn terminate_within(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// How long a fresh connection waits for `/healthz`'s 200, or why it got none (2 s at most).
    pub fn healthz_latency(&self) -> Result<Duration, String> {
        let started = Instant::now();
        match raw_get(self.port, "/healthz") {
            Some(r) if r.starts_with("HTTP/1.1 200") => Ok(started.elapsed()),
            Some(r) => Err(format!("answered {}", r.lines().next().unwrap_or(""))),
            None => Err(format!("no answer within {:?}", started.elapsed())),
        }
    }
}
