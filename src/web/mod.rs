//! The web side: the pages the links in emails open, the sign-up form, and health endpoints.
//!
//! Nobody logs in. A signed token in the URL (see `links`) says who the visitor is and what the
//! link may do; every page a link opens is a GET that changes nothing, and the change happens on
//! the POST of the button on that page (invariant 4). The one POST that must work with nothing
//! but the URL is RFC 8058 one-click unsubscribe.
//!
//! Layout: `pages` renders the tera templates in `templates/web/`; `security` adds the response
//! headers, the cross-site POST check and the manage forms' CSRF token; `limits` counts form
//! posts per client (IPv4 address or IPv6 /64) and caps confirmation emails; `forms` turns form fields into domain types with messages that say
//! what to fix; `subscribe`, `manage` and `links` hold the handlers; `preview` ranks the last
//! days' papers for the live preview. Handlers hold no SQL (they call `store`) and build no MIME
//! (they call `mail`).

// Handlers return `Result<T, Response>`, the error being the page to show. A response is large,
// but it is built once per request at most, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod forms;
mod limits;
mod link_pages;
mod manage;
mod pages;
mod preview;
mod security;
mod subscribe;
mod webhooks;

use crate::jobs::App;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::sync::Arc;

/// The largest request body accepted: a form with 2,000 characters of interests fits many
/// times over; anything bigger is refused with 413 before it is parsed.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What every handler gets: the application, the page renderer, the rate limiter and the
/// preview cache.
#[derive(Clone)]
pub(crate) struct Web {
    pub app: App,
    pub pages: Arc<pages::Pages>,
    pub limits: Arc<limits::Limits>,
    pub preview: Arc<preview::PreviewCache>,
}

impl Web {
    /// The path prefix of `web.base_url` (empty at the root), so that the pages still work
    /// when served under a sub-path behind a proxy.
    pub fn root(&self) -> String {
        self.app
            .settings
            .web
            .base_url
            .path()
            .trim_end_matches('/')
            .to_string()
    }
}

pub fn router(app: App) -> Router {
    if app.settings.web.base_url.scheme() != "https"
        && app.settings.mail.transport == crate::config::MailTransportKind::Smtp
    {
        // Mail providers expect one-click unsubscribe links over https (RFC 8058).
        tracing::warn!(
            base_url = %app.settings.web.base_url,
            "web.base_url is not https: links in emails, List-Unsubscribe included, will be \
             plain http; set web.base_url to the public https address"
        );
    }
    let pages = pages::Pages::new().expect("the embedded web templates parse");
    let limits = limits::Limits::new(
        app.settings.web.form_posts_per_hour,
        app.settings.web.confirmation_emails_per_hour,
    );
    let web = Web {
        app,
        pages: Arc::new(pages),
        limits: Arc::new(limits),
        preview: Arc::new(preview::PreviewCache::default()),
    };
    Router::new()
        .route("/", get(subscribe::form))
        .route("/subscribe", get(subscribe::form).post(subscribe::submit))
        .route(
            "/confirm/{token}",
            get(subscribe::confirm_page).post(subscribe::confirm),
        )
        .route(
            "/manage",
            get(subscribe::link_form).post(subscribe::link_request),
        )
        .route("/manage/{token}", get(manage::page).post(manage::submit))
        .route(
            "/unsubscribe/{token}",
            get(link_pages::unsubscribe_page).post(link_pages::unsubscribe),
        )
        .route(
            "/feedback/{token}",
            get(link_pages::feedback_page).post(link_pages::feedback),
        )
        .route("/digest/{token}", get(link_pages::digest))
        .route("/preview", get(preview::fragment))
        .route("/static/style.css", get(static_css))
        .route("/static/app.js", get(static_js))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/ses", post(webhooks::ses))
        .route("/webhooks/postmark", post(webhooks::postmark))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            security::guard,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(web)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Database reachable, scheduler alive, fetches not stale: see `Metrics::readiness_problems`.
async fn readyz(State(web): State<Web>) -> (StatusCode, String) {
    let app = &web.app;
    app.metrics
        .readyz_response(&app.store, &app.live.get(), app.clock.now())
        .await
}

async fn metrics(State(web): State<Web>) -> axum::response::Response {
    let app = &web.app;
    app.metrics
        .metrics_response(&app.store, &app.live.get(), app.clock.now())
        .await
}

async fn static_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/web/style.css"),
    )
}

async fn static_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/web/app.js"),
    )
}

async fn not_found(State(web): State<Web>) -> axum::response::Response {
    web.pages.message(
        &web.root(),
        StatusCode::NOT_FOUND,
        pages::Message::new("Page not found")
            .line("There is no page at this address. If you followed a link from an email, it may have been cut short: copy the whole link, or ask for a fresh one.")
            .action("Email me a fresh link", format!("{}/manage", web.root()))
            .bad(),
    )
}
