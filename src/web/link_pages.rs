//! The pages that digest links open: unsubscribe, feedback on one paper, the digest in the
//! browser.
//!
//! Unsubscribe follows RFC 8058: `POST /unsubscribe/{token}` needs nothing but the URL (no
//! cookie, no session, no CSRF token; any body, url-encoded or multipart, is accepted and
//! ignored), answers 200 with a page rather than a redirect, and can be repeated. Its tokens do
//! not expire and ignore the token version, so the link in a years-old email still works; for a
//! subscriber who was deleted it still answers that nothing more will be sent, which is true.
//! Feedback and digest links stop working when the subscriber revokes their links
//! (`security::link_subscriber`).

use super::Web;
use super::forms::Fields;
use super::security::{LinkToken, check_token, gone_link, link_subscriber, unavailable};
use super::subscribe::{bad_form, load, manage_url};
use crate::digest::DigestView;
use crate::links::{Purpose, TokenError};
use crate::model::{SubscriberId, SubscriberStatus};
use crate::store::Vote;
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use tracing::info;

/// `GET /unsubscribe/{token}`: the page with the button (or "already unsubscribed").
pub async fn unsubscribe_page(State(web): State<Web>, LinkToken(token): LinkToken) -> Response {
    let claims = match check_token(&web, &token, Purpose::Unsubscribe, web.app.clock.now()) {
        Ok(c) => c,
        Err(page) => return page,
    };
    match load(&web, claims.subscriber_id).await {
        Ok(Some(s)) => unsubscribe_view(
            &web,
            Some(s.email.as_str()),
            s.status == SubscriberStatus::Unsubscribed,
        ),
        Ok(None) => unsubscribe_view(&web, None, true),
        Err(page) => page,
    }
}

/// The unsubscribe page for `email` (`None`: the subscription was deleted). It offers the way
/// to the preferences as a button that has the manage link emailed (the "email me my link"
/// form), never as the link itself: an unsubscribe link outlives revocation, so whoever holds an
/// old email must not get a working manage link from it.
fn unsubscribe_view(web: &Web, email: Option<&str>, done: bool) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("email", email.unwrap_or("this address"));
    ctx.insert("done", &done);
    ctx.insert("offer_link", &email.is_some());
    web.pages.page(
        &web.root(),
        StatusCode::OK,
        "unsubscribe.html",
        if done { "Unsubscribed" } else { "Unsubscribe" },
        ctx,
    )
}

/// `POST /unsubscribe/{token}`: one-click unsubscribe. The body is read (so the size limit
/// applies) and ignored: RFC 8058 senders post `List-Unsubscribe=One-Click` in either encoding.
pub async fn unsubscribe(
    State(web): State<Web>,
    LinkToken(token): LinkToken,
    _body: Bytes,
) -> Response {
    let now = web.app.clock.now();
    let claims = match check_token(&web, &token, Purpose::Unsubscribe, now) {
        Ok(c) => c,
        Err(page) => return page,
    };
    let id = SubscriberId(claims.subscriber_id);
    match web.app.store.unsubscribe(id, now).await {
        Ok(changed) => {
            if changed {
                info!(subscriber = %id, "unsubscribed");
            }
        }
        Err(e) => return unavailable(&web, &e),
    }
    match load(&web, claims.subscriber_id).await {
        Ok(Some(s)) => unsubscribe_view(&web, Some(s.email.as_str()), true),
        Ok(None) => unsubscribe_view(&web, None, true),
        Err(page) => page,
    }
}

#[derive(Deserialize)]
pub struct VoteQuery {
    vote: Option<String>,
}

fn parse_vote(v: Option<&str>) -> Option<Vote> {
    match v.map(str::trim) {
        Some("more") | Some("up") => Some(Vote::More),
        Some("less") | Some("down") => Some(Vote::Less),
        _ => None,
    }
}

/// The subscriber and paper a feedback token names, or the page to show instead.
async fn feedback_target(
    web: &Web,
    token: &str,
) -> Result<(crate::model::Subscriber, String, String), Response> {
    let claims = check_token(web, token, Purpose::Feedback, web.app.clock.now())?;
    let Some(paper_id) = claims.extra.clone() else {
        return Err(super::security::bad_link(
            web,
            Purpose::Feedback,
            TokenError::Malformed,
        ));
    };
    let subscriber = link_subscriber(web, &claims).await?;
    let title = match web.app.store.paper(&paper_id).await {
        Ok(Some(p)) => p
            .paper
            .title
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        Ok(None) => {
            return Err(gone_link(
                web,
                "This paper is no longer known",
                "It was removed from paperboy, so there is nothing to vote on.",
            ));
        }
        Err(e) => return Err(unavailable(web, &e)),
    };
    Ok((subscriber, paper_id, title))
}

fn feedback_view(
    web: &Web,
    subscriber: &crate::model::Subscriber,
    paper_id: &str,
    title: &str,
    vote: Option<Vote>,
    recorded: bool,
) -> Response {
    let word = match vote {
        Some(Vote::Less) => "less",
        _ => "more",
    };
    let mut ctx = tera::Context::new();
    ctx.insert("paper_id", paper_id);
    // Not "title": that key is the page's <title>, set by `Pages::page`.
    ctx.insert("paper_title", title);
    ctx.insert("vote", word);
    ctx.insert("recorded", &recorded.then_some(word));
    ctx.insert(
        "manage_url",
        &manage_url(web, subscriber.id.0, subscriber.token_version),
    );
    web.pages.page(
        &web.root(),
        StatusCode::OK,
        "feedback.html",
        if recorded {
            "Thanks"
        } else {
            "More or less like this?"
        },
        ctx,
    )
}

/// `GET /feedback/{token}?vote=more|less`: the page with the button; records nothing.
pub async fn feedback_page(
    State(web): State<Web>,
    LinkToken(token): LinkToken,
    Query(q): Query<VoteQuery>,
) -> Response {
    match feedback_target(&web, &token).await {
        Ok((s, paper, title)) => feedback_view(
            &web,
            &s,
            &paper,
            &title,
            parse_vote(q.vote.as_deref()),
            false,
        ),
        Err(page) => page,
    }
}

/// `POST /feedback/{token}` with `vote=more|less`: records the vote (a new vote replaces the
/// old one).
pub async fn feedback(
    State(web): State<Web>,
    LinkToken(token): LinkToken,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let fields = match form {
        Ok(Form(f)) => f,
        Err(rejection) => return bad_form(&web, rejection),
    };
    let (s, paper, title) = match feedback_target(&web, &token).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let Some(vote) = parse_vote(fields.vote.as_deref()) else {
        return web.pages.message(
            &web.root(),
            StatusCode::UNPROCESSABLE_ENTITY,
            super::pages::Message::new("Choose more or less")
                .line("Press \"More like this\" or \"Less like this\" on the page.")
                .bad(),
        );
    };
    match web
        .app
        .store
        .record_feedback(s.id, &paper, vote, web.app.clock.now())
        .await
    {
        Ok(_) => {
            info!(subscriber = %s.id, paper = %paper, "feedback recorded");
            feedback_view(&web, &s, &paper, &title, Some(vote), true)
        }
        Err(e) => unavailable(&web, &e),
    }
}

/// `GET /digest/{token}`: one delivered digest, as the email showed it.
pub async fn digest(State(web): State<Web>, LinkToken(token): LinkToken) -> Response {
    let claims = match check_token(&web, &token, Purpose::Digest, web.app.clock.now()) {
        Ok(c) => c,
        Err(page) => return page,
    };
    let Some(delivery_id) = claims.extra.as_deref().and_then(|d| d.parse::<i64>().ok()) else {
        return super::security::bad_link(&web, Purpose::Digest, TokenError::Malformed);
    };
    let gone = || {
        gone_link(
            &web,
            "This digest is no longer available",
            "It was deleted together with the subscription it belonged to.",
        )
    };
    let date = match web.app.store.delivery_owner(delivery_id).await {
        Ok(Some((owner, date))) if owner.0 == claims.subscriber_id => date,
        // A validly signed token whose delivery belongs to someone else cannot be made by a
        // stranger; treat it like a deleted one.
        Ok(_) => return gone(),
        Err(e) => return unavailable(&web, &e),
    };
    let Ok(date) = date.parse::<chrono::NaiveDate>() else {
        return gone();
    };
    let subscriber = match link_subscriber(&web, &claims).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let view = match DigestView::of_delivery(
        &web.app.store,
        &web.app.signer,
        &web.app.settings.web.base_url,
        &subscriber,
        (delivery_id, date),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return unavailable(&web, &e),
    };
    match web.app.renderer.render(&view) {
        Ok(rendered) => {
            let mut response = Html(rendered.html).into_response();
            // The email's HTML styles itself inline (mail clients need that); allow inline
            // styles here and nothing else.
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; \
                     form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            response
        }
        Err(e) => unavailable(&web, &e),
    }
}
