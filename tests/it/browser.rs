//! A real browser through the pages: headless Chromium driven over WebDriver (chromedriver),
//! against the real daemon and smtp-sink. It subscribes with the live preview running, opens the
//! confirmation link from the received email, confirms, changes its interests and watches the
//! preview change, saves, and unsubscribes.
//!
//! The WebDriver calls are plain JSON over HTTP (W3C WebDriver), made with reqwest: the handful
//! this test needs do not justify a client library. Without Chromium or chromedriver the test
//! skips with the reason, unless `PAPERBOY_REQUIRE_ALL=1` (CI) makes that a failure.
//!
//! With `PAPERBOY_SCREENSHOTS=DIR` it also saves a screenshot of every page at desktop and at
//! phone width, for people to look at.

use crate::common::*;
use crate::web_common::*;
use base64::Engine;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DAY1: &str = "2024-10-25";
const FETCH1: &str = "2024-10-25T06:00:00Z";
const SEND1: &str = "2024-10-25T09:00:00Z";
const CHROMIUM_INSTALL: &str = "`apt-get install -y chromium chromium-driver` (Debian)";
/// The browser's time zone: the sign-up form must pick it up.
const BROWSER_TZ: &str = "Pacific/Auckland";

/// chromedriver on a free port, in its own process group; on drop the whole group (the
/// driver and the Chromium it started) is stopped, so a failed test leaves no browser behind.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Browser {
    http: reqwest::Client,
    base: String,
    screenshots: Option<PathBuf>,
}

/// The W3C WebDriver key under which an element reference comes back.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.expect("WebDriver answers JSON");
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn clear(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// The rendered text of `css` ("" while it is absent): read in one script call, so a page
    /// being replaced meanwhile cannot leave a stale element reference.
    async fn text(&self, css: &str) -> String {
        self.post(
            "/execute/sync",
            json!({
                "script": "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                "args": [css]
            }),
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let t = self.text(css).await;
            if ok(&t) {
                return t;
            }
            if Instant::now() > deadline {
                panic!("waited 15 s for {what} in {css}; it says: {t}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves the current page at desktop and phone width, when screenshots were asked for.
    async fn snap(&self, name: &str) {
        let Some(dir) = &self.screenshots else {
            return;
        };
        for (label, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            self.post("/window/rect", json!({ "width": width, "height": height }))
                .await;
            // The whole page, not just the first screen: grow the window to the content.
            let full = self
                .js("return document.documentElement.scrollHeight")
                .await
                .as_i64()
                .unwrap_or(height)
                .clamp(height, 4000);
            self.post("/window/rect", json!({ "width": width, "height": full }))
                .await;
            let png = self.get("/screenshot").await;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png.as_str().unwrap_or(""))
                .expect("base64 PNG");
            std::fs::write(dir.join(format!("{name}-{label}.png")), bytes).expect("write PNG");
        }
        self.post("/window/rect", json!({ "width": 1280, "height": 900 }))
            .await;
    }
}

fn start_driver(chromedriver: &std::path::Path) -> Driver {
    let port = free_port();
    let child = Command::new(chromedriver)
        .process_group(0)
        .arg(format!("--port={port}"))
        .env("TZ", BROWSER_TZ)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !port_accepts(port) {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, port }
}

/// The first link in `mail` that starts with `prefix`.
#[track_caller]
fn mailed_link(mail: &ReceivedMail, prefix: &str) -> String {
    mail.links()
        .into_iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} link in {:?}", mail.links()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_subscribes_confirms_changes_interests_and_unsubscribes() {
    let test = "a_browser_subscribes_confirms_changes_interests_and_unsubscribes";
    let chromium = find_executable("chromium", &["/usr/bin", "/usr/lib/chromium"]);
    let chromedriver = find_executable("chromedriver", &["/usr/bin", "/usr/lib/chromium"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        missing_tool(test, "Chromium or chromedriver", CHROMIUM_INSTALL);
        return;
    };
    let Some(sink) = SmtpSink::start_or_skip(test) else {
        return;
    };
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&hf).smtp(&sink).build();
    fetch_fixture_day(&app, DAY1, FETCH1);
    // Links in emails point straight at this daemon, so the browser can follow them.
    let d = WebDaemon::start(
        &app,
        SEND1,
        &[("PAPERBOY__WEB__BASE_URL", "http://127.0.0.1:{port}")],
    );
    let driver = start_driver(&chromedriver);
    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("http://127.0.0.1:{}/session", driver.port))
        .json(&json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--no-first-run", "--disable-dev-shm-usage",
                         "--window-size=1280,900"]
            }
        }}}))
        .send()
        .await
        .expect("new WebDriver session")
        .json()
        .await
        .expect("session JSON");
    let id = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {session}"))
        .to_string();
    let screenshots = std::env::var_os("PAPERBOY_SCREENSHOTS").map(PathBuf::from);
    if let Some(dir) = &screenshots {
        std::fs::create_dir_all(dir).expect("screenshot dir");
    }
    let b = Browser {
        http: http.clone(),
        base: format!("http://127.0.0.1:{}/session/{id}", driver.port),
        screenshots,
    };
    let email = "browser@example.org";

    // The sign-up form: the time zone comes from the browser; every field has a label.
    b.goto(&d.url("/")).await;
    let zone = b
        .js("return document.getElementById('timezone').value")
        .await;
    assert_eq!(zone, BROWSER_TZ, "the time zone select follows the browser");
    let unlabelled = b
        .js(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]\
             .filter(e => !e.labels || e.labels.length === 0).map(e => e.name)",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "fields without a label");
    b.snap("1-subscribe-empty").await;

    // Typing interests updates the live preview.
    b.type_into("#email", email).await;
    b.type_into("#interests", "\"contrastive loss\" memory")
        .await;
    let first = b
        .wait_text("#preview", "the preview's papers", |t| {
            t.contains("Contrastive")
        })
        .await;
    b.snap("2-subscribe-preview").await;
    b.click("button[value=subscribe]").await;
    b.wait_text("main", "the answer", |t| t.contains("Check your inbox"))
        .await;
    b.snap("3-check-inbox").await;

    // The confirmation link from the received email; the page asks, the button confirms.
    let mail = wait_for_mail_to(&sink, email, 1);
    let confirm = mailed_link(&mail, &d.url("/confirm/"));
    b.goto(&confirm).await;
    b.wait_text("h1", "the confirm page", |t| t.contains("Confirm"))
        .await;
    b.snap("4-confirm").await;
    assert_eq!(status_of(&app, SEND1, email).as_deref(), Some("pending"));
    b.click("button.primary").await;
    b.wait_text("h1", "confirmed", |t| t.contains("You are subscribed"))
        .await;
    b.snap("5-subscribed").await;
    assert_eq!(status_of(&app, SEND1, email).as_deref(), Some("active"));

    // Manage: new interests, a different preview, saved.
    b.click("a.button.primary").await;
    b.wait_text("h1", "the manage page", |t| t.contains("Your subscription"))
        .await;
    b.snap("6-manage").await;
    b.clear("#interests").await;
    b.type_into("#interests", "video generation").await;
    let second = b
        .wait_text("#preview", "a different preview", |t| {
            !t.is_empty() && t != first && !t.contains("Contrastive")
        })
        .await;
    assert_ne!(first, second);
    b.snap("7-manage-new-preview").await;
    // The preview is as long as this subscriber's digest: the script sends the form's size.
    let size = b
        .js("return document.getElementById('max_papers').value")
        .await;
    let size = size.as_str().expect("the size field's value").to_string();
    b.clear("#max_papers").await;
    b.type_into("#max_papers", "2").await;
    b.wait_text("#preview", "a preview of two papers", |t| {
        t.contains("these 2 of the")
    })
    .await;
    let listed = b
        .js("return document.querySelectorAll('#preview ol.papers > li').length")
        .await;
    assert_eq!(listed, json!(2));
    b.clear("#max_papers").await;
    b.type_into("#max_papers", &size).await;
    b.wait_text("#preview", "the preview at the saved size", |t| {
        !t.contains("these 2 of the")
    })
    .await;
    b.click("button[value=save]").await;
    b.wait_text("main", "saved", |t| t.contains("Your changes are saved"))
        .await;
    assert_eq!(
        subscriber_row(&app, SEND1, email).unwrap()["interests"],
        "video generation"
    );

    // The digest: its feedback page and the browser view, as a reader opens them.
    let unsubscribe_page = b.js("return location.href").await;
    send_now(&app, SEND1);
    let digest = wait_for_mail_to(&sink, email, 2);
    // `send` ran as its own process with the file's base_url: point its links here.
    let feedback = mailed_link(&digest, &format!("{BASE_URL}/feedback/"));
    b.goto(&d.local(&feedback)).await;
    b.wait_text("h1", "the feedback page", |t| t.contains("More or less"))
        .await;
    b.snap("8a-feedback").await;
    b.click("button.primary").await;
    b.wait_text("h1", "thanks", |t| t == "Thanks").await;
    b.goto(&d.local(&mailed_link(&digest, &format!("{BASE_URL}/digest/"))))
        .await;
    b.wait_text("h1", "the digest view", |t| t.contains("Your papers"))
        .await;
    // The email's own styles apply under the page's policy (inline styles only).
    let colour = b
        .js("return getComputedStyle(document.querySelector('.paper')).borderTopStyle")
        .await;
    assert_ne!(
        colour,
        json!("none"),
        "the digest's inline styles are applied"
    );
    b.snap("8b-digest-view").await;
    b.goto(unsubscribe_page.as_str().unwrap()).await;

    // Unsubscribe from the link on the manage page: a page, then the button.
    let unsubscribe = b
        .js("return [...document.querySelectorAll('a')].find(a => a.textContent === 'Unsubscribe').href")
        .await;
    b.goto(unsubscribe.as_str().expect("unsubscribe link"))
        .await;
    b.wait_text("h1", "the unsubscribe page", |t| t == "Unsubscribe")
        .await;
    b.snap("8-unsubscribe").await;
    b.click("button.primary").await;
    b.wait_text("h1", "unsubscribed", |t| t.contains("You are unsubscribed"))
        .await;
    b.snap("9-unsubscribed").await;
    assert_eq!(
        status_of(&app, SEND1, email).as_deref(),
        Some("unsubscribed")
    );

    // Keyboard: the first Tab lands on the skip link.
    b.goto(&d.url("/manage")).await;
    b.snap("10-email-me-my-link").await;
    b.post(
        "/actions",
        json!({ "actions": [{ "type": "key", "id": "kb", "actions": [
            { "type": "keyDown", "value": "\u{E004}" }, { "type": "keyUp", "value": "\u{E004}" }
        ]}]}),
    )
    .await;
    let focused = b.js("return document.activeElement.className").await;
    assert_eq!(focused, "skip");

    // A refused form: the problems get the focus, the field is marked invalid.
    b.goto(&d.url("/")).await;
    b.type_into("#email", "not-an-address").await;
    b.type_into("#interests", "memory").await;
    b.click("button[value=subscribe]").await;
    b.wait_text("h2", "the problems", |t| t.contains("Please fix"))
        .await;
    assert_eq!(
        b.js("return document.activeElement.id").await,
        json!("form-errors")
    );
    assert_eq!(
        b.js("return document.getElementById('email').getAttribute('aria-invalid')")
            .await,
        json!("true")
    );
    b.snap("12-form-errors").await;

    // A bad link's page, for the screenshots.
    b.goto(&d.url("/manage/forged.token")).await;
    b.snap("11-bad-link").await;

    let _ = http
        .delete(format!("http://127.0.0.1:{}/session/{id}", driver.port))
        .send()
        .await;
}
