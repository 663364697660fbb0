//! The Hugging Face source against a real HTTP server on 127.0.0.1 serving the real fixture
//! bodies: paging, retries, timeouts, rate limiting, broken bodies and broken items.
//!
//! Not covered here: parsing details of single items (unit tests in `src/sources/hf.rs`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use paperboy::sources::hf::HfSource;
use paperboy::sources::http::{HttpClient, HttpSettings, user_agent};
use paperboy::sources::{Source, SourceBatch, SourceError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

const DAY_2024: &str = include_str!("../fixtures/hf/daily_papers_2024-10-25.json");
const ITEM_2026: &str = include_str!("../fixtures/hf/daily_papers_item_2026-03.json");
const CONTACT: &str = "ops@example.org";

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    query: HashMap<String, String>,
    user_agent: Option<String>,
    at: Instant,
}

impl Hit {
    fn param(&self, name: &str) -> &str {
        self.query.get(name).map(String::as_str).unwrap_or("")
    }
}

/// What the server answers to one request.
struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(body: impl Into<String>) -> Self {
        Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    fn status(code: u16) -> Self {
        Reply {
            status: StatusCode::from_u16(code).unwrap(),
            ..Reply::json(r#"{"error":"test server says no"}"#)
        }
    }

    fn header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Decides the reply from the request and its index (0 for the first request).
type Script = Box<dyn Fn(&Hit, usize) -> Reply + Send + Sync>;

struct Shared {
    hits: Mutex<Vec<Hit>>,
    script: Script,
}

struct TestServer {
    /// Carries a path prefix, as a mirror would, to prove the source keeps it.
    base: Url,
    shared: Arc<Shared>,
}

impl TestServer {
    async fn start(script: impl Fn(&Hit, usize) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            hits: Mutex::new(Vec::new()),
            script: Box::new(script),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            base: Url::parse(&format!("http://{addr}/mirror")).unwrap(),
            shared,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    fn source(&self, settings: &HttpSettings) -> HfSource {
        HfSource::new(self.base.clone(), HttpClient::new(settings).unwrap())
    }
}

async fn answer(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let hit = Hit {
        path: uri.path().to_string(),
        query: url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        at: Instant::now(),
    };
    let index = {
        let mut hits = shared.hits.lock().unwrap();
        hits.push(hit.clone());
        hits.len() - 1
    };
    let reply = (shared.script)(&hit, index);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (reply.status, reply.body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    for (name, value) in reply.headers {
        h.insert(name, value);
    }
    response
}

/// Quick retries so the tests do not sleep for nothing.
fn settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        retries: 2,
        backoff: Duration::from_millis(10),
        user_agent: user_agent(CONTACT),
    }
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 10, 25).unwrap()
}

fn fixture_items() -> Vec<Value> {
    serde_json::from_str(DAY_2024).unwrap()
}

async fn fetch(server: &TestServer, settings: &HttpSettings) -> Result<SourceBatch, SourceError> {
    server.source(settings).fetch_day(day()).await
}

#[tokio::test]
async fn one_page_of_real_papers() {
    let server = TestServer::start(|_, _| Reply::json(DAY_2024)).await;
    let batch = fetch(&server, &settings()).await.unwrap();

    let hits = server.hits();
    assert_eq!(hits.len(), 1, "a short page is the last one: {hits:?}");
    assert_eq!(hits[0].path, "/mirror/api/daily_papers");
    assert_eq!(hits[0].param("date"), "2024-10-25");
    assert_eq!(hits[0].param("limit"), "100");
    assert_eq!(hits[0].param("p"), "0");
    assert_eq!(batch.requests, 1);
    assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
    assert_eq!(batch.papers.len(), 29);

    let first = &batch.papers[0];
    assert_eq!(first.id.as_str(), "2410.17243");
    assert_eq!(
        first.title,
        "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"
    );
    assert_eq!(first.authors.len(), 9);
    assert_eq!(first.authors[0], "Zesen Cheng");
    assert_eq!(first.upvotes, Some(64));
    assert_eq!(
        first.links.hf_url.as_deref(),
        Some("https://huggingface.co/papers/2410.17243")
    );
    assert_eq!(
        first.links.abstract_url.as_deref(),
        Some("https://arxiv.org/abs/2410.17243")
    );

    let third = &batch.papers[2];
    assert_eq!(third.id.as_str(), "2410.18533");
    assert_eq!(
        third.title,
        "LOGO -- Long cOntext aliGnment via efficient preference Optimization"
    );
    assert_eq!(third.authors.len(), 5);
    assert_eq!(third.upvotes, Some(37));

    let ids: Vec<&str> = batch.papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.last(), Some(&"2410.18234"));
}

#[tokio::test]
async fn the_2026_schema_brings_code_and_project_links() {
    let server = TestServer::start(|_, _| Reply::json(ITEM_2026)).await;
    let batch = fetch(&server, &settings()).await.unwrap();
    assert_eq!(batch.papers.len(), 1);
    let p = &batch.papers[0];
    assert_eq!(p.id.as_str(), "2602.23229");
    assert_eq!(
        p.title,
        "Large Multimodal Models as General In-Context Classifiers"
    );
    assert_eq!(p.authors.len(), 5);
    assert_eq!(p.upvotes, Some(10));
    assert_eq!(
        p.links.code_url.as_deref(),
        Some("https://github.com/marco-garosi/CIRCLE")
    );
    assert_eq!(
        p.links.project_url.as_deref(),
        Some("https://circle-lmm.github.io/")
    );
}

#[tokio::test]
async fn a_full_page_is_followed_by_the_next() {
    // A full page of 100 made from the fixture's first item under other ids, then the real day.
    let template = fixture_items().remove(0);
    let full: Vec<Value> = (0..100)
        .map(|i| {
            let mut item = template.clone();
            item["paper"]["id"] = Value::from(format!("2501.{i:05}"));
            item["paper"]["title"] = Value::from(format!("Generated paper {i}"));
            item["title"] = Value::from(format!("Generated paper {i}"));
            item
        })
        .collect();
    let full = serde_json::to_string(&full).unwrap();
    let server = TestServer::start(move |hit, _| match hit.param("p") {
        "0" => Reply::json(full.clone()),
        "1" => Reply::json(DAY_2024),
        _ => Reply::status(500),
    })
    .await;

    let batch = fetch(&server, &settings()).await.unwrap();
    let pages: Vec<String> = server
        .hits()
        .iter()
        .map(|h| h.param("p").to_string())
        .collect();
    assert_eq!(pages, ["0", "1"]);
    assert!(
        server
            .hits()
            .iter()
            .all(|h| h.param("date") == "2024-10-25")
    );
    assert_eq!(batch.requests, 2);
    assert!(batch.skipped.is_empty());
    assert_eq!(batch.papers.len(), 129);

    assert_eq!(batch.papers[0].id.as_str(), "2501.00000");
    assert_eq!(batch.papers[0].title, "Generated paper 0");
    assert_eq!(batch.papers[0].authors.len(), 9);
    assert_eq!(batch.papers[99].id.as_str(), "2501.00099");
    assert_eq!(batch.papers[99].title, "Generated paper 99");
    assert_eq!(batch.papers[100].id.as_str(), "2410.17243");
    assert_eq!(
        batch.papers[100].title,
        "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"
    );
    assert_eq!(batch.papers[128].id.as_str(), "2410.18234");
}

#[tokio::test]
async fn a_500_is_retried_and_then_succeeds() {
    let server = TestServer::start(|_, n| {
        if n == 0 {
            Reply::status(500)
        } else {
            Reply::json(DAY_2024)
        }
    })
    .await;
    let batch = fetch(&server, &settings()).await.unwrap();
    assert_eq!(server.hits().len(), 2);
    assert_eq!(batch.papers.len(), 29);
    assert_eq!(batch.papers[1].id.as_str(), "2410.16251");
    assert_eq!(
        batch.papers[1].title,
        "Can Knowledge Editing Really Correct Hallucinations?"
    );
    assert_eq!(batch.papers[1].upvotes, Some(41));
}

#[tokio::test]
async fn a_persistent_500_names_the_url_and_status() {
    let server = TestServer::start(|_, _| Reply::status(500)).await;
    let err = fetch(&server, &settings()).await.unwrap_err();
    assert_eq!(server.hits().len(), 3, "one attempt and two retries");
    let expected_url = format!(
        "{}/api/daily_papers?date=2024-10-25&limit=100&p=0",
        server.base
    );
    match &err {
        SourceError::Status {
            url,
            status,
            attempts,
            ..
        } => {
            assert_eq!(url, &expected_url);
            assert_eq!(*status, 500);
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&expected_url), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("3 attempt(s)"), "{text}");
}

#[tokio::test]
async fn a_404_is_not_retried_and_points_at_base_url() {
    let server = TestServer::start(|_, _| Reply::status(404)).await;
    let err = fetch(&server, &settings()).await.unwrap_err();
    assert_eq!(server.hits().len(), 1);
    assert!(
        matches!(
            err,
            SourceError::Status {
                status: 404,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("base_url"), "{err}");
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server =
        TestServer::start(|_, _| Reply::json(DAY_2024).after(Duration::from_secs(3))).await;
    let quick = HttpSettings {
        timeout: Duration::from_millis(300),
        retries: 1,
        ..settings()
    };
    let started = Instant::now();
    let err = fetch(&server, &quick).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "gave up after {elapsed:?}, not at the timeout"
    );
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert_eq!(server.hits().len(), 2, "a timeout is retried");
    match &err {
        SourceError::Timeout { url, attempts, .. } => {
            assert!(
                url.contains("/mirror/api/daily_papers?date=2024-10-25"),
                "{url}"
            );
            assert_eq!(*attempts, 2);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_succeeds() {
    let server = TestServer::start(|_, n| {
        if n == 0 {
            Reply::status(429).header(header::RETRY_AFTER, "1")
        } else {
            Reply::json(DAY_2024)
        }
    })
    .await;
    let batch = fetch(&server, &settings()).await.unwrap();
    let hits = server.hits();
    assert_eq!(hits.len(), 2);
    let waited = hits[1].at - hits[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "retried after {waited:?}, before the Retry-After of 1 s"
    );
    assert_eq!(batch.papers.len(), 29);
    assert_eq!(batch.papers[0].id.as_str(), "2410.17243");
}

#[tokio::test]
async fn a_persistent_429_says_the_source_is_rate_limiting() {
    let server = TestServer::start(|_, _| Reply::status(429)).await;
    let once = HttpSettings {
        retries: 1,
        ..settings()
    };
    let err = fetch(&server, &once).await.unwrap_err();
    assert_eq!(server.hits().len(), 2);
    assert!(
        matches!(
            err,
            SourceError::Status {
                status: 429,
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("rate limiting"), "{err}");
}

#[tokio::test]
async fn malformed_json_is_a_malformed_error() {
    let server = TestServer::start(|_, _| Reply::json(r#"[{"paper": {"id": "2410.17243""#)).await;
    let err = fetch(&server, &settings()).await.unwrap_err();
    assert_eq!(
        server.hits().len(),
        1,
        "a body that does not parse is not retried"
    );
    match &err {
        SourceError::Malformed { url, detail } => {
            assert!(
                url.contains("/mirror/api/daily_papers?date=2024-10-25"),
                "{url}"
            );
            assert!(detail.contains("not JSON"), "{detail}");
        }
        other => panic!("expected a malformed-body error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_object_instead_of_an_array_is_malformed() {
    let server = TestServer::start(|_, _| Reply::json(r#"{"error":"Invalid date"}"#)).await;
    let err = fetch(&server, &settings()).await.unwrap_err();
    match &err {
        SourceError::Malformed { detail, .. } => {
            assert!(detail.contains("JSON array"), "{detail}");
            assert!(detail.contains("Invalid date"), "{detail}");
        }
        other => panic!("expected a malformed-body error, got {other:?}"),
    }
}

#[tokio::test]
async fn one_broken_item_is_skipped_and_the_rest_come_through() {
    let mut items = fixture_items();
    items.insert(5, serde_json::json!({"paper": {"title": "no id"}}));
    let body = serde_json::to_string(&items).unwrap();
    let server = TestServer::start(move |_, _| Reply::json(body.clone())).await;

    let batch = fetch(&server, &settings()).await.unwrap();
    assert_eq!(server.hits().len(), 1, "30 items is still a short page");
    assert_eq!(batch.papers.len(), 29);
    assert_eq!(batch.skipped.len(), 1);
    let skipped = &batch.skipped[0];
    assert_eq!((skipped.page, skipped.position), (0, 5));
    assert!(skipped.reason.contains("paper.id"), "{}", skipped.reason);

    assert_eq!(batch.papers[4].id.as_str(), "2410.18975");
    assert_eq!(batch.papers[5].id.as_str(), "2410.18978");
    assert_eq!(
        batch.papers[5].title,
        "Framer: Interactive Frame Interpolation"
    );
    assert_eq!(batch.papers[5].authors.len(), 9);
    assert_eq!(batch.papers[5].upvotes, Some(27));
}

#[tokio::test]
async fn a_weekend_is_an_empty_day() {
    let server = TestServer::start(|_, _| Reply::json("[]")).await;
    let saturday = NaiveDate::from_ymd_opt(2024, 10, 26).unwrap();
    let batch = server
        .source(&settings())
        .fetch_day(saturday)
        .await
        .unwrap();
    assert!(batch.papers.is_empty());
    assert!(batch.skipped.is_empty());
    assert_eq!(batch.requests, 1);
    let hits = server.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].param("date"), "2024-10-26");
}

#[tokio::test]
async fn the_user_agent_reaches_the_server() {
    let server = TestServer::start(|_, _| Reply::json("[]")).await;
    fetch(&server, &settings()).await.unwrap();
    let ua = server.hits()[0]
        .user_agent
        .clone()
        .expect("a User-Agent header");
    assert_eq!(ua, user_agent(CONTACT));
    assert!(ua.starts_with("paperboy/"), "{ua}");
    assert!(ua.contains(CONTACT), "{ua}");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    // Bind to learn a free port, then close it, so nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = Url::parse(&format!("http://{addr}")).unwrap();
    let source = HfSource::new(base, HttpClient::new(&settings()).unwrap());
    let err = source.fetch_day(day()).await.unwrap_err();
    match &err {
        SourceError::Connect { url, attempts, .. } => {
            assert!(
                url.starts_with(&format!("http://{addr}/api/daily_papers")),
                "{url}"
            );
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(err.to_string().contains("base_url"), "{err}");
}
