//! Bounces that arrive after the server took the message: most providers accept at SMTP time
//! and report a failure later, as a delivery status notification (RFC 3464) to the envelope
//! sender. With `mail.bounce_address` set, that sender names its delivery, signed (`verp`);
//! [`read_mailbox`] reads the unread messages of `mail.bounce_imap_url` (`mailbox`), reads each
//! notification (`dsn`), believes only a tag we signed, and records what it says once per
//! delivery (`store::record_bounce_report`):
//! - a hard bounce (5.x.x) counts as a 5xx at RCPT does, toward `mail.max_hard_bounces` and
//!   suspension;
//! - soft ones (4.x.x, "delayed") count as one hard bounce for every `mail.max_soft_bounces`
//!   digests to the address that bounced softly, since a full mailbox empties again;
//! - a complaint (an abuse report from a feedback loop, `complaint`) unsubscribes the
//!   subscriber whose signed unsubscribe link the reported digest carries, at once;
//! - anything else (an auto-reply, a forged tag or link, a success report) changes nothing.
//!
//! The webhooks of mail services (Amazon SES, Postmark: `providers`, called by
//! `web::webhooks` once the call's password checks out) report by address instead; their
//! reports go through the same counting ([`apply_reports`]).
//!
//! Each message is marked read once recorded; a crash in between reads it again, and the
//! report, already recorded for that delivery, counts once.
//! Not for: 5xx answers at send time (`delivery`), building the envelope (`delivery`, with
//! [`verp::envelope_sender`]).

mod complaint;
mod dsn;
mod mailbox;
pub mod providers;
pub mod verp;

use crate::config::MailSettings;
use crate::jobs::App;
use crate::links::Purpose;
use crate::mail::Trust;
use crate::model::{EmailAddress, SubscriberId};
use crate::store::BounceKind;
use mailbox::BounceMailbox;
use providers::ProviderReport;
use tracing::{info, warn};
use verp::Tagged;

/// What one reading of the bounce mailbox found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages read from the mailbox, or reports a webhook call carried.
    pub read: usize,
    /// Hard bounces recorded, and soft ones.
    pub hard: usize,
    pub soft: usize,
    /// Addresses suspended by them.
    pub suspended: usize,
    /// Complaints that unsubscribed their subscriber.
    pub complaints: usize,
    /// Notifications whose tag, and complaints whose unsubscribe link, we did not sign: ignored.
    pub forged: usize,
    /// Messages that are no delivery status notification of ours (no tag, no report, a
    /// delivery that no longer exists, a report already recorded).
    pub ignored: usize,
}

/// Reads the unread messages of the bounce mailbox once. `Ok(None)` when none is configured.
pub async fn read_mailbox(app: &App) -> Result<Option<Summary>, String> {
    let mail = &app.settings.mail;
    let (Some(url), Some(bounce)) = (&mail.bounce_mailbox, &mail.bounce_address) else {
        return Ok(None);
    };
    let trust = Trust::load(mail.tls_ca.as_ref());
    let mut mailbox = BounceMailbox::open(url, &trust, mail.timeout).await?;
    let messages = mailbox.unread().await?;
    let mut summary = Summary {
        read: messages.len(),
        ..Summary::default()
    };
    for (uid, raw) in messages {
        let outcome = match (complaint::read(&raw), dsn::read(&raw)) {
            (Some(report), _) => complain(app, &report).await,
            (None, None) => Ok(Counted::Ignored(
                "neither a delivery status notification nor a complaint",
            )),
            (None, Some(notice)) => {
                match verp::delivery_in(bounce, &app.signer, &notice.addressed_to) {
                    Tagged::Untagged => {
                        Ok(Counted::Ignored("not addressed to a tagged bounce address"))
                    }
                    Tagged::Forged(tag) => {
                        warn!(uid, tag, "a bounce with a tag we did not sign; ignored");
                        Ok(Counted::Forged)
                    }
                    Tagged::Delivery(delivery) => record(app, delivery, &notice).await,
                }
            }
        };
        let outcome = outcome?;
        if let Counted::Ignored(why) = &outcome {
            info!(uid, why, "bounce mailbox: message left as it is");
        }
        summary.count(outcome);
        mailbox.mark_read(uid).await?;
    }
    mailbox.close().await;
    summary.publish(app);
    Ok(Some(summary))
}

/// Whether the bounce mailbox answers, and how many messages wait in it (`paperboy check`).
pub async fn probe_mailbox(mail: &MailSettings) -> Option<Result<String, String>> {
    let url = mail.bounce_mailbox.as_ref()?;
    let trust = Trust::load(mail.tls_ca.as_ref());
    Some(
        async {
            let mut mailbox = BounceMailbox::open(url, &trust, mail.timeout).await?;
            let unread = mailbox.unread_count().await?;
            let name = mailbox.name.clone();
            mailbox.close().await;
            Ok(format!("{name}: logged in; {unread} unread"))
        }
        .await,
    )
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} hard bounces, {} soft ones, {} addresses suspended, {} complaints \
             unsubscribed; {} forged tags or links and {} other messages ignored",
            self.hard, self.soft, self.suspended, self.complaints, self.forged, self.ignored
        )
    }
}

impl Summary {
    /// One log line for what a reading (`source`: the mailbox, a webhook) did.
    pub fn log(&self, source: &str) {
        info!(
            source,
            read = self.read,
            hard = self.hard,
            soft = self.soft,
            suspended = self.suspended,
            complaints = self.complaints,
            forged = self.forged,
            ignored = self.ignored,
            "bounce reports recorded"
        );
    }

    /// Adds this reading to `paperboy_bounce_reports_total`.
    fn publish(&self, app: &App) {
        app.metrics.bounce_reports(&[
            ("hard", self.hard),
            ("soft", self.soft),
            ("complaint", self.complaints),
            ("forged", self.forged),
            ("ignored", self.ignored),
        ]);
    }

    fn count(&mut self, counted: Counted) {
        match counted {
            Counted::Ignored(_) => self.ignored += 1,
            Counted::Forged => self.forged += 1,
            Counted::Complaint { unsubscribed } => {
                self.complaints += usize::from(unsubscribed);
                self.ignored += usize::from(!unsubscribed);
            }
            Counted::Bounce { kind, suspended } => {
                match kind {
                    BounceKind::Hard => self.hard += 1,
                    BounceKind::Soft => self.soft += 1,
                }
                self.suspended += usize::from(suspended);
            }
        }
    }
}

enum Counted {
    Ignored(&'static str),
    Forged,
    /// A verified complaint; false when its subscriber had unsubscribed already.
    Complaint {
        unsubscribed: bool,
    },
    Bounce {
        kind: BounceKind,
        suspended: bool,
    },
}

/// What the webhook of a mail service reported ([`providers`]), done as the same reports from
/// the bounce mailbox are: a bounce counts against the delivery it names (its Message-ID), or
/// else the last digest sent to the address, once; a complaint unsubscribes the address.
pub async fn apply_reports(app: &App, reports: &[ProviderReport]) -> Result<Summary, String> {
    let mut summary = Summary {
        read: reports.len(),
        ..Summary::default()
    };
    for report in reports {
        let counted = match report {
            ProviderReport::Bounce {
                email,
                kind,
                status,
                detail,
                message_id,
            } => {
                let key = message_id.as_deref().and_then(message_key);
                let delivery = match EmailAddress::parse(email) {
                    Ok(address) => app
                        .store
                        .delivery_for_report(&address, key)
                        .await
                        .map_err(|e| e.to_string())?,
                    Err(_) => None,
                };
                match delivery {
                    Some(delivery) => record_bounce(app, delivery, *kind, status, detail).await?,
                    None => Counted::Ignored("no digest was sent to that address"),
                }
            }
            ProviderReport::Complaint { email } => {
                let subscriber = match EmailAddress::parse(email) {
                    Ok(address) => app
                        .store
                        .subscriber_by_email(&address)
                        .await
                        .map_err(|e| e.to_string())?,
                    Err(_) => None,
                };
                match subscriber {
                    Some(s) => {
                        unsubscribe_for_complaint(app, SubscriberId(s.id), "webhook").await?
                    }
                    None => Counted::Ignored("a complaint about an address we do not mail"),
                }
            }
        };
        summary.count(counted);
    }
    summary.publish(app);
    Ok(summary)
}

/// The key of one of our Message-IDs, `<KEY@domain>` (`mail::message_id`).
fn message_key(message_id: &str) -> Option<&str> {
    let inner = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    inner
        .rsplit_once('@')
        .map(|(key, _)| key)
        .filter(|k| !k.is_empty())
}

/// Unsubscribes whom a complaint's digest was for, when its unsubscribe link verifies.
async fn complain(app: &App, report: &complaint::Complaint) -> Result<Counted, String> {
    let Some(token) = &report.unsubscribe_token else {
        return Ok(Counted::Ignored("a complaint without the digest's headers"));
    };
    let now = app.clock.now();
    match app.signer.verify(token, Purpose::Unsubscribe, now) {
        Err(e) => {
            warn!(error = %e, "a complaint whose unsubscribe link we did not sign; ignored");
            Ok(Counted::Forged)
        }
        Ok(claims) => {
            unsubscribe_for_complaint(
                app,
                SubscriberId(claims.subscriber_id),
                &report.feedback_type,
            )
            .await
        }
    }
}

/// A complaint's effect: the subscription ends at once, as the unsubscribe link would end it.
async fn unsubscribe_for_complaint(
    app: &App,
    id: SubscriberId,
    what: &str,
) -> Result<Counted, String> {
    let unsubscribed = app
        .store
        .unsubscribe(id, app.clock.now())
        .await
        .map_err(|e| e.to_string())?;
    info!(
        subscriber = id.0,
        what, unsubscribed, "complaint: unsubscribed"
    );
    Ok(Counted::Complaint { unsubscribed })
}

/// Whether the `soft`-th soft bounce since the subscriber confirmed counts as a hard one: every
/// `max`-th does, so a mailbox full for a day costs nothing and one full for weeks counts.
fn soft_bounces_count(soft: i64, max: u32) -> bool {
    soft > 0 && soft % i64::from(max.max(1)) == 0
}

/// Records the worst of what `notice` says of `delivery`.
async fn record(app: &App, delivery: i64, notice: &dsn::Notice) -> Result<Counted, String> {
    let worst = notice
        .recipients
        .iter()
        .filter_map(|r| Some((r.kind()?, r)))
        .max_by_key(|(kind, _)| matches!(kind, BounceKind::Hard));
    let Some((kind, report)) = worst else {
        return Ok(Counted::Ignored("reports no failure"));
    };
    record_bounce(app, delivery, kind, &report.status, &report.detail()).await
}

/// What a bounce of `kind` does, once per delivery, wherever it was reported.
async fn record_bounce(
    app: &App,
    delivery: i64,
    kind: BounceKind,
    status: &str,
    detail: &str,
) -> Result<Counted, String> {
    let now = app.clock.now();
    let Some(reported) = app
        .store
        .record_bounce_report(delivery, kind, status, detail, now)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Counted::Ignored(
            "its delivery is gone or was reported already",
        ));
    };
    let mail = &app.settings.mail;
    let counts_as_hard = match kind {
        BounceKind::Hard => Some(format!("bounced later: {detail}")),
        BounceKind::Soft
            if soft_bounces_count(reported.soft_since_confirmed, mail.max_soft_bounces) =>
        {
            Some(format!(
                "{} digests bounced softly (mail.max_soft_bounces), the last: {detail}",
                reported.soft_since_confirmed
            ))
        }
        BounceKind::Soft => None,
    };
    let suspended = match counts_as_hard {
        None => false,
        Some(text) => {
            app.store
                .record_hard_bounce(reported.subscriber, &text, mail.max_hard_bounces, now)
                .await
                .map_err(|e| e.to_string())?
                .suspended
        }
    };
    info!(
        delivery,
        subscriber = reported.subscriber.0,
        kind = ?kind,
        suspended,
        detail,
        "bounce recorded"
    );
    Ok(Counted::Bounce { kind, suspended })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_message_ids_give_their_delivery_key() {
        assert_eq!(
            message_key("<digest.2024-10-25.4.ab@paperboy.example.org>"),
            Some("digest.2024-10-25.4.ab")
        );
        assert_eq!(message_key(" digest.x@d "), Some("digest.x"));
        assert_eq!(message_key("<@d>"), None);
        assert_eq!(message_key("no-at-sign"), None);
    }

    #[test]
    fn every_max_th_soft_bounce_counts_as_a_hard_one() {
        let counted: Vec<i64> = (1..=7).filter(|n| soft_bounces_count(*n, 3)).collect();
        assert_eq!(counted, [3, 6]);
        assert!(soft_bounces_count(1, 1));
        assert!(!soft_bounces_count(0, 3));
    }
}
