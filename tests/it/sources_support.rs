//! Shared by `source_arxiv` and `source_feeds`: a scripted HTTP server on 127.0.0.1 that serves
//! the real fixture bodies (Hugging Face, the arXiv listing and API, feeds) and records every
//! request with its headers and arrival time; and an in-process `App` on a real SQLite file.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use paperboy::config::Settings;
use paperboy::jobs::{App, Clock};
use paperboy::store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const RSS: &str =
    include_str!("../fixtures/arxiv/rss_cs-LG+cs-AI+cs-CL+stat-ML_2026-09-24.xml");
pub const ATOM_LISTING: &str = include_str!("../fixtures/arxiv/atom_cs-LG_2026-09-25.xml");
pub const API_CLASSIC: &str = include_str!("../fixtures/arxiv/api_query_all-science.atom");
pub const API_2025: &str = include_str!("../fixtures/arxiv/api_query_cs-RO_2025-10.atom");
pub const HF_ITEM_2026: &str = include_str!("../fixtures/hf/daily_papers_item_2026-03.json");
pub const HF_DAY_2024: &str = include_str!("../fixtures/hf/daily_papers_2024-10-25.json");

/// What the arXiv API answers past the last result: a feed with no entries.
pub const API_EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>ArXiv Query</title>
<opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">0</opensearch:totalResults>
</feed>"#;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub at: Instant,
}

impl Hit {
    pub fn param(&self, name: &str) -> &str {
        self.query.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Self {
        Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(code: u16) -> Self {
        Reply {
            status: StatusCode::from_u16(code).unwrap(),
            ..Reply::ok("server says no")
        }
    }
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        ));
        self
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&Hit) -> Reply + Send + Sync;

struct Shared {
    hits: Mutex<Vec<Hit>>,
    script: Mutex<Arc<Script>>,
}

/// The server. The script may be replaced between runs ([`TestServer::set`]).
pub struct TestServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TestServer {
    pub async fn start(script: impl Fn(&Hit) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            hits: Mutex::new(Vec::new()),
            script: Mutex::new(Arc::new(script)),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer { addr, shared }
    }

    pub fn set(&self, script: impl Fn(&Hit) -> Reply + Send + Sync + 'static) {
        *self.shared.script.lock().unwrap() = Arc::new(script);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    pub fn hits_on(&self, path_prefix: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path.starts_with(path_prefix))
            .collect()
    }

    pub fn clear(&self) {
        self.shared.hits.lock().unwrap().clear();
    }
}

async fn answer(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let hit = Hit {
        path: uri.path().to_string(),
        query,
        headers,
        at: Instant::now(),
    };
    shared.hits.lock().unwrap().push(hit.clone());
    let script = shared.script.lock().unwrap().clone();
    let reply = script(&hit);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (reply.status, reply.body).into_response();
    for (k, v) in reply.headers {
        response.headers_mut().insert(k, v);
    }
    response
}

/// A routing script over the usual paths: `/api/daily_papers` (Hugging Face), `/rss/…` (the
/// arXiv listing), `/api/query` (the arXiv API), `/feed/<name>`. Unknown paths answer 404.
pub fn route(
    hf: impl Fn(&Hit) -> Reply + Send + Sync + 'static,
    rss: impl Fn(&Hit) -> Reply + Send + Sync + 'static,
    api: impl Fn(&Hit) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Hit) -> Reply + Send + Sync + 'static {
    move |h: &Hit| {
        if h.path == "/api/daily_papers" {
            hf(h)
        } else if h.path.starts_with("/rss/") {
            rss(h)
        } else if h.path == "/api/query" {
            api(h)
        } else {
            Reply::status(404)
        }
    }
}

/// The 2026 Hugging Face item with its paper id replaced, for each id: a real Hugging Face
/// answer about papers the arXiv fixtures also list.
pub fn hf_items_for(ids: &[&str]) -> String {
    let items: Vec<serde_json::Value> = serde_json::from_str(HF_ITEM_2026).unwrap();
    let template = items[0].clone();
    let out: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let mut item = template.clone();
            item["paper"]["id"] = serde_json::Value::String(id.to_string());
            item
        })
        .collect();
    serde_json::to_string(&out).unwrap()
}

/// A test's paperboy: settings from `toml` (on top of the defaults), a real SQLite file (or a
/// fresh PostgreSQL database in the PostgreSQL pass, dropped with the harness).
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: Store,
    toml: String,
    _pg: Option<crate::common::PgDatabase>,
}

impl Harness {
    pub async fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = crate::common::test_database_url(&dir.path().join("pb.db"));
        let store = Store::open_and_migrate(&url, 2).await.unwrap();
        Harness {
            dir,
            store,
            toml: toml.to_string(),
            _pg: pg,
        }
    }

    /// The app as it is at `now` (a fresh `App` per run, as each `paperboy fetch` would be).
    pub fn app_at(&self, now: &str) -> App {
        let path = self.dir.path().join("paperboy.toml");
        std::fs::write(&path, &self.toml).unwrap();
        let settings = Settings::load_with_env(
            Some(&path),
            [(
                "PAPERBOY__MAIL__FILE_DIR".to_string(),
                self.dir.path().join("outbox").display().to_string(),
            )],
        )
        .unwrap_or_else(|e| panic!("settings: {e}\n{}", self.toml));
        let at: DateTime<Utc> = now.parse().unwrap();
        App::new(settings, self.store.clone(), Clock::starting_at(at)).unwrap()
    }
}

/// `[sources]` pointing every source at `server`, quick to fail, with `extra` appended.
pub fn sources_toml(server: &TestServer, hf: bool, arxiv: bool, extra: &str) -> String {
    format!(
        "[sources]\ntimeout_secs = 2\nretries = 1\nbackoff_ms = 10\ncontact = \"mailto:ops@example.org\"\n\
         {extra}\n\
         [sources.hf]\nenabled = {hf}\nbase_url = \"{url}\"\n\
         [sources.arxiv]\nenabled = {arxiv}\ncategories = [\"cs.LG\", \"cs.AI\", \"cs.CL\", \"stat.ML\"]\n\
         rss_base_url = \"{url}\"\napi_base_url = \"{url}\"\napi_interval_ms = 20\napi_page_size = 10\n",
        url = server.url()
    )
}
