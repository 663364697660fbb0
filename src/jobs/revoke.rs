//! Revoking a subscriber's emailed links, and mailing the links that are not digests.
//!
//! The manage page's "revoke all my links" button and `paperboy subscriber revoke-links` both
//! go through [`revoke_links`]: it bumps the token version (every manage, feedback and digest
//! link signed so far stops working, see `links::Purpose::revocable`) and mails the one new
//! manage link to the address. The new link is only ever mailed, never shown: whoever pressed
//! the button may be someone holding a forwarded email. [`send_notice`] is the one way the
//! transactional emails (confirmation, manage link) leave, for the web pages and the CLI alike.

use super::App;
use crate::links::{Claims, Purpose};
use crate::mail::{Notice, NoticeKind, SendError, build_notice_message};
use crate::model::Subscriber;
use crate::store::StoreError;
use tracing::{debug, info};

/// The signed manage link of a subscriber at a token version.
pub fn manage_url(app: &App, subscriber_id: i64, token_version: i64) -> String {
    app.signer.url(
        &app.settings.web.base_url,
        &Claims {
            purpose: Purpose::Manage,
            subscriber_id,
            token_version,
            expires_at: None,
            extra: None,
        },
    )
}

/// Builds and sends one transactional email. The error says what failed without the address
/// (it goes to logs and the CLI's output); the detail, which may quote it, goes to the debug
/// log.
pub async fn send_notice(app: &App, notice: &Notice) -> Result<(), String> {
    let kind = notice.kind;
    let message = build_notice_message(&app.settings.mail.from, notice).map_err(|e| {
        debug!(error = %e, "notice not built");
        format!("the {kind:?} email could not be built for its recipient")
    })?;
    app.mailer
        .send(&message, &notice.message_key)
        .await
        .map_err(|e| {
            debug!(error = %e, "notice not sent");
            let how = match e {
                SendError::Temporary(_) => "temporarily",
                SendError::Permanent(_) => "permanently",
            };
            format!(
                "the {kind:?} email was refused {how} by the mail server (details at debug level)"
            )
        })
}

/// What became of the new manage link after a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewLink {
    /// Mailed to the subscriber's address.
    Mailed,
    /// The caller asked not to mail it.
    NotMailed,
    /// The address never confirmed: only its confirmation may be mailed to it.
    NeverConfirmed,
    /// The mail server did not take it; the text says how (without the address).
    Failed(String),
}

/// A done revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub old_version: i64,
    pub new_version: i64,
    pub new_link: NewLink,
}

/// Revokes every revocable link of `subscriber` (as loaded, at its token version) and, with
/// `mail`, mails the new manage link. `Ok(None)`: the version had moved on meanwhile (another
/// revocation won), so the links `subscriber` was loaded with were already replaced.
pub async fn revoke_links(
    app: &App,
    subscriber: &Subscriber,
    mail: bool,
) -> Result<Option<Revoked>, StoreError> {
    let now = app.clock.now();
    let old_version = subscriber.token_version;
    let Some(new_version) = app
        .store
        .bump_token_version(subscriber.id, old_version, now)
        .await?
    else {
        return Ok(None);
    };
    info!(subscriber = %subscriber.id, new_version, "links revoked");
    let new_link = if !mail {
        NewLink::NotMailed
    } else if subscriber.confirmed_at.is_none() {
        NewLink::NeverConfirmed
    } else {
        let notice = Notice {
            kind: NoticeKind::LinksReplaced,
            to: subscriber.email.clone(),
            url: manage_url(app, subscriber.id.0, new_version),
            valid_for: String::new(),
            site_url: app.settings.web.base_url.to_string(),
            date: now,
            message_key: format!("revoked.{}.{new_version}", subscriber.id.0),
        };
        match send_notice(app, &notice).await {
            Ok(()) => NewLink::Mailed,
            Err(e) => NewLink::Failed(e),
        }
    };
    Ok(Some(Revoked {
        old_version,
        new_version,
        new_link,
    }))
}
