//! TLS and AUTH against a real submission server we did not write (aiosmtpd, `TlsRelay`), with
//! a certificate from a private CA made by `openssl` (`TestCa`), as an operator meets them:
//! - STARTTLS required and AUTH: refused while the CA is not trusted, with a line that names
//!   the issuer and `mail.tls_ca_file`; delivered once, encrypted, as the configured user, once
//!   the CA is in `mail.tls_ca_file` or in the system's trust store (`SSL_CERT_FILE`, where
//!   `rustls-native-certs` looks as OpenSSL does);
//! - implicit TLS (smtps://) and AUTH: the same, encrypted from the first byte;
//! - a wrong password: every digest stays due, sending pauses at once (the circuit breaker),
//!   `check` and the log say to check `mail.smtp_url` / `mail.smtp_password_file`, and the
//!   password is printed nowhere;
//! - a certificate for another name: refused, naming the names it holds.

use crate::common::*;
use crate::delivery_support::*;

const T: &str = "2024-10-25T09:00:00Z";
const USER: &str = "digest@paperboy.example.org";
const PASSWORD: &str = "Tr0ub4dor-and-3-horses";

/// `mail.smtp_url` for the relay at `port` with `password`.
fn relay_url(tls: RelayTls, port: u16, password: &str) -> String {
    let user = USER.replace('@', "%40");
    match tls {
        RelayTls::StartTls => format!("smtp://{user}:{password}@localhost:{port}?tls=required"),
        RelayTls::Implicit => format!("smtps://{user}:{password}@localhost:{port}"),
    }
}

/// `paperboy check` at `T` with `env`: its whole output and its line for the relay.
fn check(app: &TestApp, port: u16, env: &[(&str, &str)]) -> (CmdOutput, String) {
    let mut invocation = app.paperboy(["check"]).at(T);
    for (key, value) in env {
        invocation = invocation.env(key, value);
    }
    let out = invocation.run();
    println!("{out}");
    let line = smtp_line(&out, port);
    (out, line)
}

/// A failed check that names the test CA as the issuer and `mail.tls_ca_file` as the fix.
#[track_caller]
fn assert_untrusted(out: &CmdOutput, line: &str) {
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        line.starts_with("FAIL  ")
            && line.contains(&format!("CN={}", TestCa::NAME))
            && line.contains("which this machine does not trust")
            && line.contains("`mail.tls_ca_file`")
            && !line.contains("Connection error"),
        "{line}"
    );
}

/// `paperboy check`'s line for the SMTP server.
#[track_caller]
fn smtp_line(out: &CmdOutput, port: u16) -> String {
    out.stdout
        .lines()
        .find(|l| l.contains(&format!("smtp localhost:{port}:")))
        .unwrap_or_else(|| panic!("no line for the SMTP server:\n{out}"))
        .to_string()
}

fn count(db: &Db, status: &str) -> i64 {
    db.status_counts().get(status).copied().unwrap_or(0)
}

/// A private CA and a relay speaking `tls` with a certificate it issued for `names`
/// (`DNS:localhost,IP:127.0.0.1` is the name paperboy connects to); `None` when a tool is
/// missing (skipped with a reason, or a failure under `PAPERBOY_REQUIRE_ALL=1`).
fn relay_or_skip(
    test: &str,
    tls: RelayTls,
    label: &str,
    names: &str,
) -> Option<(TestCa, TlsRelay)> {
    let ca = TestCa::create_or_skip(test)?;
    let certificate = ca.issue(label, names);
    let relay = TlsRelay::start_or_skip(test, tls, &certificate, Some((USER, PASSWORD)))?;
    Some((ca, relay))
}

const LOCALHOST: &str = "DNS:localhost,IP:127.0.0.1";

#[test]
fn starttls_and_auth_deliver_once_when_the_private_ca_is_trusted() {
    const TEST: &str = "starttls_and_auth_deliver_once_when_the_private_ca_is_trusted";
    let Some((ca, relay)) = relay_or_skip(TEST, RelayTls::StartTls, "localhost", LOCALHOST) else {
        return;
    };
    let port = relay.port();
    let (app, _server, db) = app_mailing(relay_url(RelayTls::StartTls, port, PASSWORD), 2);
    let ca_file = ca.certificate.display().to_string();

    // Not trusted yet: check says whose certificate it is and what to set, in one line.
    let (out, line) = check(&app, port, &[]);
    assert_untrusted(&out, &line);
    assert!(!out.all_output().contains(PASSWORD), "{out}");

    // Sending fails the same way and keeps both digests due.
    let sent = app.paperboy(["send"]).at(T).run();
    println!("{sent}");
    assert!(relay.messages().is_empty(), "{sent}");
    assert_eq!(count(&db, "sent") + count(&db, "failed"), 0, "{sent}");
    assert!(
        sent.all_output().contains("does not trust"),
        "the log says why:\n{sent}"
    );
    assert!(!sent.all_output().contains(PASSWORD), "{sent}");

    // The CA in `mail.tls_ca_file`: check passes through STARTTLS and AUTH ...
    let (out, line) = check(&app, port, &[("PAPERBOY__MAIL__TLS_CA_FILE", &ca_file)]);
    out.assert_success();
    assert!(
        line.starts_with("ok    ")
            && line.contains("STARTTLS ok (")
            && line.contains("+ 1 from")
            && line.contains(&format!("AUTH ok as {USER}")),
        "{line}"
    );
    assert!(!out.all_output().contains(PASSWORD), "{out}");

    // ... and each digest arrives once, encrypted, from the configured user.
    let later = plus_secs(T, 3600);
    for at in [later.clone(), plus_secs(&later, 3600)] {
        app.paperboy(["send"])
            .at(&at)
            .env("PAPERBOY__MAIL__TLS_CA_FILE", &ca_file)
            .run()
            .assert_success();
    }
    let messages = relay.messages();
    let mut recipients: Vec<String> = messages.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    recipients.sort();
    assert_eq!(recipients, [address(0), address(1)], "{messages:?}");
    for m in &messages {
        assert!(m.encrypted, "sent in clear text: {m:?}");
        assert_eq!(m.user.as_deref(), Some(USER));
        assert!(m.mail_from.ends_with("paperboy.example.org"), "{m:?}");
        assert!(m.data.contains("List-Unsubscribe"), "a whole digest: {m:?}");
    }
    assert_eq!(count(&db, "sent"), 2);

    // The CA installed in the system's trust store instead, as `update-ca-certificates` does
    // it: appended to the bundle. The store is read where SSL_CERT_FILE and SSL_CERT_DIR say
    // (as for OpenSSL), here a copy of this machine's bundle with the test CA added.
    let store = tempfile::tempdir().expect("tempdir");
    let mut bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    bundle.extend(std::fs::read(&ca.certificate).expect("the CA"));
    let bundle_file = store.path().join("ca-certificates.crt");
    std::fs::write(&bundle_file, bundle).expect("write the bundle");
    let no_dir = store.path().join("certs");
    std::fs::create_dir(&no_dir).expect("mkdir");
    let (out, line) = check(
        &app,
        port,
        &[
            ("SSL_CERT_FILE", &bundle_file.display().to_string()),
            ("SSL_CERT_DIR", &no_dir.display().to_string()),
        ],
    );
    out.assert_success();
    assert!(
        line.contains("roots from the system's trust store)")
            && !line.contains("mail.tls_ca_file")
            && line.contains("AUTH ok"),
        "{line}"
    );
}

#[test]
fn implicit_tls_and_auth_deliver_encrypted_from_the_first_byte() {
    const TEST: &str = "implicit_tls_and_auth_deliver_encrypted_from_the_first_byte";
    let Some((ca, relay)) = relay_or_skip(TEST, RelayTls::Implicit, "localhost", LOCALHOST) else {
        return;
    };
    let port = relay.port();
    let (app, _server, db) = app_mailing(relay_url(RelayTls::Implicit, port, PASSWORD), 1);
    let ca_file = ca.certificate.display().to_string();

    let (out, line) = check(&app, port, &[]);
    assert_untrusted(&out, &line);

    let (out, line) = check(&app, port, &[("PAPERBOY__MAIL__TLS_CA_FILE", &ca_file)]);
    out.assert_success();
    assert!(
        line.contains("connected with TLS") && line.contains(&format!("AUTH ok as {USER}")),
        "{line}"
    );
    app.paperboy(["send"])
        .at(T)
        .env("PAPERBOY__MAIL__TLS_CA_FILE", &ca_file)
        .run()
        .assert_success();
    let messages = relay.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].encrypted && messages[0].user.as_deref() == Some(USER));
    assert_eq!(messages[0].rcpt_tos, [address(0)]);
    assert_eq!(count(&db, "sent"), 1);
}

#[test]
fn a_wrong_password_keeps_every_digest_due_pauses_sending_and_is_never_printed() {
    const TEST: &str =
        "a_wrong_password_keeps_every_digest_due_pauses_sending_and_is_never_printed";
    const WRONG: &str = "not-the-Password-42";
    const N: usize = 12;
    let Some((ca, relay)) = relay_or_skip(TEST, RelayTls::StartTls, "localhost", LOCALHOST) else {
        return;
    };
    let port = relay.port();
    let (app, _server, db) = app_mailing(relay_url(RelayTls::StartTls, port, WRONG), N);
    let ca_file = ca.certificate.display().to_string();
    let advice = "check the user and password in `mail.smtp_url` / `mail.smtp_password_file`";

    let sent = app
        .paperboy(["send"])
        .at(T)
        .env("PAPERBOY__MAIL__TLS_CA_FILE", &ca_file)
        .env("PAPERBOY__MAIL__MAX_CONNECTIONS", "2")
        .run();
    println!("{sent}");
    assert!(relay.messages().is_empty());
    // Every digest is still due: none sent, none given up.
    assert_eq!(count(&db, "sent") + count(&db, "failed"), 0, "{sent}");
    assert_eq!(
        db.status_counts().values().sum::<i64>(),
        N as i64,
        "{:?}",
        db.status_counts()
    );
    let log = sent.all_output();
    assert!(
        log.contains("authentication failed (535") && log.contains(advice),
        "{sent}"
    );
    // Sending paused at the first refusal instead of trying every digest.
    assert!(log.contains("pausing all sending"), "{sent}");
    let tried = relay.refused_logins();
    assert!(
        (1..N / 2).contains(&tried),
        "{tried} logins refused for {N} digests: sending did not pause"
    );
    assert!(!log.contains(WRONG) && !log.contains(PASSWORD), "{sent}");

    let (out, line) = check(&app, port, &[("PAPERBOY__MAIL__TLS_CA_FILE", &ca_file)]);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        line.starts_with("FAIL  ")
            && line.contains("authentication failed (535")
            && line.contains(advice),
        "{line}"
    );
    assert!(!out.all_output().contains(WRONG), "{out}");
}

#[test]
fn a_certificate_for_another_name_is_refused_naming_the_names_it_holds() {
    const TEST: &str = "a_certificate_for_another_name_is_refused_naming_the_names_it_holds";
    let Some((ca, relay)) =
        relay_or_skip(TEST, RelayTls::StartTls, "relay", "DNS:relay.other.example")
    else {
        return;
    };
    let port = relay.port();
    let app = TestApp::builder()
        .smtp_url(relay_url(RelayTls::StartTls, port, PASSWORD))
        .build();
    let ca_file = ca.certificate.display().to_string();
    let (out, line) = check(&app, port, &[("PAPERBOY__MAIL__TLS_CA_FILE", &ca_file)]);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        line.contains("the certificate of localhost is for relay.other.example, not for localhost")
            && line.contains("`mail.smtp_url`"),
        "{line}"
    );
    assert!(relay.messages().is_empty());
}

#[test]
fn an_expired_certificate_and_a_server_without_auth_are_named_as_such() {
    const TEST: &str = "an_expired_certificate_and_a_server_without_auth_are_named_as_such";
    let Some(ca) = TestCa::create_or_skip(TEST) else {
        return;
    };
    let ca_file = ca.certificate.display().to_string();
    let trusted = [("PAPERBOY__MAIL__TLS_CA_FILE", ca_file.as_str())];

    let expired = ca.issue_expired("expired", LOCALHOST);
    let Some(relay) =
        TlsRelay::start_or_skip(TEST, RelayTls::Implicit, &expired, Some((USER, PASSWORD)))
    else {
        return;
    };
    let app = TestApp::builder()
        .smtp_url(relay_url(RelayTls::Implicit, relay.port(), PASSWORD))
        .build();
    let (out, line) = check(&app, relay.port(), &trusted);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        line.contains("the certificate of localhost expired on 2020-02-01 00:00 UTC")
            && line.contains("renew"),
        "{line}"
    );

    let certificate = ca.issue("localhost", LOCALHOST);
    let Some(no_auth) = TlsRelay::start_or_skip(TEST, RelayTls::StartTls, &certificate, None)
    else {
        return;
    };
    let app = TestApp::builder()
        .smtp_url(relay_url(RelayTls::StartTls, no_auth.port(), PASSWORD))
        .build();
    let (out, line) = check(&app, no_auth.port(), &trusted);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        line.contains("STARTTLS ok")
            && line.contains("localhost offers no AUTH PLAIN or LOGIN")
            && line.contains("`mail.smtp_url`"),
        "{line}"
    );
    assert!(!out.all_output().contains(PASSWORD), "{out}");
}
