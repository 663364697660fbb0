//! Signing up with double opt-in, and "email me my link".
//!
//! Both forms give the same answer for every address, whether it is new, pending, subscribed or
//! unknown, and they mail in the background so that the answer takes the same time too: the
//! pages never reveal who is subscribed. What happens behind the answer:
//!
//! - a new address gets a `pending` row and a confirmation email (unless
//!   `web.confirmation_emails_per_hour` is reached: then the row only, see `limits`);
//! - a pending, unsubscribed or suspended address gets its preferences replaced and a new
//!   confirmation (the old link stops working), at most once per `web.resend_cooldown_secs`;
//! - an active or paused address is left as it is (a stranger must not change it) and its owner
//!   gets their manage link instead, at most once per cooldown.
//!
//! Nothing but confirmation and manage-link emails goes to an address that has not confirmed;
//! digests are only ever planned for `active` subscribers (invariant 3).

use super::Web;
use super::forms::{self, FieldError, Fields, FormView};
use super::limits::Form;
use super::pages::Message;
use super::security::{ClientAddr, LinkToken, check_token, gone_link, unavailable};
use crate::links::{Claims, Purpose};
use crate::mail::{Notice, NoticeKind};
use crate::model::{EmailAddress, Subscriber, SubscriberId, SubscriberStatus};
use crate::store::Preferences;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form as AxumForm, extract::rejection::FormRejection};
use std::time::Duration;
use tracing::{debug, info, warn};

/// How long a confirmation link works.
pub const CONFIRM_VALID_HOURS: i64 = 72;

/// `GET /`: the sign-up form.
pub async fn form(State(web): State<Web>) -> Response {
    let view = FormView::defaults(&web.app.settings);
    subscribe_page(&web, StatusCode::OK, view, Vec::new(), None)
}

fn subscribe_page(
    web: &Web,
    status: StatusCode,
    form: FormView,
    errors: Vec<FieldError>,
    preview: Option<String>,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("form", &form);
    ctx.insert("errors", &errors);
    // The fields to mark `aria-invalid`, so screen readers say which ones need fixing.
    ctx.insert(
        "invalid",
        &errors.iter().map(|e| e.field).collect::<Vec<_>>(),
    );
    ctx.insert("preview", &preview);
    ctx.insert("timezones", &*forms::TIMEZONES);
    ctx.insert("weekdays", &forms::weekday_options());
    web.pages
        .page(&web.root(), status, "subscribe.html", "Subscribe", ctx)
}

/// A form body that could not be read (wrong encoding, too large).
pub fn bad_form(web: &Web, rejection: FormRejection) -> Response {
    let status = rejection.status();
    let line = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "The form was too large. Shorten what you typed and send it again."
    } else {
        "The form could not be read. Go back, reload the page and send it again."
    };
    web.pages.message(
        &web.root(),
        if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        },
        Message::new("The form could not be read").line(line).bad(),
    )
}

fn too_many(web: &Web, wait: Duration) -> Response {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let mut response = web.pages.message(
        &web.root(),
        StatusCode::TOO_MANY_REQUESTS,
        Message::new("Too many requests")
            .line(format!(
                "This network sent this form too often. Please try again in {minutes} minutes."
            ))
            .bad(),
    );
    if let Ok(v) = wait.as_secs().max(1).to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The one answer every accepted sign-up gets.
fn check_inbox(web: &Web) -> Response {
    web.pages.message(
        &web.root(),
        StatusCode::OK,
        Message::new("Check your inbox")
            .line("If this address can be subscribed, we have sent it an email. Open the link in it to confirm: nothing else is sent until you do.")
            .line(format!("The link works for {CONFIRM_VALID_HOURS} hours. Nothing arrived after a few minutes? Look in your spam folder, or sign up again a little later."))
            .action("Back to the front page", format!("{}/", web.root())),
    )
}

/// `POST /subscribe`.
pub async fn submit(
    State(web): State<Web>,
    ClientAddr(client): ClientAddr,
    form: Result<AxumForm<Fields>, FormRejection>,
) -> Response {
    let fields = match form {
        Ok(AxumForm(f)) => f,
        Err(rejection) => return bad_form(&web, rejection),
    };
    let view = FormView::defaults(&web.app.settings).with_fields(&fields);

    if fields.action.as_deref() == Some("preview") {
        let preview = super::preview::render(
            &web,
            fields.interests.as_deref().unwrap_or(""),
            web.app.settings.digest.max_papers,
        )
        .await;
        return subscribe_page(&web, StatusCode::OK, view, Vec::new(), Some(preview));
    }
    if let Err(wait) = web.limits.hit(Form::Subscribe, client) {
        return too_many(&web, wait);
    }

    let mut errors = Vec::new();
    let email = forms::parse_email(&fields).map_err(|e| errors.push(e)).ok();
    let default_max = web.app.settings.digest.max_papers;
    let prefs = forms::parse_preferences(&fields, &web.app.settings, default_max)
        .await
        .map_err(|e| errors.extend(e))
        .ok();
    let (Some(email), Some(prefs)) = (email, prefs) else {
        // Keep the preview next to the interests the visitor is fixing.
        let preview = super::preview::render(
            &web,
            fields.interests.as_deref().unwrap_or(""),
            web.app.settings.digest.max_papers,
        )
        .await;
        return subscribe_page(
            &web,
            StatusCode::UNPROCESSABLE_ENTITY,
            view,
            errors,
            Some(preview),
        );
    };
    if fields
        .website
        .as_deref()
        .is_some_and(|v| !v.trim().is_empty())
    {
        debug!("sign-up honeypot filled; nothing sent");
        return check_inbox(&web);
    }
    // The work (and any mail) happens after the answer, so that neither the answer nor its
    // timing depends on the address.
    let worker = web.clone();
    tokio::spawn(async move {
        match sign_up(&worker, &email, &prefs).await {
            Ok(()) => crate::jobs::embed::embed_soon(&worker.app, prefs.interests),
            Err(e) => warn!(error = %e, "a sign-up could not be processed"),
        }
    });
    check_inbox(&web)
}

async fn sign_up(web: &Web, email: &EmailAddress, prefs: &Preferences) -> Result<(), String> {
    let app = &web.app;
    let now = app.clock.now();
    let cooldown_start =
        now - chrono::Duration::from_std(app.settings.web.resend_cooldown).unwrap_or_default();
    let nonce = new_nonce();
    let existing = app
        .store
        .subscriber_by_email(email)
        .await
        .map_err(|e| e.to_string())?;
    let existing = match existing {
        Some(row) => row,
        None => {
            match app
                .store
                .create_pending_subscriber(email, prefs, &nonce, now)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(id) => {
                    info!(subscriber = %id, "new sign-up");
                    return send_confirmation(web, id, 1, email, &nonce).await;
                }
                // Someone signed up with this address a moment ago: treat it as existing.
                None => app
                    .store
                    .subscriber_by_email(email)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the address vanished during sign-up")?,
            }
        }
    };
    let id = SubscriberId(existing.id);
    match SubscriberStatus::parse(&existing.status) {
        Some(SubscriberStatus::Active | SubscriberStatus::Paused) => {
            if app
                .store
                .claim_link_send(id, now, cooldown_start)
                .await
                .map_err(|e| e.to_string())?
            {
                send_manage_link(web, id, existing.token_version, email).await?;
            }
        }
        _ => {
            if app
                .store
                .renew_confirmation(id, prefs, &nonce, now, cooldown_start)
                .await
                .map_err(|e| e.to_string())?
            {
                send_confirmation(web, id, existing.token_version, email, &nonce).await?;
            } else {
                debug!(subscriber = %id, "confirmation not resent: within the cooldown");
            }
        }
    }
    Ok(())
}

fn new_nonce() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::thread_rng().r#gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn send_confirmation(
    web: &Web,
    id: SubscriberId,
    token_version: i64,
    email: &EmailAddress,
    nonce: &str,
) -> Result<(), String> {
    if let Err(withheld) = web.limits.confirmation() {
        web.app.metrics.confirmation_withheld();
        if withheld.report {
            warn!(
                cap = ?web.app.settings.web.confirmation_emails_per_hour,
                "web.confirmation_emails_per_hour reached: sign-ups are recorded as pending but \
                 get no confirmation email until the cap has room (signing up again then sends \
                 it); raise the setting if these are real sign-ups. Next report in an hour"
            );
        }
        // The address did not get its email, so the cooldown must not hold back the next try.
        let _ = web.app.store.forget_send(id, true).await;
        return Ok(());
    }
    let now = web.app.clock.now();
    let claims = Claims {
        purpose: Purpose::Confirm,
        subscriber_id: id.0,
        token_version,
        expires_at: Some((now + chrono::Duration::hours(CONFIRM_VALID_HOURS)).timestamp()),
        extra: Some(nonce.to_string()),
    };
    let url = web.app.signer.url(&web.app.settings.web.base_url, &claims);
    let key = format!("confirm.{}.{}", id.0, &nonce[..12]);
    let sent = send_notice(web, NoticeKind::Confirm, email, url, key).await;
    if sent.is_err() {
        let _ = web.app.store.forget_send(id, true).await;
    }
    sent
}

async fn send_manage_link(
    web: &Web,
    id: SubscriberId,
    token_version: i64,
    email: &EmailAddress,
) -> Result<(), String> {
    let url = manage_url(web, id.0, token_version);
    let key = format!("manage.{}.{}", id.0, &new_nonce()[..12]);
    let sent = send_notice(web, NoticeKind::ManageLink, email, url, key).await;
    if sent.is_err() {
        let _ = web.app.store.forget_send(id, false).await;
    }
    sent
}

/// The signed manage link of a subscriber.
pub fn manage_url(web: &Web, subscriber_id: i64, token_version: i64) -> String {
    crate::jobs::revoke::manage_url(&web.app, subscriber_id, token_version)
}

async fn send_notice(
    web: &Web,
    kind: NoticeKind,
    to: &EmailAddress,
    url: String,
    key: String,
) -> Result<(), String> {
    let notice = Notice {
        kind,
        to: to.clone(),
        url,
        valid_for: format!("{CONFIRM_VALID_HOURS} hours"),
        site_url: web.app.settings.web.base_url.to_string(),
        date: web.app.clock.now(),
        message_key: key,
    };
    crate::jobs::revoke::send_notice(&web.app, &notice).await
}

/// The claims of a confirmation token and the subscriber it names, or the page to answer with
/// instead (bad or expired link, deleted subscriber, database down).
async fn confirmation_target(
    web: &Web,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Claims, Subscriber), Response> {
    let claims = check_token(web, token, Purpose::Confirm, now)?;
    match load(web, claims.subscriber_id).await? {
        Some(subscriber) => Ok((claims, subscriber)),
        None => Err(deleted(web)),
    }
}

/// `GET /confirm/{token}`: what will be confirmed, and the button.
pub async fn confirm_page(State(web): State<Web>, LinkToken(token): LinkToken) -> Response {
    let now = web.app.clock.now();
    let (claims, subscriber) = match confirmation_target(&web, &token, now).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let nonce = claims.extra.as_deref().unwrap_or("");
    match web
        .app
        .store
        .confirmation_is_live(subscriber.id, nonce)
        .await
    {
        Ok(true) => {}
        Ok(false) => return used_confirmation(&web, &claims, &subscriber),
        Err(e) => return unavailable(&web, &e),
    }
    let mut ctx = tera::Context::new();
    ctx.insert("email", subscriber.email.as_str());
    ctx.insert("interests", subscriber.interests.as_str());
    ctx.insert("schedule", &schedule_words(&subscriber));
    web.pages.page(
        &web.root(),
        StatusCode::OK,
        "confirm.html",
        "Confirm your subscription",
        ctx,
    )
}

/// `POST /confirm/{token}`: activates the subscription; the link is then used up.
pub async fn confirm(State(web): State<Web>, LinkToken(token): LinkToken) -> Response {
    let now = web.app.clock.now();
    let (claims, subscriber) = match confirmation_target(&web, &token, now).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let nonce = claims.extra.as_deref().unwrap_or("");
    match web
        .app
        .store
        .confirm_subscriber(subscriber.id, nonce, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return used_confirmation(&web, &claims, &subscriber),
        Err(e) => return unavailable(&web, &e),
    }
    info!(subscriber = %subscriber.id, "subscription confirmed");
    let manage = manage_url(&web, subscriber.id.0, subscriber.token_version);
    web.pages.message(
        &web.root(),
        StatusCode::OK,
        Message::new("You are subscribed")
            .line(format!(
                "Digests arrive at {}. Every digest has links to change your interests, pause or unsubscribe.",
                schedule_words(&subscriber)
            ))
            .action("Change your preferences", manage),
    )
}

fn used_confirmation(web: &Web, claims: &Claims, subscriber: &Subscriber) -> Response {
    // Whoever holds a validly signed link for this subscriber received it at the address, so
    // saying whether it is active reveals nothing to a stranger. The manage link, though, only
    // while no revocation came after this confirmation was mailed.
    if subscriber.status == SubscriberStatus::Active
        && claims.token_version == subscriber.token_version
    {
        let manage = manage_url(web, subscriber.id.0, subscriber.token_version);
        return web.pages.message(
            &web.root(),
            StatusCode::GONE,
            Message::new("This link was already used")
                .line("Your subscription is confirmed and active.")
                .action("Change your preferences", manage),
        );
    }
    gone_link(
        web,
        "This link was already used or replaced",
        "Each confirmation link works once, and only the newest one sent to an address works. Sign up again to get a fresh link.",
    )
}

fn deleted(web: &Web) -> Response {
    gone_link(
        web,
        "This link no longer works",
        "The subscription it belonged to has been deleted.",
    )
}

/// Loads and parses a subscriber; `Err` is the page to show when the database failed.
pub async fn load(web: &Web, id: i64) -> Result<Option<Subscriber>, Response> {
    match web.app.store.subscriber_by_id(SubscriberId(id)).await {
        Ok(Some(row)) => row.parse().map(Some).map_err(|e| unavailable(web, &e)),
        Ok(None) => Ok(None),
        Err(e) => Err(unavailable(web, &e)),
    }
}

/// "07:00 Europe/Paris, every day", for pages.
pub fn schedule_words(s: &Subscriber) -> String {
    let how = match s.frequency {
        crate::model::Frequency::Daily => "every day".to_string(),
        crate::model::Frequency::Weekdays => "Monday to Friday".to_string(),
        crate::model::Frequency::Weekly(d) => {
            let name = forms::WEEKDAYS[d.num_days_from_monday() as usize].1;
            format!("every {name}")
        }
    };
    format!("{} ({}), {how}", s.send_time, s.timezone)
}

/// `GET /manage`: "email me my link".
pub async fn link_form(State(web): State<Web>) -> Response {
    link_page(&web, StatusCode::OK, "", None)
}

fn link_page(web: &Web, status: StatusCode, email: &str, error: Option<String>) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("email", email);
    ctx.insert("error", &error);
    web.pages.page(
        &web.root(),
        status,
        "manage_request.html",
        "Email me my link",
        ctx,
    )
}

/// `POST /manage`: mails a fresh manage link to a confirmed address; the same answer for any.
pub async fn link_request(
    State(web): State<Web>,
    ClientAddr(client): ClientAddr,
    form: Result<AxumForm<Fields>, FormRejection>,
) -> Response {
    let fields = match form {
        Ok(AxumForm(f)) => f,
        Err(rejection) => return bad_form(&web, rejection),
    };
    if let Err(wait) = web.limits.hit(Form::ManageLink, client) {
        return too_many(&web, wait);
    }
    let email = match forms::parse_email(&fields) {
        Ok(e) => e,
        Err(e) => {
            return link_page(
                &web,
                StatusCode::UNPROCESSABLE_ENTITY,
                fields.email.as_deref().unwrap_or(""),
                Some(e.message),
            );
        }
    };
    if fields
        .website
        .as_deref()
        .is_none_or(|v| v.trim().is_empty())
    {
        let worker = web.clone();
        tokio::spawn(async move {
            if let Err(e) = mail_link(&worker, &email).await {
                warn!(error = %e, "a manage-link request could not be processed");
            }
        });
    }
    web.pages.message(
        &web.root(),
        StatusCode::OK,
        Message::new("Check your inbox")
            .line("If this address has a paperboy subscription, we have sent it a link to manage it.")
            .line("Nothing arrived after a few minutes? Look in your spam folder. A new link is sent at most every few minutes.")
            .action("Back to the front page", format!("{}/", web.root())),
    )
}

async fn mail_link(web: &Web, email: &EmailAddress) -> Result<(), String> {
    let app = &web.app;
    let Some(row) = app
        .store
        .subscriber_by_email(email)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    // Only addresses that confirmed once get a manage link: mailing a pending address anything
    // but its confirmation would let the form be used to spam strangers.
    if row.confirmed_at.is_none() {
        return Ok(());
    }
    let now = app.clock.now();
    let cooldown_start =
        now - chrono::Duration::from_std(app.settings.web.resend_cooldown).unwrap_or_default();
    let id = SubscriberId(row.id);
    if app
        .store
        .claim_link_send(id, now, cooldown_start)
        .await
        .map_err(|e| e.to_string())?
    {
        send_manage_link(web, id, row.token_version, email).await?;
    }
    Ok(())
}

/// Turns a response into one that carries a file download (used by the export).
pub fn attachment(body: String, file_name: &str) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        body,
    )
        .into_response()
}
