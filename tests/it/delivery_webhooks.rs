//! The bounce and complaint webhooks of Amazon SES (through SNS) and Postmark, against the real
//! daemon, with the services' documented payloads (`tests/fixtures/webhooks/`):
//! - a call without the password of `mail.webhook_secret_file`, or with another, is refused
//!   (401) and changes nothing;
//! - a hard bounce suspends the address (`mail.max_hard_bounces` = 1), once per delivery however
//!   often it is posted; a complaint unsubscribes at once;
//! - an SNS subscription confirmation is logged for the operator to confirm;
//! - `/metrics` counts what the reports did (`paperboy_bounce_reports_total{outcome}`);
//! - without the secret configured, the webhooks do not exist (404).

use crate::common::*;
use crate::delivery_support::*;
use crate::web_common::*;

const T: &str = "2024-10-25T09:00:00Z";
const SECRET: &str = "hooks-0123456789abcdef0123456789";

fn payload(name: &str, email: &str, message_id: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("{{EMAIL}}", email)
        .replace("{{MESSAGE_ID}}", message_id)
}

/// POSTs `body` to `url` with HTTP Basic `password` (none when `None`): status and body.
fn post(url: &str, password: Option<&str>, body: String) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut request = client()
            .post(url)
            .header("content-type", "text/plain; charset=UTF-8")
            .body(body);
        if let Some(password) = password {
            request = request.basic_auth("hooks", Some(password));
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

/// GETs `url`: status and body.
fn get_text(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let response = client().get(url).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

#[test]
fn ses_and_postmark_webhooks_suspend_and_unsubscribe_only_when_authenticated() {
    const TEST: &str = "ses_and_postmark_webhooks_suspend_and_unsubscribe_only_when_authenticated";
    let Some(sink) = SmtpSink::start_or_skip(TEST) else {
        return;
    };
    let (app, _server, db) = app_mailing(sink.url(), 4);
    app.paperboy(["send"]).at(T).run().assert_success();
    let sent = sink.wait_for_messages(4, std::time::Duration::from_secs(10));
    let message_id = |to: &str| {
        sent.iter()
            .find(|m| m.envelope_to[0] == to)
            .and_then(|m| m.header("Message-ID"))
            .expect("a Message-ID")
    };
    let secret_file = app.dir().join("webhook_secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write the secret");
    let daemon = WebDaemon::start(
        &app,
        T,
        &[(
            "PAPERBOY__MAIL__WEBHOOK_SECRET_FILE",
            &secret_file.display().to_string(),
        )],
    );
    let (ses, postmark) = (
        daemon.url("/webhooks/ses"),
        daemon.url("/webhooks/postmark"),
    );
    let (a, b, c, d) = (address(0), address(1), address(2), address(3));

    // Unauthenticated or with the wrong password: refused, nothing changes.
    let hard_a = payload("postmark_bounce.json", &a, "");
    assert_eq!(post(&postmark, None, hard_a.clone()).0, 401);
    assert_eq!(
        post(&postmark, Some("not-the-secret"), hard_a.clone()).0,
        401
    );
    let bounce_c = payload("ses_bounce.json", &c, &message_id(&c));
    assert_eq!(post(&ses, None, bounce_c.clone()).0, 401);
    for who in [&a, &b, &c, &d] {
        assert_eq!(db.subscriber_state(who), ("active".to_string(), 0), "{who}");
    }

    // Postmark: a hard bounce suspends, a spam complaint unsubscribes.
    let (status, text) = post(&postmark, Some(SECRET), hard_a);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("1 hard bounces") && text.contains("1 addresses suspended"),
        "{text}"
    );
    assert_eq!(db.subscriber_state(&a), ("suspended".to_string(), 1));
    let (status, text) = post(
        &postmark,
        Some(SECRET),
        payload("postmark_spam_complaint.json", &b, ""),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(db.subscriber_state(&b).0, "unsubscribed");

    // SES through SNS: a permanent bounce suspends, once however often it is posted.
    for _ in 0..2 {
        let (status, text) = post(&ses, Some(SECRET), bounce_c.clone());
        assert_eq!(status, 200, "{text}");
    }
    assert_eq!(db.subscriber_state(&c), ("suspended".to_string(), 1));
    let (status, text) = post(
        &ses,
        Some(SECRET),
        payload("ses_complaint.json", &d, &message_id(&d)),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(db.subscriber_state(&d).0, "unsubscribed");

    // A subscription confirmation is for the operator: logged with its URL.
    let (status, _) = post(
        &ses,
        Some(SECRET),
        payload("ses_subscription_confirmation.json", "", ""),
    );
    assert_eq!(status, 200);
    assert!(
        wait_until(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(50),
            || daemon.log().contains("Action=ConfirmSubscription")
        ),
        "{}",
        daemon.log()
    );
    // Garbage is refused as such.
    let (status, text) = post(&ses, Some(SECRET), "{not json".into());
    assert_eq!(status, 400, "{text}");
    assert!(
        !daemon.log().contains(SECRET),
        "the password is never logged"
    );
    // What the webhooks did, as an operator's dashboard sees it: a + c hard (c's repeat
    // ignored), b + d complaints.
    let (status, metrics) = get_text(&daemon.url("/metrics"));
    assert_eq!(status, 200);
    for (outcome, n) in [("hard", 2), ("complaint", 2), ("ignored", 1), ("forged", 0)] {
        let line = format!("paperboy_bounce_reports_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    }
    daemon.stop();

    // Without the secret the webhooks do not exist.
    let daemon = WebDaemon::start(&app, T, &[]);
    let (status, _) = post(
        &daemon.url("/webhooks/postmark"),
        Some(SECRET),
        payload("postmark_bounce.json", &address(0), ""),
    );
    assert_eq!(status, 404);
    daemon.stop();
}
