//! Complaints: a recipient's "this is spam", sent back by the provider's feedback loop as an
//! abuse report (ARF, RFC 5965: `multipart/report; report-type=feedback-report`) holding the
//! digest it is about, or at least its headers. The digest's `List-Unsubscribe` carries the
//! recipient's signed unsubscribe link, so the complaint unsubscribes exactly the subscriber
//! that link names, and one whose link does not verify (forged, damaged, or from a retired key)
//! unsubscribes nobody.
//! Not for: bounces (`dsn`), what a verified complaint does (`bounces`).

use super::dsn::{field_in, fields};
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// An abuse report about one of our digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    /// `Feedback-Type` (`abuse`, `fraud`, …).
    pub feedback_type: String,
    /// The token of the digest's unsubscribe link, when the report holds the digest's headers.
    pub unsubscribe_token: Option<String>,
}

/// The report in `raw`, or `None` when it is not a feedback report.
pub fn read(raw: &[u8]) -> Option<Complaint> {
    let parser = MessageParser::default();
    let message = parser.parse(raw)?;
    let is_part = |part: &mail_parser::MessagePart<'_>, ctype: &str, subtype: &str| {
        part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case(ctype)
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
        })
    };
    let report = message
        .parts
        .iter()
        .find(|p| is_part(p, "message", "feedback-report"))?;
    let report = String::from_utf8_lossy(report.contents()).into_owned();
    let feedback_type =
        field_in(&parser, &report, "Feedback-Type").unwrap_or_else(|| "abuse".into());
    // The digest itself (message/rfc822), or only its headers (text/rfc822-headers).
    let original = message.parts.iter().find_map(|part| match &part.body {
        PartType::Message(inner) => Some(inner.raw_message().to_vec()),
        _ if is_part(part, "text", "rfc822-headers") => Some(part.contents().to_vec()),
        _ => None,
    });
    let unsubscribe_token = original.and_then(|raw| {
        let headers = parser.parse_headers(&raw)?;
        fields(&headers, "List-Unsubscribe")
            .iter()
            .find_map(|value| token_of(value))
    });
    Some(Complaint {
        feedback_type,
        unsubscribe_token,
    })
}

/// The token of `<https://…/unsubscribe/TOKEN>` in a `List-Unsubscribe` value.
fn token_of(list_unsubscribe: &str) -> Option<String> {
    list_unsubscribe
        .split(['<', '>', ','])
        .map(str::trim)
        .find_map(|url| url.rsplit_once("/unsubscribe/").map(|(_, t)| t.to_string()))
        .filter(|t| !t.is_empty() && !t.contains(['/', '?', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_HEADERS: &str = "From: Paperboy <digest@paperboy.example.org>\r\n\
To: reader00003@example.net\r\n\
Subject: Your papers\r\n\
Message-ID: <digest.2024-10-25.4.abc@paperboy.example.org>\r\n\
List-Unsubscribe: <https://paperboy.example.org/unsubscribe/dXwzfDA.c2lnbmF0dXJl>\r\n\
List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";

    fn report(original_type: &str, original: &str) -> String {
        format!(
            "From: fbl@mx.example.net\r\n\
Subject: Abuse report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
An abuse report.\r\n\
--b\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: ExampleFBL/1.0\r\n\
Version: 1\r\n\
\r\n\
--b\r\n\
Content-Type: {original_type}\r\n\
\r\n\
{original}\r\n\
--b--\r\n"
        )
    }

    #[test]
    fn a_feedback_report_yields_the_digest_s_unsubscribe_token() {
        for (kind, original) in [
            (
                "message/rfc822",
                format!("{DIGEST_HEADERS}\r\nThe digest.\r\n"),
            ),
            ("text/rfc822-headers", DIGEST_HEADERS.to_string()),
        ] {
            let complaint = read(report(kind, &original).as_bytes()).expect("a complaint");
            assert_eq!(complaint.feedback_type, "abuse", "{kind}");
            assert_eq!(
                complaint.unsubscribe_token.as_deref(),
                Some("dXwzfDA.c2lnbmF0dXJl"),
                "{kind}"
            );
        }
        // The report without the digest's headers names nobody.
        let bare = read(report("text/plain", "no headers here").as_bytes()).expect("a report");
        assert_eq!(bare.unsubscribe_token, None);
        // A bounce or an ordinary message is no complaint.
        assert_eq!(
            read(b"From: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n"),
            None
        );
    }

    #[test]
    fn the_token_is_the_unsubscribe_path_s_last_segment() {
        assert_eq!(
            token_of("<mailto:x@example.org>, <https://h/unsubscribe/T0k.en>").as_deref(),
            Some("T0k.en")
        );
        assert_eq!(token_of("<https://h/manage/T0k>"), None);
        assert_eq!(token_of("<https://h/unsubscribe/>"), None);
    }
}
