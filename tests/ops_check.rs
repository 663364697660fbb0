//! `paperboy check` against real parts: smtp-sink, a closed port, the fixture HTTP server and
//! an address where nothing listens. It must say what is wrong, name the config key to fix,
//! exit non-zero, change nothing (no migration, no paper stored) and send nothing.

mod common;
mod ops_support;

use common::*;

const NOW: &str = "2024-10-25T09:00:00Z";

#[test]
fn check_passes_on_a_healthy_setup_and_sends_nothing() {
    const T: &str = "check_passes_on_a_healthy_setup_and_sends_nothing";
    let Some(sink) = SmtpSink::start_or_skip(T) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture("2024-10-25", HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp(&sink).build();
    app.paperboy(["migrate"]).at(NOW).run().assert_success();

    let out = app.paperboy(["check"]).at(NOW).run();
    println!("{out}");
    out.assert_success();
    let port = sink.port();
    for line in [
        "ok    config: loaded".to_string(),
        format!(
            "ok    database ({}): reachable; schema up to date",
            app.backend()
        ),
        "ok    secret_key: set".to_string(),
        format!("ok    smtp 127.0.0.1:{port}: connected, EHLO answered by"),
        "no TLS asked for; no AUTH configured; QUIT; nothing sent".to_string(),
        format!(
            "ok    source hf ({}/): answered: 29 papers listed for 2024-10-25",
            server.base_url()
        ),
        "healthy: 5 ok, 0 warnings, 0 failed".to_string(),
    ] {
        assert!(out.stdout.contains(&line), "missing {line:?} in:\n{out}");
    }
    // The session ended at QUIT: no transaction, no message.
    assert!(sink.messages().is_empty());
    assert_eq!(sink.transactions_without_message(), 0);
    // check reaches the source but stores nothing.
    assert!(app.paper_ids(NOW).is_empty(), "check must not store papers");
}

#[test]
fn check_fails_on_an_unreachable_smtp_server_and_a_bad_source_url_naming_the_keys() {
    let server = FixtureServer::start();
    server.set_day_fixture("2024-10-25", HF_DAY_2024_10_25);
    let closed_smtp = free_port();
    let closed_http = free_port();
    let app = TestApp::builder()
        .hf(&server)
        .smtp_port(closed_smtp)
        .build();
    let bad_source = format!("http://127.0.0.1:{closed_http}");

    let out = app
        .paperboy(["check"])
        .at(NOW)
        .env("PAPERBOY__SOURCES__HF__BASE_URL", &bad_source)
        .run();
    println!("{out}");
    out.assert_failure();
    assert_eq!(out.status.code(), Some(1), "{out}");
    let smtp_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("FAIL  smtp 127.0.0.1:{closed_smtp}:")))
        .unwrap_or_else(|| panic!("no FAIL line for the SMTP server:\n{out}"));
    assert!(
        smtp_line.contains("cannot open a session")
            && smtp_line.contains("config key `mail.smtp_url`")
            && smtp_line.contains("nothing listens there"),
        "{smtp_line}"
    );
    let source_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL  source hf"))
        .unwrap_or_else(|| panic!("no FAIL line for the source:\n{out}"));
    assert!(
        source_line.contains(&format!("127.0.0.1:{closed_http}"))
            && source_line.contains("config key `sources.hf.base_url`"),
        "{source_line}"
    );
    assert!(
        out.stdout.contains("BROKEN: ") && out.stdout.contains(", 2 failed"),
        "{out}"
    );
    // The database is fine and says so; the failures do not hide the rest of the report.
    let database = format!("ok    database ({})", app.backend());
    assert!(out.stdout.contains(&database), "{out}");
}

#[test]
fn check_reports_pending_migrations_without_applying_them() {
    let app = TestApp::builder()
        .file_transport()
        .sqlite_only("it creates the SQLite file itself to show a database with no migration")
        .build();
    // No database yet: said so, and not created (it would belong to whoever ran check).
    let out = app.paperboy(["check"]).at(NOW).run();
    out.assert_success();
    assert!(
        out.stdout
            .contains("does not exist yet; `paperboy run` creates and migrates it"),
        "{out}"
    );
    assert!(!app.db_path.exists(), "check created the database");
    // An empty file is an empty SQLite database: every migration is pending.
    std::fs::write(&app.db_path, b"").expect("create an empty database");
    for _ in 0..2 {
        let out = app.paperboy(["check"]).at(NOW).run();
        out.assert_success();
        assert!(
            out.stdout.contains("ok    database (sqlite): reachable; ")
                && out.stdout.contains(
                    "migration(s) pending, applied at the next start or by `paperboy migrate`"
                ),
            "a fresh database has every migration pending, every time:\n{out}"
        );
        assert!(
            out.stdout
                .contains("ok    mail (file): digests are written to"),
            "{out}"
        );
        assert!(
            out.stdout.contains("warn  sources: none is enabled"),
            "{out}"
        );
    }
    app.paperboy(["migrate"]).at(NOW).run().assert_success();
    let out = app.paperboy(["check"]).at(NOW).run();
    assert!(out.stdout.contains("schema up to date"), "{out}");
}

#[test]
fn check_stops_at_a_bad_config_value_with_exit_2_and_the_key() {
    let app = TestApp::builder().file_transport().build();
    let out = app
        .paperboy(["check"])
        .env("PAPERBOY__MAIL__SMTP_URL", "ftp://mail.example.org")
        .run();
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains("config key `mail.smtp_url`"), "{out}");
}

#[test]
fn the_smtp_password_comes_from_a_credential_file_and_is_never_printed() {
    const T: &str = "the_smtp_password_comes_from_a_credential_file_and_is_never_printed";
    let Some(sink) = SmtpSink::start_or_skip(T) else {
        return;
    };
    let creds = tempfile::tempdir().expect("tempdir");
    std::fs::write(creds.path().join("smtp_password"), "s3cret-pass\n").expect("credential");
    let app = TestApp::builder()
        .smtp_url(format!("smtp://paperboy@127.0.0.1:{}", sink.port()))
        .build();
    let out = app
        .paperboy(["check"])
        .at(NOW)
        .env("PAPERBOY__MAIL__SMTP_PASSWORD_FILE", "smtp_password")
        .env("CREDENTIALS_DIRECTORY", &creds.path().display().to_string())
        .run();
    println!("{out}");
    // smtp-sink accepts any AUTH: that check authenticates at all proves the password from
    // the credential reached the URL (a user without a password means no AUTH).
    out.assert_success();
    assert!(
        out.stdout
            .contains("no TLS asked for; AUTH ok; QUIT; nothing sent"),
        "{out}"
    );
    assert!(!out.all_output().contains("s3cret-pass"), "{out}");

    let without = app.paperboy(["check"]).at(NOW).run();
    assert!(without.stdout.contains("no AUTH configured"), "{without}");

    // Without the credential the configuration is refused, naming the key.
    let out = app
        .paperboy(["check"])
        .env("PAPERBOY__MAIL__SMTP_PASSWORD_FILE", "smtp_password")
        .run();
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains("mail.smtp_password_file"), "{out}");
}
