//! Fault injection: Postfix's smtp-sink refusing (`-r` 4xx, `-f` 5xx), dropping connections
//! (`-q`) or stalling (`-w`), then, where it applies, the server recovering on the same port.
//! Every digest must end `sent` or `failed` as the rules say, none lost, none sent twice:
//! - 4xx, dropped connection, timeout: `retry` with backoff, sent once when the server is back;
//!   given up (`failed`) after `mail.retry_max_hours`. The circuit breaker stops an outage from
//!   spending every digest's attempt: most deliveries are never tried while it is open.
//! - 5xx at RCPT: a hard bounce. `failed`, counted on the subscriber, who is suspended after
//!   `mail.max_hard_bounces` and gets nothing more.
//! - 5xx at end of DATA: that delivery `failed`; the subscriber is not blamed.

use crate::common::*;
use crate::delivery_support::*;
use std::collections::HashMap;

const N: usize = 30;
const T: &str = "2024-10-25T09:00:00Z";

fn sink_with(test: &str, port: Option<u16>, args: &[&str]) -> Option<SmtpSink> {
    SmtpSink::start_with_or_skip(
        test,
        SmtpSinkOptions {
            port,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
        },
    )
}

/// An app on `port` with N due subscribers and the day-1 papers.
fn app_on(port: u16) -> (TestApp, FixtureServer, Db) {
    app_mailing(format!("smtp://127.0.0.1:{port}"), N)
}

fn send(app: &TestApp, now: &str, env: &[(&str, &str)]) -> CmdOutput {
    let mut inv = app.paperboy(["send"]).at(now);
    for (k, v) in env {
        inv = inv.env(k, v);
    }
    inv.run()
}

fn count(db: &Db, status: &str) -> i64 {
    db.status_counts().get(status).copied().unwrap_or(0)
}

/// Each subscriber's complete messages, by address.
fn received(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in complete_messages(sink) {
        for to in m.envelope_to {
            *out.entry(to).or_insert(0) += 1;
        }
    }
    out
}

/// A temporary outage of one kind, then recovery: everyone gets exactly one digest.
fn outage_then_recovery(test: &str, fault: &[&str], env: &[(&str, &str)], error_says: &str) {
    let Some(bad) = sink_with(test, None, fault) else {
        return;
    };
    let port = bad.port();
    let (app, _server, db) = app_on(port);

    let out = send(&app, T, env);
    out.assert_failure();
    assert!(
        received(&bad).is_empty(),
        "nothing accepted during the outage"
    );
    let retrying = count(&db, "retry");
    let untouched =
        db.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'planned' AND attempts = 0");
    assert_eq!(
        retrying + untouched,
        N as i64,
        "{:?}\n{out}",
        db.status_counts()
    );
    assert!(retrying >= 1, "{:?}", db.status_counts());
    // The circuit breaker: once most attempts failed, the rest were not tried at all.
    assert!(
        untouched >= 1,
        "the circuit breaker should have spared some deliveries: {:?}\n{out}",
        db.status_counts()
    );
    let listing = app
        .paperboy(["deliveries", "--status", "retry"])
        .at(T)
        .run();
    listing.assert_success();
    assert!(
        listing.stdout.contains(error_says),
        "`deliveries --status retry` shows the last error ({error_says}):\n{listing}"
    );

    // The server comes back on the same port; a later run sends everything, once.
    drop(bad);
    let Some(good) = SmtpSink::start_on_or_skip(test, port) else {
        return;
    };
    let later = plus_secs(T, 600);
    send(&app, &later, env).assert_success();
    assert_eq!(count(&db, "sent"), N as i64, "{:?}", db.status_counts());
    let got = received(&good);
    assert_eq!(got.len(), N, "every subscriber got a digest");
    assert!(got.values().all(|n| *n == 1), "none twice: {got:?}");
}

#[test]
fn soft_rejections_at_rcpt_are_retried_and_sent_once_when_the_server_recovers() {
    outage_then_recovery("soft_rejections", &["-r", "RCPT"], &[], "RCPT TO: ");
}

#[test]
fn dropped_connections_are_retried_and_sent_once_when_the_server_recovers() {
    outage_then_recovery("dropped_connections", &["-q", "MAIL"], &[], "MAIL FROM: ");
}

#[test]
fn a_stalled_server_times_out_and_the_digests_go_out_later() {
    outage_then_recovery(
        "stalled_server",
        &["-w", "3"],
        &[("PAPERBOY__MAIL__TIMEOUT_SECS", "1")],
        "DATA: no answer within",
    );
}

#[test]
fn a_server_that_keeps_refusing_ends_in_failed_after_the_maximum_age() {
    let test = "keeps_refusing";
    let Some(bad) = sink_with(test, None, &["-r", "RCPT"]) else {
        return;
    };
    let (app, _server, db) = app_on(bad.port());
    let env = [("PAPERBOY__MAIL__RETRY_MAX_HOURS", "1")];
    send(&app, T, &env).assert_failure();
    assert_eq!(
        count(&db, "failed"),
        0,
        "within the maximum age: retried, not failed"
    );
    // Two hours later, still refused: each attempt now gives up. Runs repeat while the circuit
    // breaker spares some for later.
    for i in 0..8 {
        if count(&db, "retry") + count(&db, "planned") == 0 {
            break;
        }
        send(&app, &plus_secs(T, 7200 + 60 * i), &env);
    }
    assert_eq!(count(&db, "failed"), N as i64, "{:?}", db.status_counts());
    for (email, _, status, attempts, error) in db.delivery_rows() {
        assert_eq!(status, "failed");
        assert!(attempts >= 1, "{email} was tried");
        let error = error.unwrap_or_default();
        assert!(
            error.contains("gave up") && error.contains("RCPT"),
            "{error}"
        );
        // A 4xx is no bounce: the address stays active.
        assert_eq!(db.subscriber_state(&email), ("active".to_string(), 0));
    }
    assert!(received(&bad).is_empty());
    let listing = app
        .paperboy(["deliveries", "--status", "failed"])
        .at(T)
        .run();
    listing.assert_success();
    assert!(listing.stdout.contains("gave up"), "{listing}");
}

#[test]
fn a_hard_rejection_at_rcpt_suspends_the_address_and_it_gets_nothing_more() {
    let test = "hard_rcpt";
    let Some(bad) = sink_with(test, None, &["-f", "RCPT"]) else {
        return;
    };
    let port = bad.port();
    let (app, _server, db) = app_on(port);
    send(&app, T, &[]).assert_failure();
    assert_eq!(count(&db, "failed"), N as i64, "{:?}", db.status_counts());
    for i in 0..N {
        assert_eq!(
            db.subscriber_state(&address(i)),
            ("suspended".to_string(), 1),
            "mail.max_hard_bounces = 1 by default"
        );
    }
    let listing = app
        .paperboy(["deliveries", "--status", "failed"])
        .at(T)
        .run();
    assert!(listing.stdout.contains("RCPT TO: permanent"), "{listing}");

    // The next day the server takes everything, but suspended addresses get nothing.
    drop(bad);
    let Some(good) = SmtpSink::start_on_or_skip(test, port) else {
        return;
    };
    send(&app, &plus_secs(T, 86_400), &[]).assert_success();
    assert!(received(&good).is_empty(), "no mail to suspended addresses");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM deliveries"),
        N as i64,
        "nothing new planned"
    );
}

#[test]
fn below_max_hard_bounces_the_address_stays_active() {
    let test = "hard_rcpt_twice";
    let Some(bad) = sink_with(test, None, &["-f", "RCPT"]) else {
        return;
    };
    let (app, _server, db) = app_on(bad.port());
    let env = [("PAPERBOY__MAIL__MAX_HARD_BOUNCES", "2")];
    send(&app, T, &env).assert_failure();
    assert_eq!(db.subscriber_state(&address(0)), ("active".to_string(), 1));
    // A second digest to the same address bounces too: now it is suspended. (Forgetting the
    // first delivery lets the same papers be planned again at once, instead of waiting a day
    // for new papers.)
    db.exec("DELETE FROM deliveries");
    send(&app, &plus_secs(T, 600), &env).assert_failure();
    for i in 0..N {
        assert_eq!(
            db.subscriber_state(&address(i)),
            ("suspended".to_string(), 2)
        );
    }
}

#[test]
fn a_hard_rejection_of_the_message_fails_that_delivery_only() {
    let test = "hard_data";
    let Some(bad) = sink_with(test, None, &["-f", "."]) else {
        return;
    };
    let (app, _server, db) = app_on(bad.port());
    send(&app, T, &[]).assert_failure();
    assert_eq!(count(&db, "failed"), N as i64, "{:?}", db.status_counts());
    for (email, _, _, attempts, error) in db.delivery_rows() {
        assert_eq!(attempts, 1, "a 5xx is not retried");
        assert!(error.unwrap_or_default().contains("end of DATA"));
        assert_eq!(
            db.subscriber_state(&email),
            ("active".to_string(), 0),
            "no bounce"
        );
    }
}

#[test]
fn a_delivery_to_an_address_that_cannot_be_mailed_fails_at_once_and_is_not_retried() {
    let test = "unmailable_address";
    // Plan while nothing listens (every delivery stays due), then break two stored addresses
    // as an older version or a hand edit could have left them, then send.
    let port = free_port();
    let (app, _server, db) = app_on(port);
    send(&app, T, &[]).assert_failure();
    assert_eq!(count(&db, "sent"), 0);
    assert_eq!(count(&db, "planned") + count(&db, "retry"), N as i64);
    let quoted = "\"reader 0\"@example.net";
    let bidi = "reader\u{202E}1@example.net";
    db.exec(&format!(
        "UPDATE subscribers SET email = '{}' WHERE email = '{}'",
        quoted.replace('\'', "''"),
        address(0)
    ));
    db.exec(&format!(
        "UPDATE subscribers SET email = '{bidi}' WHERE email = '{}'",
        address(1)
    ));

    let Some(sink) = SmtpSink::start_on_or_skip(test, port) else {
        return;
    };
    let later = plus_secs(T, 600);
    send(&app, &later, &[]);
    let rows = db.delivery_rows();
    for (email, _, status, _, error) in &rows {
        let error = error.clone().unwrap_or_default();
        if email == quoted || email == bidi {
            assert_eq!(status, "failed", "{email:?}: not retried: {error}");
            assert!(error.contains("bad email"), "{email:?}: {error}");
        } else {
            assert_eq!(status, "sent", "{email}: {error}");
        }
    }
    let got = received(&sink);
    assert_eq!(got.len(), N - 2, "everyone else got their digest: {got:?}");
    // Later runs do not try them again: failed is final.
    send(&app, &plus_secs(T, 3 * 3600), &[]).assert_success();
    assert_eq!(count(&db, "retry"), 0, "{:?}", db.status_counts());
    assert_eq!(count(&db, "failed"), 2, "{:?}", db.status_counts());
    let listing = app
        .paperboy(["deliveries", "--status", "failed"])
        .at(&later)
        .run();
    listing.assert_success();
    assert!(listing.stdout.contains("quoted local part"), "{listing}");
}
