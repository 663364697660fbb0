//! Delivery status notifications (RFC 3464), as mail servers send them to the envelope
//! sender: a `multipart/report; report-type=delivery-status` whose `message/delivery-status`
//! part has one block of fields per recipient (`Final-Recipient`, `Action`, `Status`,
//! `Diagnostic-Code`). The MIME structure and the field blocks are read by `mail-parser`.
//! Not for: deciding whose delivery it is (`verp`) or what it does (`bounces`).

use crate::store::BounceKind;
use mail_parser::{Message, MessageParser, MimeHeaders};

/// The headers a notification's own recipient appears in, where the VERP tag comes back:
/// `To` (the bounce is addressed to the envelope sender), and what local delivery adds.
const ADDRESSED_TO: &[&str] = &[
    "To",
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
];

/// A delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The values of the notification's [`ADDRESSED_TO`] headers.
    pub addressed_to: Vec<String>,
    /// One report per recipient the notification is about.
    pub recipients: Vec<RecipientReport>,
}

/// What the notification says of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// `Final-Recipient` without its address type (`rfc822;`).
    pub recipient: String,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub status: String,
    /// `Diagnostic-Code`, the remote server's answer, when given.
    pub diagnostic: Option<String>,
}

impl RecipientReport {
    /// Hard for a failure with a 5.x.x status (or none), soft for a 4.x.x failure or a delay;
    /// `None` for a success (`delivered`, `relayed`, `expanded`).
    pub fn kind(&self) -> Option<BounceKind> {
        match self.action.to_ascii_lowercase().as_str() {
            "failed" if self.status.starts_with('4') => Some(BounceKind::Soft),
            "failed" => Some(BounceKind::Hard),
            "delayed" => Some(BounceKind::Soft),
            _ => None,
        }
    }

    /// One line for the subscriber's record and the log.
    pub fn detail(&self) -> String {
        let mut line = format!("{} {} for {}", self.action, self.status, self.recipient);
        if let Some(d) = &self.diagnostic {
            line.push_str(": ");
            line.push_str(d);
        }
        line
    }
}

/// The notification in `raw`, or `None` when it is not one (an auto-reply, spam, a bounce in
/// a format of its own).
pub fn read(raw: &[u8]) -> Option<Notice> {
    let parser = MessageParser::default();
    let message = parser.parse(raw)?;
    let status = message.parts.iter().find(|part| {
        part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status")
                        // RFC 6533: the same fields, in UTF-8.
                        || s.eq_ignore_ascii_case("global-delivery-status")
                })
        })
    })?;
    let body = String::from_utf8_lossy(status.contents()).replace("\r\n", "\n");
    let recipients: Vec<RecipientReport> = body
        .split("\n\n")
        // The first block is about the message (Reporting-MTA, Arrival-Date...).
        .skip(1)
        .filter_map(|block| recipient_report(&parser, block))
        .collect();
    if recipients.is_empty() {
        return None;
    }
    Some(Notice {
        addressed_to: ADDRESSED_TO
            .iter()
            .flat_map(|name| fields(&message, name))
            .collect(),
        recipients,
    })
}

/// The first value of field `name` in a block of fields (a report's, or a message's headers).
pub(super) fn field_in(parser: &MessageParser, block: &str, name: &str) -> Option<String> {
    let block = format!("{}\n\n", block.trim());
    let parsed = parser.parse_headers(block.as_bytes())?;
    fields(&parsed, name).into_iter().next()
}

fn recipient_report(parser: &MessageParser, block: &str) -> Option<RecipientReport> {
    let field = |name: &str| field_in(parser, block, name);
    // "rfc822; user@example.net": the address type is not needed.
    let recipient = field("Final-Recipient").or_else(|| field("Original-Recipient"))?;
    let recipient = recipient
        .split_once(';')
        .map_or(recipient.as_str(), |(_, address)| address)
        .trim()
        .to_string();
    Some(RecipientReport {
        recipient,
        action: field("Action")?,
        status: field("Status").unwrap_or_default(),
        diagnostic: field("Diagnostic-Code"),
    })
}

/// The values of every `name` field, unfolded, as written.
pub(super) fn fields(message: &Message<'_>, name: &str) -> Vec<String> {
    let raw = message.raw_message();
    message
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .filter_map(|h| raw.get(h.offset_start as usize..h.offset_end as usize))
        .map(|value| {
            String::from_utf8_lossy(value)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Postfix's bounce daemon writes one (RFC 3464 with its own text part).
    const POSTFIX_DSN: &str = "Return-Path: <>\r\n\
Delivered-To: bounces+31-0123456789abcdef0123@paperboy.example.org\r\n\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: bounces+31-0123456789abcdef0123@paperboy.example.org\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"4F1C23A0E.1733560000/mx.example.net\"\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--4F1C23A0E.1733560000/mx.example.net\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients.\r\n\
\r\n\
--4F1C23A0E.1733560000/mx.example.net\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
X-Postfix-Queue-ID: 4F1C23A0E\r\n\
Arrival-Date: Mon,  7 Dec 2026 07:00:02 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; reader00001@example.net\r\n\
Original-Recipient: rfc822;reader00001@example.net\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mail.example.net\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <reader00001@example.net>: Recipient address\r\n\
\x20   rejected: User unknown in virtual mailbox table\r\n\
\r\n\
--4F1C23A0E.1733560000/mx.example.net\r\n\
Content-Description: Undelivered Message Headers\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: Paperboy <digest@paperboy.example.org>\r\n\
Subject: Your papers\r\n\
\r\n\
--4F1C23A0E.1733560000/mx.example.net--\r\n";

    #[test]
    fn a_postfix_bounce_reads_as_a_hard_failure_of_its_recipient() {
        let notice = read(POSTFIX_DSN.as_bytes()).expect("a DSN");
        assert_eq!(notice.recipients.len(), 1);
        let r = &notice.recipients[0];
        assert_eq!(r.recipient, "reader00001@example.net");
        assert_eq!((r.action.as_str(), r.status.as_str()), ("failed", "5.1.1"));
        assert_eq!(r.kind(), Some(BounceKind::Hard));
        assert!(
            r.detail().contains("User unknown in virtual mailbox table"),
            "{}",
            r.detail()
        );
        assert!(
            notice
                .addressed_to
                .iter()
                .any(|a| a == "bounces+31-0123456789abcdef0123@paperboy.example.org"),
            "{:?}",
            notice.addressed_to
        );
    }

    #[test]
    fn delays_and_temporary_failures_are_soft_and_successes_are_nothing() {
        let with = |action: &str, status: &str| {
            POSTFIX_DSN
                .replace("Action: failed", &format!("Action: {action}"))
                .replace("Status: 5.1.1", &format!("Status: {status}"))
        };
        let kind = |raw: String| read(raw.as_bytes()).unwrap().recipients[0].kind();
        assert_eq!(kind(with("delayed", "4.4.1")), Some(BounceKind::Soft));
        assert_eq!(kind(with("failed", "4.2.2")), Some(BounceKind::Soft));
        assert_eq!(kind(with("delivered", "2.0.0")), None);
        // An ordinary message, an auto-reply: not a notification.
        assert_eq!(
            read(b"From: a@example.net\r\nSubject: Out of office\r\n\r\nAway.\r\n"),
            None
        );
    }
}
