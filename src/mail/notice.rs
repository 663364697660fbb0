//! The transactional emails: "confirm your subscription", "here is your manage link", and "your
//! old links were switched off, here is the new one".
//!
//! They carry nothing a visitor typed except the address they go to (which was parsed as an
//! address), so a stranger cannot use the sign-up form to send their words to someone else's
//! inbox (invariant 6). They are plain text: a link and two sentences need no HTML. They are not
//! list mail, so no `List-Unsubscribe`; `Auto-Submitted` tells autoresponders not to answer.

use super::message::MessageError;
use crate::model::EmailAddress;
use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};

/// Which transactional email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Double opt-in: the link to the confirmation page.
    Confirm,
    /// The link to the preferences page, on request.
    ManageLink,
    /// The new link to the preferences page after every older one was revoked.
    LinksReplaced,
}

/// One transactional email to build.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    pub to: EmailAddress,
    /// The signed link the email exists for.
    pub url: String,
    /// How long the link works, said in words ("72 hours"), for the confirmation email.
    pub valid_for: String,
    /// The address of the site, for "you can ignore this" context.
    pub site_url: String,
    pub date: DateTime<Utc>,
    /// Unique per email: the local part of the Message-ID.
    pub message_key: String,
}

/// Builds the message. Everything but `to` is paperboy's own text.
pub fn build_notice_message(from: &Mailbox, notice: &Notice) -> Result<Message, MessageError> {
    let to: Mailbox = notice
        .to
        .as_str()
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            MessageError::Recipient(notice.to.to_string(), e.to_string())
        })?;
    let (subject, body) = match notice.kind {
        NoticeKind::Confirm => (
            "Confirm your paperboy subscription",
            format!(
                "Someone, probably you, asked {site} to send research paper digests to this \
                 address.\n\nTo start receiving them, open this link and press Confirm:\n\n{url}\n\n\
                 The link works once, for {valid}. If you did not ask for this, ignore this \
                 email: nothing will be sent to you unless the link is used.\n",
                site = notice.site_url,
                url = notice.url,
                valid = notice.valid_for,
            ),
        ),
        NoticeKind::ManageLink => (
            "Your paperboy subscription link",
            format!(
                "Here is the link to your paperboy subscription: change your interests, \
                 delivery time or frequency, pause, download your data or unsubscribe.\n\n{url}\n\n\
                 Keep it to yourself: anyone with this link can change your subscription. If you \
                 did not ask for it, you can ignore this email.\n",
                url = notice.url,
            ),
        ),
        NoticeKind::LinksReplaced => (
            "Your new paperboy subscription link",
            format!(
                "Every earlier link to your paperboy subscription, in past digests and emails, \
                 has been switched off, as you or the site's administrator asked. Here is the \
                 new link to your subscription:\n\n{url}\n\n\
                 Keep it to yourself: anyone with this link can change your subscription. \
                 Unsubscribe links in earlier digests still work.\n",
                url = notice.url,
            ),
        ),
    };
    let domain = from.email.domain();
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .date(notice.date.into())
        .message_id(Some(format!("<{}@{domain}>", notice.message_key)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ))
        .header(ContentType::TEXT_PLAIN)
        .body(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_names_only_the_recipient_and_the_link() {
        let from: Mailbox = "Paperboy <digest@paperboy.example.org>".parse().unwrap();
        let n = Notice {
            kind: NoticeKind::Confirm,
            to: EmailAddress::parse("ada@example.org").unwrap(),
            url: "https://paperboy.example.org/confirm/abc.def".into(),
            valid_for: "72 hours".into(),
            site_url: "https://paperboy.example.org/".into(),
            date: Utc::now(),
            message_key: "confirm.1.x".into(),
        };
        let text = String::from_utf8(build_notice_message(&from, &n).unwrap().formatted()).unwrap();
        assert!(text.contains("To: ada@example.org"), "{text}");
        assert!(text.contains("https://paperboy.example.org/confirm/abc.def"));
        assert!(text.contains("Auto-Submitted: auto-generated"));
        assert!(!text.contains("List-Unsubscribe"));
        assert!(text.contains("Message-ID: <confirm.1.x@paperboy.example.org>"));
    }

    #[test]
    fn the_new_link_email_says_the_old_ones_are_off_and_unsubscribe_still_works() {
        let from: Mailbox = "Paperboy <digest@paperboy.example.org>".parse().unwrap();
        let n = Notice {
            kind: NoticeKind::LinksReplaced,
            to: EmailAddress::parse("ada@example.org").unwrap(),
            url: "https://paperboy.example.org/manage/new.token".into(),
            valid_for: String::new(),
            site_url: "https://paperboy.example.org/".into(),
            date: Utc::now(),
            message_key: "revoked.1.2".into(),
        };
        let text = String::from_utf8(build_notice_message(&from, &n).unwrap().formatted()).unwrap();
        assert!(
            text.contains("Subject: Your new paperboy subscription link"),
            "{text}"
        );
        assert!(text.contains("https://paperboy.example.org/manage/new.token"));
        assert!(text.contains("switched off"), "{text}");
        let body = text.replace("=\r\n", "");
        assert!(
            body.contains("Unsubscribe links in earlier digests still work"),
            "{text}"
        );
        assert!(!text.contains("List-Unsubscribe"));
    }
}
