//! A local Hugging Face daily-papers API serving the real fixtures of `tests/fixtures/hf/`, with
//! faults per date.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::normalize_ws;

/// The real HF body of 2024-10-25 (29 papers, 2024 schema).
pub const HF_DAY_2024_10_25: &str = "daily_papers_2024-10-25.json";
/// One real HF item of the 2026 schema (paper 2602.23229), wrapped in `[]`.
pub const HF_ITEM_2026_03: &str = "daily_papers_item_2026-03.json";

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
