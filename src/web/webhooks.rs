//! `POST /webhooks/ses` and `POST /webhooks/postmark`: the bounce and complaint webhooks of
//! Amazon SES (through an SNS HTTPS subscription) and Postmark. On only when
//! `mail.webhook_secret_file` is set; every call must carry HTTP Basic authentication with that
//! password (any user name), which both services send when it is part of the webhook URL. A
//! call without it, or with another, is refused (401) and changes nothing: these payloads
//! name an address, not a signed link, so only the password makes them believable.
//! Not for: reading the payloads (`bounces::providers`) or what a report does (`bounces`).

use super::Web;
use crate::bounces::providers::{self, Webhook};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tracing::{error, info, warn};

pub async fn ses(State(web): State<Web>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&web, "ses", &headers, &body, providers::ses).await
}

pub async fn postmark(State(web): State<Web>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&web, "postmark", &headers, &body, providers::postmark).await
}

async fn receive(
    web: &Web,
    service: &'static str,
    headers: &HeaderMap,
    body: &[u8],
    read: fn(&[u8]) -> Result<Webhook, String>,
) -> Response {
    let Some(secret) = &web.app.settings.mail.webhook_secret else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    if !authorized(headers, secret.expose()) {
        warn!(
            service,
            "a webhook call without the right password; refused"
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"paperboy webhooks\"",
            )],
            "the webhook URL must carry the password of mail.webhook_secret_file \
             (https://user:PASSWORD@host/webhooks/...)\n",
        )
            .into_response();
    }
    let reports = match read(body) {
        Ok(Webhook::Reports(reports)) => reports,
        Ok(Webhook::ConfirmSubscription(url)) => {
            // Fetching a URL named by a request is left to a person: open it once.
            warn!(service, subscribe_url = %url, "SNS asks to confirm this webhook's subscription: open SubscribeURL once to start receiving notifications");
            return (
                StatusCode::OK,
                "subscription noted; confirm it at its SubscribeURL\n",
            )
                .into_response();
        }
        Ok(Webhook::Other(what)) => {
            info!(service, what, "webhook: nothing to do");
            return (StatusCode::OK, "nothing to do\n").into_response();
        }
        Err(e) => {
            warn!(service, error = %e, "webhook: unreadable body");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    match crate::bounces::apply_reports(&web.app, &reports).await {
        Ok(s) => {
            s.log(service);
            (StatusCode::OK, format!("{s}\n")).into_response()
        }
        // The service retries a call that failed: the report is not lost.
        Err(e) => {
            error!(service, error = %e, "webhook: could not record the reports");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response()
        }
    }
}

/// Whether `headers` carry HTTP Basic authentication with `secret` as the password.
fn authorized(headers: &HeaderMap, secret: &str) -> bool {
    let Some(credentials) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
    else {
        return false;
    };
    let password = match credentials.iter().position(|b| *b == b':') {
        Some(colon) => &credentials[colon + 1..],
        None => return false,
    };
    // Constant time: compare every byte whatever the first difference.
    password.len() == secret.len()
        && password
            .iter()
            .zip(secret.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_password_is_accepted() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            h
        };
        let basic = |user_pass: &str| with(&format!("Basic {}", STANDARD.encode(user_pass)));
        let secret = "s3cret-0123456789abcdef-xyz";
        assert!(authorized(&basic(&format!("hooks:{secret}")), secret));
        assert!(authorized(&basic(&format!(":{secret}")), secret));
        assert!(!authorized(&basic("hooks:s3cret"), secret));
        assert!(!authorized(&basic(&format!("hooks:{secret}x")), secret));
        assert!(!authorized(&basic(secret), secret), "no colon: no password");
        assert!(!authorized(&with(&format!("Bearer {secret}")), secret));
        assert!(!authorized(&HeaderMap::new(), secret));
    }
}
