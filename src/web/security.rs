//! Web safety: response headers, the cross-site POST check, CSRF tokens for the manage forms,
//! the client address for rate limits, and turning a bad, deleted or revoked link into a
//! friendly page.
//!
//! Headers: a strict Content-Security-Policy (our own stylesheet and script only, no framing),
//! `Referrer-Policy: no-referrer` so that the token in the address never leaks to a site a page
//! links to, `nosniff`, and `no-store` on every page (they carry personal data and tokens).
//!
//! CSRF: a POST whose `Origin` (or `Sec-Fetch-Site`) says it comes from another site is refused,
//! except on `/unsubscribe/…`, which RFC 8058 requires to work from anywhere with no cookie and
//! no token. The manage forms also carry a short-lived signed token tied to the subscriber.

use super::Web;
use super::pages::Message;
use crate::links::{Claims, Purpose, TokenError};
use crate::model::Subscriber;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The policy for our own pages. The digest view replaces it with one that allows the inline
/// styles an email needs.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How long a manage form may stay open before saving it asks for a reload.
const CSRF_LIFETIME: chrono::Duration = chrono::Duration::hours(12);
const CSRF_MARK: &str = "csrf";

/// Adds the security headers to every response and refuses cross-site form posts.
pub async fn guard(State(web): State<Web>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let exempt = path.starts_with("/unsubscribe/")
        || path.starts_with(&format!("{}/unsubscribe/", web.root()));
    if request.method() == Method::POST && !exempt && is_cross_site(&web, request.headers()) {
        let response = web.pages.message(
            &web.root(),
            StatusCode::FORBIDDEN,
            Message::new("This form was sent from another site")
                .line("For your safety, changes are only accepted from paperboy's own pages. Open the link from your email again and use the form there.")
                .bad(),
        );
        return with_headers(response, &path);
    }
    let response = next.run(request).await;
    with_headers(response, &path)
}

fn with_headers(mut response: Response, path: &str) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if !path.contains("/static/") {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// True when the browser says the request comes from another site. Requests without these
/// headers (scripts, mail providers' servers, old browsers) pass: the token in the URL and the
/// manage form's CSRF token still protect them.
fn is_cross_site(web: &Web, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "cross-site";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return true;
    }
    let base = web.app.settings.web.base_url.origin().ascii_serialization();
    if origin == base {
        return false;
    }
    // Reached directly (no proxy, or in tests): the page came from the Host it was served on.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let same_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest == host);
    !same_host
}

/// A CSRF token for the manage forms of one subscriber at one token version.
pub fn csrf_token(web: &Web, subscriber_id: i64, token_version: i64) -> String {
    let now = web.app.clock.now();
    web.app.signer.sign(&Claims {
        purpose: Purpose::Manage,
        subscriber_id,
        token_version,
        expires_at: Some((now + CSRF_LIFETIME).timestamp()),
        extra: Some(CSRF_MARK.into()),
    })
}

/// Whether `token` is a live CSRF token for this subscriber and version.
pub fn csrf_ok(web: &Web, token: &str, subscriber_id: i64, token_version: i64) -> bool {
    match web
        .app
        .signer
        .verify(token, Purpose::Manage, web.app.clock.now())
    {
        Ok(c) => {
            c.subscriber_id == subscriber_id
                && c.token_version == token_version
                && c.extra.as_deref() == Some(CSRF_MARK)
        }
        Err(_) => false,
    }
}

/// Verifies a link token for `purpose`, or returns the friendly page to show instead. The page
/// is the same whether the token was forged, cut short or meant for another page, and it never
/// says anything about an address.
pub fn check_token(
    web: &Web,
    token: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Claims, Response> {
    // A token is short; a huge one is garbage and not worth hashing.
    if token.len() > 1024 {
        return Err(bad_link(web, purpose, TokenError::Malformed));
    }
    web.app
        .signer
        .verify(token, purpose, now)
        .map_err(|e| bad_link(web, purpose, e))
}

/// The page for a link that does not work (any reason), offering a fresh one.
pub fn bad_link(web: &Web, purpose: Purpose, error: TokenError) -> Response {
    let root = web.root();
    let (status, heading, why) = match error {
        TokenError::Expired => (
            StatusCode::GONE,
            "This link has expired",
            "Links in confirmation emails work for a limited time, for your safety.",
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            "This link does not work",
            "It may have been cut short or changed when it was copied. Make sure you use the whole link from the email.",
        ),
    };
    let message = Message::new(heading).line(why).bad();
    let message = match purpose {
        Purpose::Confirm => message
            .line("Sign up again with the same address to get a fresh confirmation link.")
            .action("Sign up again", format!("{root}/")),
        _ => message
            .line("We can email a fresh link to your address.")
            .action("Email me a fresh link", format!("{root}/manage")),
    };
    web.pages.message(&root, status, message)
}

/// The page for a link whose signature is fine but that no longer leads anywhere: the
/// subscription was deleted, or the link was replaced by a newer one.
pub fn gone_link(web: &Web, heading: &str, line: &str) -> Response {
    let root = web.root();
    web.pages.message(
        &root,
        StatusCode::GONE,
        Message::new(heading)
            .line(line)
            .action("Email me a fresh link", format!("{root}/manage"))
            .action("Sign up", format!("{root}/"))
            .bad(),
    )
}

/// The subscriber a verified link names, or the page to show instead: the subscription was
/// deleted, or the link was revoked after it was mailed (`Claims::is_current`).
pub async fn link_subscriber(web: &Web, claims: &Claims) -> Result<Subscriber, Response> {
    match super::subscribe::load(web, claims.subscriber_id).await? {
        Some(s) if claims.is_current(s.token_version) => Ok(s),
        Some(_) => Err(replaced_link(web)),
        None => Err(gone_link(
            web,
            "This link no longer works",
            "The subscription it belonged to has been deleted.",
        )),
    }
}

/// The page for a link that was revoked ("revoke all my links", or the operator's
/// `subscriber revoke-links`). It names no address: whoever holds an old link learns nothing.
pub fn replaced_link(web: &Web) -> Response {
    let root = web.root();
    web.pages.message(
        &root,
        StatusCode::GONE,
        Message::new("This link was replaced")
            .line("The links to this subscription were switched off and a new one was emailed to its address. Use the link in the newest email from paperboy, or ask for a fresh one.")
            .line("Unsubscribe links in earlier emails still work.")
            .action("Email me a fresh link", format!("{root}/manage"))
            .bad(),
    )
}

/// The page for a failure on our side (database down…): a 503, never details.
pub fn unavailable(web: &Web, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %error, "a web request failed");
    web.pages.message(
        &web.root(),
        StatusCode::SERVICE_UNAVAILABLE,
        Message::new("Something went wrong on our side")
            .line("Nothing was changed. Please try again in a minute.")
            .bad(),
    )
}

/// The token of a link (`/manage/{token}` and the like). A segment that is not UTF-8 once
/// percent-decoded (`/manage/%ff`) cannot be a token; it is kept as sent, still encoded, so that
/// `check_token` refuses it with the friendly page every bad link gets rather than axum's
/// plain-text rejection.
#[derive(Debug, Clone)]
pub struct LinkToken(pub String);

impl FromRequestParts<Web> for LinkToken {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, web).await {
            Ok(Path(token)) => Ok(LinkToken(token)),
            Err(_) => {
                let sent = parts.uri.path().rsplit('/').next().unwrap_or_default();
                Ok(LinkToken(sent.to_string()))
            }
        }
    }
}

/// The client's address for rate limits: the TCP peer, or, with `web.trust_forwarded_for`,
/// the last `X-Forwarded-For` entry (added by our own proxy; the earlier ones are whatever the
/// client claimed, so they are never used).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<Web> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if !web.app.settings.web.trust_forwarded_for {
            return Ok(ClientAddr(peer));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back();
        Ok(ClientAddr(forwarded.unwrap_or(peer)))
    }
}
