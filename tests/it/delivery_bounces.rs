//! Bounces that arrive after the server took the message, end to end: digests go out through
//! Postfix's smtp-sink with a signed VERP envelope sender per delivery; delivery status
//! notifications, written as Postfix's bounce daemon writes them, land in a real Dovecot
//! mailbox (IMAPS, a certificate from a private CA); `paperboy bounces` reads them:
//! - a hard bounce suspends its address (`mail.max_hard_bounces` = 1);
//! - a soft one (delayed) does not;
//! - a bounce whose tag we did not sign, and a message that is no bounce, change nothing;
//! - a complaint (an abuse report holding the digest) unsubscribes its recipient at once, and
//!   one whose unsubscribe link we did not sign unsubscribes nobody;
//! - each report counts once, even when the same bounce arrives twice;
//! - `paperboy check` logs in to the mailbox, and a wrong password is named as such.

use crate::common::*;
use crate::delivery_support::*;
use std::collections::HashMap;

const T: &str = "2024-10-25T09:00:00Z";
const USER: &str = "bounces";
const PASSWORD: &str = "mailbox-Pa55word";
const BOUNCE_ADDRESS: &str = "bounces@paperboy.example.org";

/// A delivery status notification for `recipient`, sent to `verp` (the envelope sender of the
/// message it is about), laid out as Postfix's bounce daemon writes one.
fn postfix_dsn(
    verp: &str,
    recipient: &str,
    action: &str,
    status: &str,
    diagnostic: &str,
) -> String {
    format!(
        "Return-Path: <>\n\
         Delivered-To: {verp}\n\
         From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n\
         Subject: Undelivered Mail Returned to Sender\n\
         To: {verp}\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"7A3F2C1B9.1729846802/mx.example.net\"\n\
         Message-Id: <20241025090002.7A3F2C1B9@mx.example.net>\n\
         \n\
         This is a MIME-encapsulated message.\n\
         \n\
         --7A3F2C1B9.1729846802/mx.example.net\n\
         Content-Description: Notification\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         This is the mail system at host mx.example.net.\n\
         \n\
         --7A3F2C1B9.1729846802/mx.example.net\n\
         Content-Description: Delivery report\n\
         Content-Type: message/delivery-status\n\
         \n\
         Reporting-MTA: dns; mx.example.net\n\
         X-Postfix-Queue-ID: 7A3F2C1B9\n\
         X-Postfix-Sender: rfc822; {verp}\n\
         Arrival-Date: Fri, 25 Oct 2024 09:00:01 +0000 (UTC)\n\
         \n\
         Final-Recipient: rfc822; {recipient}\n\
         Original-Recipient: rfc822;{recipient}\n\
         Action: {action}\n\
         Status: {status}\n\
         Remote-MTA: dns; mail.example.net\n\
         Diagnostic-Code: smtp; {diagnostic}\n\
         \n\
         --7A3F2C1B9.1729846802/mx.example.net\n\
         Content-Description: Undelivered Message Headers\n\
         Content-Type: text/rfc822-headers\n\
         \n\
         From: Paperboy <digest@paperboy.example.org>\n\
         To: {recipient}\n\
         \n\
         --7A3F2C1B9.1729846802/mx.example.net--\n"
    )
}

/// An abuse report (ARF, RFC 5965) as a feedback loop sends one: the complained-of message
/// attached whole.
fn abuse_report(original: &str) -> String {
    format!(
        "From: Feedback Loop <fbl@mx.example.net>\n\
         Date: Fri, 25 Oct 2024 10:00:00 +0000\n\
         Subject: Abuse report\n\
         To: {BOUNCE_ADDRESS}\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=feedback-report;\n\
         \tboundary=\"arf_boundary_5965\"\n\
         \n\
         --arf_boundary_5965\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         This is an email abuse report for a message received from 192.0.2.1.\n\
         \n\
         --arf_boundary_5965\n\
         Content-Type: message/feedback-report\n\
         \n\
         Feedback-Type: abuse\n\
         User-Agent: ExampleFBL/1.0\n\
         Version: 1\n\
         \n\
         --arf_boundary_5965\n\
         Content-Type: message/rfc822\n\
         Content-Disposition: inline\n\
         \n\
         {original}\n\
         --arf_boundary_5965--\n"
    )
}

/// A private CA and Dovecot serving the bounce mailbox with a certificate it issued; `None`
/// when a tool is missing (skipped with a reason, or a failure under PAPERBOY_REQUIRE_ALL=1).
fn mailbox_or_skip(test: &str) -> Option<(TestCa, Dovecot)> {
    let ca = TestCa::create_or_skip(test)?;
    let certificate = ca.issue("localhost", "DNS:localhost,IP:127.0.0.1");
    let imap = Dovecot::start_or_skip(test, &certificate, &ca.certificate, USER, PASSWORD)?;
    Some((ca, imap))
}

#[test]
fn bounces_that_arrive_later_suspend_hard_ones_only_and_believe_only_signed_tags() {
    const TEST: &str =
        "bounces_that_arrive_later_suspend_hard_ones_only_and_believe_only_signed_tags";
    let Some(sink) = SmtpSink::start_or_skip(TEST) else {
        return;
    };
    let Some((ca, imap)) = mailbox_or_skip(TEST) else {
        return;
    };
    let (app, _server, db) = app_mailing(sink.url(), 4);
    let creds = tempfile::tempdir().expect("tempdir");
    let password_file = creds.path().join("imap_password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write the password");
    let ca_file = ca.certificate.display().to_string();
    let url = format!("imaps://{USER}@localhost:{}/INBOX", imap.port());
    let password_path = password_file.display().to_string();
    let env = [
        ("PAPERBOY__MAIL__BOUNCE_ADDRESS", BOUNCE_ADDRESS),
        ("PAPERBOY__MAIL__BOUNCE_IMAP_URL", url.as_str()),
        (
            "PAPERBOY__MAIL__BOUNCE_IMAP_PASSWORD_FILE",
            password_path.as_str(),
        ),
        ("PAPERBOY__MAIL__TLS_CA_FILE", ca_file.as_str()),
    ];
    let run = |args: &[&str], at: &str| {
        let mut invocation = app.paperboy(args.iter().copied()).at(at);
        for (key, value) in env {
            invocation = invocation.env(key, value);
        }
        let out = invocation.run();
        println!("{out}");
        out
    };

    // Each digest's envelope sender names its delivery.
    run(&["send"], T).assert_success();
    let sent = sink.wait_for_messages(4, std::time::Duration::from_secs(10));
    let verp: HashMap<String, String> = sent
        .iter()
        .map(|m| (m.envelope_to[0].clone(), m.envelope_from.clone()))
        .collect();
    assert_eq!(verp.len(), 4, "{verp:?}");
    for (to, from) in &verp {
        assert!(
            from.starts_with("bounces+") && from.ends_with("@paperboy.example.org"),
            "{to}: {from}"
        );
        let message = sent.iter().find(|m| &m.envelope_to[0] == to).unwrap();
        assert_eq!(
            message.header("From").as_deref(),
            Some("Paperboy <digest@paperboy.example.org>"),
            "the From header stays the digest's"
        );
    }
    let (hard, soft, forged, complains) = (address(0), address(1), address(2), address(3));
    let digest_to = |to: &str| {
        let m = sent.iter().find(|m| m.envelope_to[0] == to).unwrap();
        String::from_utf8_lossy(&m.raw).into_owned()
    };

    imap.append(&postfix_dsn(
        &verp[&hard],
        &hard,
        "failed",
        "5.1.1",
        "550 5.1.1 <reader00000@example.net>: Recipient address rejected: User unknown",
    ));
    imap.append(&postfix_dsn(
        &verp[&soft],
        &soft,
        "delayed",
        "4.2.2",
        "452 4.2.2 <reader00001@example.net>: Mailbox full",
    ));
    // reader2's tag with another MAC: someone who knows the scheme but not the key.
    let (tag_start, _) = verp[&forged].split_once('-').unwrap();
    let forged_verp = format!("{tag_start}-0123456789abcdef0123@paperboy.example.org");
    imap.append(&postfix_dsn(
        &forged_verp,
        &forged,
        "failed",
        "5.1.1",
        "550 5.1.1 User unknown",
    ));
    imap.append(
        "From: reader00002@example.net\nTo: digest@paperboy.example.org\n\
         Subject: Out of office\n\nI am away until Monday.\n",
    );
    // reader3 marks the digest as spam; a second report carries reader1's digest with its
    // unsubscribe token altered.
    imap.append(&abuse_report(&digest_to(&complains)));
    let tampered = digest_to(&soft).replacen("/unsubscribe/", "/unsubscribe/x", 1);
    imap.append(&abuse_report(&tampered));

    let out = run(&["check"], T);
    assert!(
        out.stdout.contains(&format!(
            "ok    bounce mailbox: {USER}@localhost:{}/INBOX: logged in; 6 unread",
            imap.port()
        )),
        "{out}"
    );

    let out = run(&["bounces"], T);
    out.assert_success();
    assert!(
        out.stdout.contains(
            "read 6 unread messages: 1 hard bounces, 1 soft ones, 1 addresses suspended, 1 \
             complaints unsubscribed; 2 forged tags or links and 1 other messages ignored"
        ),
        "{out}"
    );
    assert_eq!(db.subscriber_state(&hard), ("suspended".to_string(), 1));
    assert_eq!(db.subscriber_state(&soft), ("active".to_string(), 0));
    assert_eq!(db.subscriber_state(&forged), ("active".to_string(), 0));
    assert_eq!(
        db.subscriber_state(&complains),
        ("unsubscribed".to_string(), 0)
    );

    // Read: nothing new. The same bounce delivered again counts once.
    let out = run(&["bounces"], T);
    assert!(out.stdout.contains("read 0 unread messages"), "{out}");
    imap.append(&postfix_dsn(
        &verp[&hard],
        &hard,
        "failed",
        "5.1.1",
        "550 5.1.1 User unknown",
    ));
    let out = run(&["bounces"], T);
    assert!(
        out.stdout
            .contains("read 1 unread messages: 0 hard bounces")
            && out.stdout.contains("1 other messages ignored"),
        "{out}"
    );
    assert_eq!(db.subscriber_state(&hard), ("suspended".to_string(), 1));
    assert!(!out.all_output().contains(PASSWORD), "{out}");
}

#[test]
fn a_wrong_mailbox_password_is_named_by_check_and_by_the_reader() {
    const TEST: &str = "a_wrong_mailbox_password_is_named_by_check_and_by_the_reader";
    let Some((ca, imap)) = mailbox_or_skip(TEST) else {
        return;
    };
    let app = TestApp::builder().build();
    migrate(&app);
    let ca_file = ca.certificate.display().to_string();
    let url = format!("imaps://{USER}:not-it@localhost:{}/INBOX", imap.port());
    let with = |args: &[&str], ca: Option<&str>| {
        let mut invocation = app
            .paperboy(args.iter().copied())
            .at(T)
            .env("PAPERBOY__MAIL__BOUNCE_ADDRESS", BOUNCE_ADDRESS)
            .env("PAPERBOY__MAIL__BOUNCE_IMAP_URL", &url);
        if let Some(ca) = ca {
            invocation = invocation.env("PAPERBOY__MAIL__TLS_CA_FILE", ca);
        }
        let out = invocation.run();
        println!("{out}");
        out
    };
    let out = with(&["check"], Some(&ca_file));
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stdout
            .contains("FAIL  bounce mailbox: the bounce mailbox refused the login")
            && out
                .stdout
                .contains("`mail.bounce_imap_url` / `mail.bounce_imap_password_file`"),
        "{out}"
    );
    let out = with(&["bounces"], Some(&ca_file));
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(out.stderr.contains("refused the login"), "{out}");
    // Without the CA, the certificate is named as the problem, as for SMTP.
    let out = with(&["check"], None);
    assert!(
        out.stdout
            .contains("FAIL  bounce mailbox: the certificate of localhost is issued by")
            && out.stdout.contains("`mail.tls_ca_file`"),
        "{out}"
    );
    assert!(!out.all_output().contains("not-it"), "{out}");
}
