//! `/manage/{token}`: a subscriber's preferences page, and what its buttons do.
//!
//! The token proves the visitor received an email at the address; it must match the
//! subscriber's current token version (bumping it revokes every manage link mailed so far).
//! Every POST also carries the page's CSRF token. Buttons: save (the preferences and the
//! profile: followed authors, categories, example papers), preview (saves nothing),
//! pause, resume (also brings back an unsubscribed address, which confirmed before), export
//! (a JSON download), revoke (every link mailed so far stops working; a new one is mailed) and
//! delete (the subscriber and their whole history).

use super::Web;
use super::forms::{self, FieldError, Fields, FormView};
use super::pages::Message;
use super::security::{
    LinkToken, check_token, csrf_ok, csrf_token, gone_link, link_subscriber, replaced_link,
    unavailable,
};
use super::subscribe::{attachment, bad_form, load};
use crate::jobs::revoke::{NewLink, revoke_links};
use crate::links::{Claims, Purpose};
use crate::model::{MaxPapers, Subscriber, SubscriberStatus};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use tracing::info;

/// `GET /manage/{token}`.
pub async fn page(State(web): State<Web>, LinkToken(token): LinkToken) -> Response {
    match subscriber_for(&web, &token).await {
        Ok(s) => {
            // Show what the current interests pick, so a change can be compared against it.
            let preview = super::preview::render(&web, s.interests.as_str(), s.max_papers).await;
            let form = match form_of(&web, &s).await {
                Ok(form) => form,
                Err(page) => return page,
            };
            render(
                &web,
                &s,
                StatusCode::OK,
                form,
                Vec::new(),
                None,
                Some(preview),
            )
        }
        Err(page) => page,
    }
}

/// The form as stored: preferences and profile.
async fn form_of(web: &Web, s: &Subscriber) -> Result<FormView, Response> {
    match web.app.store.profile(s.id).await {
        Ok(profile) => Ok(FormView::of(s).with_profile(&profile)),
        Err(e) => Err(unavailable(web, &e)),
    }
}

/// The subscriber a manage token names, or the page to show instead.
async fn subscriber_for(web: &Web, token: &str) -> Result<Subscriber, Response> {
    let claims = check_token(web, token, Purpose::Manage, web.app.clock.now())?;
    // A CSRF token is signed for the same purpose; it must not open the page.
    if claims.extra.is_some() {
        return Err(super::security::bad_link(
            web,
            Purpose::Manage,
            crate::links::TokenError::WrongPurpose,
        ));
    }
    link_subscriber(web, &claims).await
}

fn render(
    web: &Web,
    s: &Subscriber,
    status: StatusCode,
    form: FormView,
    errors: Vec<FieldError>,
    notice: Option<&str>,
    preview: Option<String>,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("email", s.email.as_str());
    ctx.insert("status", s.status.as_str());
    ctx.insert("status_text", status_text(s.status));
    ctx.insert("form", &form);
    ctx.insert("errors", &errors);
    // The fields to mark `aria-invalid`, so screen readers say which ones need fixing.
    ctx.insert(
        "invalid",
        &errors.iter().map(|e| e.field).collect::<Vec<_>>(),
    );
    ctx.insert("notice", &notice);
    ctx.insert("preview", &preview);
    ctx.insert("csrf", &csrf_token(web, s.id.0, s.token_version));
    ctx.insert("timezones", &*forms::TIMEZONES);
    ctx.insert("weekdays", &forms::weekday_options());
    ctx.insert("max_papers_limit", &MaxPapers::MAX);
    let unsubscribe = web.app.signer.url(
        &web.app.settings.web.base_url,
        &Claims {
            purpose: Purpose::Unsubscribe,
            subscriber_id: s.id.0,
            token_version: s.token_version,
            expires_at: None,
            extra: None,
        },
    );
    ctx.insert("unsubscribe_url", &unsubscribe);
    web.pages
        .page(&web.root(), status, "manage.html", "Your subscription", ctx)
}

/// The digest size a preview of this form shows: the form's, when it is one (what saving keeps),
/// else the subscriber's own.
fn preview_size(fields: &Fields, s: &Subscriber) -> MaxPapers {
    forms::max_papers_field(fields.max_papers.as_deref(), s.max_papers).unwrap_or(s.max_papers)
}

fn status_text(s: SubscriberStatus) -> &'static str {
    match s {
        SubscriberStatus::Pending => "waiting for confirmation",
        SubscriberStatus::Active => "active",
        SubscriberStatus::Paused => "paused",
        SubscriberStatus::Unsubscribed => "unsubscribed",
        SubscriberStatus::Suspended => "suspended: emails to this address bounced",
    }
}

/// `POST /manage/{token}`.
pub async fn submit(
    State(web): State<Web>,
    LinkToken(token): LinkToken,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let fields = match form {
        Ok(Form(f)) => f,
        Err(rejection) => return bad_form(&web, rejection),
    };
    let s = match subscriber_for(&web, &token).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    if !csrf_ok(
        &web,
        fields.csrf.as_deref().unwrap_or(""),
        s.id.0,
        s.token_version,
    ) {
        return web.pages.message(
            &web.root(),
            StatusCode::FORBIDDEN,
            Message::new("Please reload the page")
                .line("This form is too old or did not come from your preferences page, so nothing was changed. Open your link again and repeat the change.")
                .bad(),
        );
    }
    let now = web.app.clock.now();
    let action = fields.action.as_deref().unwrap_or("save");
    let view = match form_of(&web, &s).await {
        Ok(form) => form.with_fields(&fields),
        Err(page) => return page,
    };
    match action {
        "preview" => {
            let interests = fields.interests.as_deref().unwrap_or("");
            let preview = super::preview::render(&web, interests, preview_size(&fields, &s)).await;
            render(
                &web,
                &s,
                StatusCode::OK,
                view,
                Vec::new(),
                None,
                Some(preview),
            )
        }
        "save" => {
            let prefs = forms::parse_preferences(&fields, &web.app.settings, s.max_papers).await;
            let profile = forms::parse_profile(&fields);
            match (prefs, profile) {
                (Ok(prefs), Ok(profile)) => {
                    let saved = match web.app.store.update_preferences(s.id, &prefs, now).await {
                        Ok(_) => web.app.store.set_profile(s.id, &profile, now).await,
                        Err(e) => Err(e),
                    };
                    match saved {
                        Ok(()) => {
                            info!(subscriber = %s.id, "preferences saved");
                            crate::jobs::embed::embed_soon(&web.app, prefs.interests.clone());
                            reload_and_render(&web, &s, "Your changes are saved.").await
                        }
                        Err(e) => unavailable(&web, &e),
                    }
                }
                (prefs, profile) => {
                    let mut errors = prefs.err().unwrap_or_default();
                    errors.extend(profile.err().unwrap_or_default());
                    let interests = fields.interests.as_deref().unwrap_or("");
                    let size = preview_size(&fields, &s);
                    let preview = super::preview::render(&web, interests, size).await;
                    let status = StatusCode::UNPROCESSABLE_ENTITY;
                    render(&web, &s, status, view, errors, None, Some(preview))
                }
            }
        }
        "pause" | "resume" => {
            let (from, to, done): (&[SubscriberStatus], _, _) = if action == "pause" {
                (
                    &[SubscriberStatus::Active],
                    SubscriberStatus::Paused,
                    "Your digests are paused. Resume them here at any time.",
                )
            } else {
                (
                    &[SubscriberStatus::Paused, SubscriberStatus::Unsubscribed],
                    SubscriberStatus::Active,
                    "Your digests are on again.",
                )
            };
            match web.app.store.change_status(s.id, from, to, now).await {
                Ok(true) => {
                    info!(subscriber = %s.id, to = to.as_str(), "status changed");
                    reload_and_render(&web, &s, done).await
                }
                Ok(false) => reload_and_render(&web, &s, "Nothing to change.").await,
                Err(e) => unavailable(&web, &e),
            }
        }
        "export" => match export(&web, &s).await {
            Ok((history, profile)) => {
                let data = serde_json::json!({
                    "exported_at": now,
                    "subscriber": s,
                    "profile": profile,
                    "deliveries": history.deliveries,
                    "papers_sent": history.papers,
                    "feedback": history.feedback,
                });
                attachment(
                    serde_json::to_string_pretty(&data).unwrap_or_default(),
                    "paperboy-my-data.json",
                )
            }
            Err(e) => unavailable(&web, &e),
        },
        "revoke" => match revoke_links(&web.app, &s, true).await {
            Ok(Some(done)) => revoked(&web, &s, &done.new_link),
            // Another revocation got there first: this page's link is already replaced.
            Ok(None) => replaced_link(&web),
            Err(e) => unavailable(&web, &e),
        },
        "delete" => {
            if fields.confirm_delete.as_deref() != Some("yes") {
                return render(
                    &web,
                    &s,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    view,
                    vec![FieldError::new(
                        "confirm_delete",
                        "To delete everything, tick \"Yes, delete everything\" and press Delete me again.",
                    )],
                    None,
                    None,
                );
            }
            match web.app.store.delete_subscriber(s.id).await {
                Ok(_) => {
                    info!(subscriber = %s.id, "subscriber deleted on request");
                    web.pages.message(
                        &web.root(),
                        StatusCode::OK,
                        Message::new("Everything is deleted")
                            .line("Your subscription, the record of the digests we sent you and your votes are gone. No more emails will be sent.")
                            .action("Back to the front page", format!("{}/", web.root())),
                    )
                }
                Err(e) => unavailable(&web, &e),
            }
        }
        _ => render(
            &web,
            &s,
            StatusCode::BAD_REQUEST,
            view,
            vec![FieldError::new(
                "interests",
                "That button is not known here. Use one of the buttons on this page.",
            )],
            None,
            None,
        ),
    }
}

/// The answer to "revoke all my links". The new link is never shown here: whoever pressed the
/// button may hold a forwarded email, so it only goes to the address.
fn revoked(web: &Web, s: &Subscriber, new_link: &NewLink) -> Response {
    let message = Message::new("Your old links are switched off").line(
        "Every link to your subscription that was emailed so far, this page's included, no longer \
         works: manage, \"more / less like this\" and \"view in browser\" links. Unsubscribe links \
         in your emails keep working.",
    );
    let message = match new_link {
        NewLink::Mailed => message.line(format!(
            "We have emailed a new link to {}. Use that one from now on.",
            s.email
        )),
        _ => message
            .line("The email with your new link could not be sent just now. Ask for a fresh link in a few minutes.")
            .action("Email me a fresh link", format!("{}/manage", web.root())),
    };
    web.pages.message(&web.root(), StatusCode::OK, message)
}

/// Everything the data export holds beyond the subscriber row.
async fn export(
    web: &Web,
    s: &Subscriber,
) -> Result<(crate::store::SubscriberHistory, crate::model::Profile), crate::store::StoreError> {
    let history = web.app.store.subscriber_history(s.id).await?;
    let profile = web.app.store.profile(s.id).await?;
    Ok((history, profile))
}

async fn reload_and_render(web: &Web, s: &Subscriber, notice: &str) -> Response {
    match load(web, s.id.0).await {
        Ok(Some(fresh)) => match form_of(web, &fresh).await {
            Ok(form) => render(
                web,
                &fresh,
                StatusCode::OK,
                form,
                Vec::new(),
                Some(notice),
                None,
            ),
            Err(page) => page,
        },
        Ok(None) => gone_link(
            web,
            "This link no longer works",
            "The subscription it belonged to has been deleted.",
        ),
        Err(page) => page,
    }
}
