//! Building the digest message.

use crate::model::EmailAddress;
use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

/// Everything a digest email carries. Only `to` came from a user, and it was parsed as an
/// address; every other header value is built by paperboy (invariant 6).
#[derive(Debug, Clone)]
pub struct DigestMessage {
    pub to: EmailAddress,
    /// The local part of the Message-ID; the From domain is appended. Stable per delivery, so
    /// a resend after a crash carries the same id and receivers can drop the duplicate.
    pub message_key: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub unsubscribe_url: String,
    pub date: DateTime<Utc>,
    /// The envelope sender, where bounces go: the delivery's tagged bounce address
    /// (`bounces::verp`), or `None` for the From address.
    pub envelope_from: Option<lettre::Address>,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    /// Permanent: the same address fails the same way at every attempt.
    #[error(
        "the address {0} cannot be used as a recipient: {1}; correct or remove it with `paperboy subscriber`"
    )]
    Recipient(String, String),
}

fn raw(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// The `Message-ID` header value for a delivery key under `domain`.
pub fn message_id(key: &str, domain: &str) -> String {
    format!("<{key}@{domain}>")
}

pub fn build_digest_message(
    from: &Mailbox,
    digest: &DigestMessage,
) -> Result<Message, MessageError> {
    let domain = from.email.domain();
    let to: Mailbox = digest
        .to
        .as_str()
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            MessageError::Recipient(digest.to.to_string(), e.to_string())
        })?;
    let message = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(digest.subject.clone())
        .date(digest.date.into())
        .message_id(Some(message_id(&digest.message_key, domain)))
        .raw_header(raw("List-Id", format!("Paperboy digest <digest.{domain}>")))
        .raw_header(raw(
            "List-Unsubscribe",
            format!("<{}>", digest.unsubscribe_url),
        ))
        .raw_header(raw(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_string(),
        ))
        // A stable sender id for the providers' feedback loops; nothing per recipient in it.
        .raw_header(raw("Feedback-ID", format!("digest:paperboy:{domain}")))
        .raw_header(raw("Auto-Submitted", "auto-generated".to_string()))
        .envelope(lettre::address::Envelope::new(
            Some(
                digest
                    .envelope_from
                    .clone()
                    .unwrap_or_else(|| from.email.clone()),
            ),
            vec![to.email.clone()],
        )?)
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(eight_bit(digest.text.clone())))
                .singlepart(SinglePart::html(eight_bit(digest.html.clone()))),
        )?;
    Ok(message)
}

/// The part's text sent as it is (`8bit`), when every line fits SMTP's 998 octets; otherwise
/// lettre's own choice (quoted-printable for our text). Why: the digest is UTF-8 (`·`, `▲`,
/// authors' names), which made lettre quoted-printable-encode all ~47 KB of it for every
/// recipient, and the message grow by the `=XX` escapes and soft breaks. Servers advertise
/// `8BITMIME` almost universally and the pool then declares `BODY=8BITMIME`; DKIM signs the
/// body as sent either way.
///
/// The CRLF line endings are made here, in one pass: lettre's `Body::new_with_encoding` inserts
/// each `\r` into the string in place, shifting the rest of the body every time, which for a
/// digest's ~500 lines copied megabytes per message and was the largest cost of building it.
fn eight_bit(text: String) -> Body {
    match crlf_eight_bit(&text) {
        Some(buf) => Body::dangerous_pre_encoded(buf, ContentTransferEncoding::EightBit),
        None => Body::new(text),
    }
}

/// The longest line SMTP carries, without its CRLF (RFC 5321, 4.5.3.1.6).
const MAX_LINE_OCTETS: usize = 998;

/// `text` with CRLF line endings, if it may be sent as `8bit` (RFC 6152): no line longer than
/// [`MAX_LINE_OCTETS`], no NUL, and no CR of its own (a bare CR is not allowed, and text that
/// already has CRLFs is rare enough to leave to lettre).
fn crlf_eight_bit(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    // memchr, not a byte-by-byte split: this runs over every ~50 KB message, and the plain
    // loop was 5 % of the send job's CPU.
    if memchr::memchr2(0, b'\r', bytes).is_some() {
        return None;
    }
    let lines = memchr::memchr_iter(b'\n', bytes).count();
    let mut out = Vec::with_capacity(bytes.len() + lines);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())) {
        if end - start > MAX_LINE_OCTETS {
            return None;
        }
        if start > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&bytes[start..end]);
        start = end + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> DigestMessage {
        DigestMessage {
            to: EmailAddress::parse("ada@example.org").unwrap(),
            message_key: "digest.2024-10-25.7.abc".into(),
            subject: "Your papers for Fri 25 Oct 2024: 3 new".into(),
            text: "plain".into(),
            html: "<p>html</p>".into(),
            unsubscribe_url: "https://paperboy.example.org/unsubscribe/tok".into(),
            date: Utc::now(),
            envelope_from: None,
        }
    }

    #[test]
    fn eight_bit_bodies_are_what_lettre_would_make_only_faster() {
        let text = "Your papers · ▲ 42\nLine two\n\n  indented\nlast line without newline";
        for t in [
            text.to_string(),
            format!("{text}\n"),
            format!("\n{text}\n\n"),
        ] {
            let ours = eight_bit(t.clone());
            let lettre = Body::new_with_encoding(t, ContentTransferEncoding::EightBit).unwrap();
            assert_eq!(ours.encoding(), ContentTransferEncoding::EightBit);
            assert_eq!(ours.into_vec(), lettre.into_vec());
        }
    }

    #[test]
    fn what_cannot_go_as_eight_bit_goes_through_lettre() {
        let long = format!("short\n{}\n", "x".repeat(MAX_LINE_OCTETS + 1));
        assert_ne!(
            eight_bit(long).encoding(),
            ContentTransferEncoding::EightBit
        );
        assert!(crlf_eight_bit(&"y".repeat(MAX_LINE_OCTETS)).is_some());
        // lettre would quoted-printable a line of 76 or more; SMTP's limit is 998.
        let longest = "z".repeat(MAX_LINE_OCTETS);
        assert_eq!(
            crlf_eight_bit(&format!("{longest}\n\nend\n")).unwrap(),
            format!("{longest}\r\n\r\nend\r\n").into_bytes()
        );
        let long_last = format!("short\n{}", "x".repeat(MAX_LINE_OCTETS + 1));
        assert!(
            crlf_eight_bit(&long_last).is_none(),
            "the last line counts too"
        );
        assert!(crlf_eight_bit("nul \0 here").is_none());
        assert!(crlf_eight_bit("crlf\r\nalready").is_none());
        let bare = eight_bit("bare\rcr".to_string());
        assert_ne!(bare.encoding(), ContentTransferEncoding::EightBit);
    }

    #[test]
    fn carries_list_headers_and_both_parts_in_order() {
        let from: Mailbox = "Paperboy <digest@paperboy.example.org>".parse().unwrap();
        let m = build_digest_message(&from, &digest()).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(
            text.contains("Message-ID: <digest.2024-10-25.7.abc@paperboy.example.org>"),
            "{text}"
        );
        assert!(text.contains("List-Unsubscribe: <https://paperboy.example.org/unsubscribe/tok>"));
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(text.contains("List-Id: Paperboy digest <digest.paperboy.example.org>"));
        assert!(text.contains("Auto-Submitted: auto-generated"));
        assert!(text.contains("multipart/alternative"));
        let plain = text.find("text/plain").unwrap();
        let html = text.find("text/html").unwrap();
        assert!(plain < html, "plain text comes first");
    }

    #[test]
    fn an_internationalised_address_goes_out_with_its_ascii_domain() {
        let from: Mailbox = "Paperboy <digest@paperboy.example.org>".parse().unwrap();
        let m = build_digest_message(
            &from,
            &DigestMessage {
                to: EmailAddress::parse("Ann@EXÄMPLE.org").unwrap(),
                ..digest()
            },
        )
        .unwrap();
        let rcpt: Vec<String> = m.envelope().to().iter().map(|a| a.to_string()).collect();
        assert_eq!(rcpt, ["ann@xn--exmple-cua.org"]);
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("To: ann@xn--exmple-cua.org\r\n"), "{text}");
    }

    #[test]
    fn the_envelope_sender_is_the_bounce_address_when_given_and_the_from_address_otherwise() {
        let from: Mailbox = "Paperboy <digest@paperboy.example.org>".parse().unwrap();
        let m = build_digest_message(&from, &digest()).unwrap();
        assert_eq!(
            m.envelope().from().map(|a| a.to_string()).as_deref(),
            Some("digest@paperboy.example.org")
        );
        let verp: lettre::Address = "bounces+7-0123456789abcdef0123@paperboy.example.org"
            .parse()
            .unwrap();
        let m = build_digest_message(
            &from,
            &DigestMessage {
                envelope_from: Some(verp.clone()),
                ..digest()
            },
        )
        .unwrap();
        assert_eq!(m.envelope().from(), Some(&verp));
        assert_eq!(
            m.envelope()
                .to()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            ["ada@example.org"]
        );
        // The From header stays the digest's.
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(
            text.contains("From: Paperboy <digest@paperboy.example.org>\r\n"),
            "{text}"
        );
    }
}
