//! The bounce and complaint webhooks of mail services, read from their documented JSON:
//! Amazon SES notifications (delivered by an SNS HTTPS subscription, inside SNS's envelope)
//! and Postmark's bounce and spam complaint webhooks. Each becomes a [`ProviderReport`]; the
//! caller has checked the call's password first (`web::webhooks`), since these payloads name
//! an address rather than a signed tag.
//! Not for: authenticating the call, or what a report does (`bounces`).

use crate::store::BounceKind;
use serde::Deserialize;

/// What a mail service reported about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderReport {
    Bounce {
        email: String,
        kind: BounceKind,
        /// The enhanced status code where the service gives one, else its bounce type.
        status: String,
        detail: String,
        /// The Message-ID of the message that bounced, where the service passes it on.
        message_id: Option<String>,
    },
    /// "This is spam".
    Complaint { email: String },
}

/// What a webhook body is, once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    Reports(Vec<ProviderReport>),
    /// SNS asks to confirm the subscription: the operator opens this URL once.
    ConfirmSubscription(String),
    /// A notification about something that is neither a bounce nor a complaint (a delivery,
    /// an open...): nothing to do.
    Other(String),
}

/// A Postmark webhook body: a bounce (`RecordType: Bounce`) or a spam complaint.
pub fn postmark(body: &[u8]) -> Result<Webhook, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Record {
        record_type: String,
        #[serde(rename = "Type", default)]
        kind: String,
        email: String,
        #[serde(default)]
        details: String,
        #[serde(default)]
        description: String,
    }
    let r: Record = serde_json::from_slice(body).map_err(|e| {
        format!("not a Postmark bounce or spam complaint webhook (RecordType, Type, Email): {e}")
    })?;
    let bounce = |kind| {
        Webhook::Reports(vec![ProviderReport::Bounce {
            email: r.email.clone(),
            kind,
            status: r.kind.clone(),
            detail: format!("Postmark {}: {} {}", r.kind, r.description, r.details)
                .trim()
                .to_string(),
            message_id: None,
        }])
    };
    Ok(match (r.record_type.as_str(), r.kind.as_str()) {
        ("SpamComplaint", _) | ("Bounce", "SpamComplaint") => {
            Webhook::Reports(vec![ProviderReport::Complaint { email: r.email }])
        }
        // Postmark's bounce types: the address does not exist, or cannot take mail for good...
        ("Bounce", "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated") => {
            bounce(BounceKind::Hard)
        }
        // ...or cannot just now.
        ("Bounce", "SoftBounce" | "Transient" | "DnsError") => bounce(BounceKind::Soft),
        (record, kind) => Webhook::Other(format!("Postmark {record} {kind}")),
    })
}

/// An SNS message: the envelope of an SES notification (or a subscription confirmation).
/// A bare SES notification, without the envelope, is read too.
pub fn ses(body: &[u8]) -> Result<Webhook, String> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "Type")]
        kind: Option<String>,
        #[serde(rename = "Message")]
        message: Option<String>,
        #[serde(rename = "SubscribeURL")]
        subscribe_url: Option<String>,
    }
    let unreadable = |e: serde_json::Error| {
        format!("not an SNS message or an SES notification (Type, Message, notificationType): {e}")
    };
    let envelope: Envelope = serde_json::from_slice(body).map_err(unreadable)?;
    match (
        envelope.kind.as_deref(),
        envelope.message,
        envelope.subscribe_url,
    ) {
        (Some("SubscriptionConfirmation"), _, Some(url)) => Ok(Webhook::ConfirmSubscription(url)),
        (Some("Notification"), Some(message), _) => ses_notification(message.as_bytes()),
        (Some(other), _, _) => Ok(Webhook::Other(format!("SNS {other}"))),
        (None, _, _) => ses_notification(body),
    }
}

/// The SES notification itself: `notificationType` (or `eventType`) `Bounce` or `Complaint`.
fn ses_notification(json: &[u8]) -> Result<Webhook, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Notification {
        notification_type: Option<String>,
        event_type: Option<String>,
        bounce: Option<Bounce>,
        complaint: Option<Complaint>,
        mail: Option<Mail>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Bounce {
        bounce_type: String,
        #[serde(default)]
        bounce_sub_type: String,
        bounced_recipients: Vec<Recipient>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Complaint {
        complained_recipients: Vec<Recipient>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Recipient {
        email_address: String,
        status: Option<String>,
        diagnostic_code: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Mail {
        common_headers: Option<CommonHeaders>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct CommonHeaders {
        message_id: Option<String>,
    }
    let n: Notification = serde_json::from_slice(json)
        .map_err(|e| format!("not an SES notification (notificationType, bounce, mail): {e}"))?;
    let message_id = n
        .mail
        .and_then(|m| m.common_headers)
        .and_then(|h| h.message_id);
    let kind = n.notification_type.or(n.event_type).unwrap_or_default();
    Ok(match (kind.as_str(), n.bounce, n.complaint) {
        ("Bounce", Some(b), _) => {
            // SES: Permanent is for good; Transient and Undetermined may pass.
            let kind = match b.bounce_type.as_str() {
                "Permanent" => BounceKind::Hard,
                _ => BounceKind::Soft,
            };
            Webhook::Reports(
                b.bounced_recipients
                    .into_iter()
                    .map(|r| ProviderReport::Bounce {
                        status: r.status.clone().unwrap_or_else(|| b.bounce_type.clone()),
                        detail: format!(
                            "SES {} {}{}",
                            b.bounce_type,
                            b.bounce_sub_type,
                            r.diagnostic_code
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        ),
                        email: r.email_address,
                        kind,
                        message_id: message_id.clone(),
                    })
                    .collect(),
            )
        }
        ("Complaint", _, Some(c)) => Webhook::Reports(
            c.complained_recipients
                .into_iter()
                .map(|r| ProviderReport::Complaint {
                    email: r.email_address,
                })
                .collect(),
        ),
        (other, _, _) => Webhook::Other(format!("SES {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postmark_type(kind: &str, record: &str) -> Webhook {
        postmark(
            format!(r#"{{"RecordType":"{record}","Type":"{kind}","Email":"a@example.net"}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn postmark_types_map_to_hard_soft_complaint_or_nothing() {
        let kind_of = |w: Webhook| match w {
            Webhook::Reports(r) => match &r[0] {
                ProviderReport::Bounce { kind, .. } => format!("{kind:?}"),
                ProviderReport::Complaint { .. } => "Complaint".into(),
            },
            other => format!("{other:?}"),
        };
        assert_eq!(kind_of(postmark_type("HardBounce", "Bounce")), "Hard");
        assert_eq!(kind_of(postmark_type("SoftBounce", "Bounce")), "Soft");
        assert_eq!(kind_of(postmark_type("Transient", "Bounce")), "Soft");
        assert_eq!(
            kind_of(postmark_type("SpamComplaint", "SpamComplaint")),
            "Complaint"
        );
        assert!(matches!(
            postmark_type("AutoResponder", "Bounce"),
            Webhook::Other(_)
        ));
        assert!(postmark(b"[]").unwrap_err().contains("Postmark"));
    }

    #[test]
    fn an_ses_notification_is_read_with_or_without_its_sns_envelope() {
        let bare = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Transient",
            "bounceSubType":"MailboxFull","bouncedRecipients":[{"emailAddress":"a@example.net"}]},
            "mail":{"commonHeaders":{"messageId":"<k@d>"}}}"#;
        let wrapped = serde_json::json!({"Type": "Notification", "Message": bare}).to_string();
        for body in [bare.to_string(), wrapped] {
            match ses(body.as_bytes()).unwrap() {
                Webhook::Reports(r) => assert_eq!(
                    r,
                    [ProviderReport::Bounce {
                        email: "a@example.net".into(),
                        kind: BounceKind::Soft,
                        status: "Transient".into(),
                        detail: "SES Transient MailboxFull".into(),
                        message_id: Some("<k@d>".into()),
                    }]
                ),
                other => panic!("{other:?}"),
            }
        }
        let delivery = r#"{"notificationType":"Delivery","mail":{}}"#;
        assert!(matches!(
            ses(delivery.as_bytes()).unwrap(),
            Webhook::Other(_)
        ));
    }
}
