//! `paperboy check` against real parts: smtp-sink, a closed port, the fixture HTTP server and
//! an address where nothing listens. It must say what is wrong, name the config key to fix,
//! exit non-zero, change nothing (no migration, no paper stored) and send nothing.

use crate::common::*;
use std::time::Duration;

const NOW: &str = "2024-10-25T09:00:00Z";

/// smtp-sink logging its conversation, so a test can see the sessions check opens.
fn talking_sink(test: &str) -> Option<SmtpSink> {
    SmtpSink::start_with_or_skip(
        test,
        SmtpSinkOptions {
            extra_args: vec!["-v".to_string()],
            ..SmtpSinkOptions::default()
        },
    )
}

/// The verbs of each session's commands (`EHLO`, `QUIT`, …), from the `from`-th session on,
/// once `from + count` have ended and none is open.
#[track_caller]
fn new_sessions(sink: &SmtpSink, from: usize, count: usize) -> Vec<Vec<String>> {
    let sessions = sink.wait_for_sessions(from + count, Duration::from_secs(10));
    sessions[from..]
        .iter()
        .map(|commands| {
            commands
                .iter()
                .map(|c| c.split(' ').next().unwrap_or("").to_string())
                .collect()
        })
        .collect()
}

#[test]
fn check_passes_on_a_healthy_setup_and_sends_nothing() {
    const T: &str = "check_passes_on_a_healthy_setup_and_sends_nothing";
    let Some(sink) = talking_sink(T) else {
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
    // check did speak to the server, in one session that greeted and quit: no transaction, no
    // message.
    assert_eq!(new_sessions(&sink, 0, 1), [["EHLO", "QUIT"]]);
    assert!(sink.messages().is_empty());
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

/// `check` opens its SMTP session through the pool that sends, so the two agree: where the
/// sending code cannot go on (`?tls=required` against a server without STARTTLS), check fails
/// naming `mail.smtp_url` with the very reason the delivery then records; where it can
/// (`?tls=opportunistic`), check passes and the digest goes out.
#[test]
fn check_and_sending_open_smtp_sessions_the_same_way() {
    const T: &str = "check_and_sending_open_smtp_sessions_the_same_way";
    const LATER: &str = "2024-10-25T15:00:00Z";
    let Some(sink) = talking_sink(T) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture("2024-10-25", HF_DAY_2024_10_25);
    let app = TestApp::builder().hf(&server).smtp(&sink).build();
    const FETCHED: &str = "2024-10-25T06:00:00Z";
    app.paperboy(["fetch", "--date", "2024-10-25"])
        .at(FETCHED)
        .run()
        .assert_success();
    app.add_confirmed_subscriber(FETCHED, "alice@example.org", r#""contrastive loss" memory"#);
    let port = sink.port();
    let url = |tls: &str| format!("smtp://127.0.0.1:{port}?tls={tls}");
    let smtp_line = |out: &CmdOutput| -> String {
        out.stdout
            .lines()
            .find(|l| l.contains(&format!("smtp 127.0.0.1:{port}:")))
            .unwrap_or_else(|| panic!("no line for the SMTP server:\n{out}"))
            .to_string()
    };
    // smtp-sink offers no STARTTLS.
    let refused = "127.0.0.1 does not offer STARTTLS, and `?tls=required` in `mail.smtp_url` \
                   demands it";

    let out = app
        .paperboy(["check"])
        .at(NOW)
        .env("PAPERBOY__MAIL__SMTP_URL", &url("required"))
        .run();
    println!("{out}");
    assert_eq!(out.status.code(), Some(1), "{out}");
    let line = smtp_line(&out);
    assert!(
        line.starts_with("FAIL  ")
            && line.contains("cannot open a session (connected, EHLO answered by")
            && line.contains(&format!("): {refused}")),
        "{line}"
    );
    // It got as far as the server's EHLO answer, and began no transaction.
    let first = new_sessions(&sink, 0, 1);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        first[0].first().map(String::as_str),
        Some("EHLO"),
        "{first:?}"
    );
    assert!(
        !first[0]
            .iter()
            .any(|v| ["MAIL", "RCPT", "DATA"].contains(&v.as_str())),
        "{first:?}"
    );
    assert!(sink.messages().is_empty());

    let sent = app
        .paperboy(["send", "--now"])
        .at(NOW)
        .env("PAPERBOY__MAIL__SMTP_URL", &url("required"))
        .run();
    println!("{sent}");
    assert!(sink.messages().is_empty(), "{sent}");
    let before = sink.wait_for_sessions(2, Duration::from_secs(10)).len();
    let retrying = app
        .paperboy(["deliveries", "--status", "retry"])
        .at(NOW)
        .run();
    retrying.assert_success();
    assert!(
        retrying.stdout.contains("alice@example.org") && retrying.stdout.contains(refused),
        "the delivery records the reason check gave:\n{retrying}"
    );

    let out = app
        .paperboy(["check"])
        .at(LATER)
        .env("PAPERBOY__MAIL__SMTP_URL", &url("opportunistic"))
        .run();
    println!("{out}");
    out.assert_success();
    let line = smtp_line(&out);
    assert!(
        line.starts_with("ok    ")
            && line.contains(
                "STARTTLS not offered (opportunistic: plain); no AUTH configured; QUIT; nothing \
                 sent"
            ),
        "{line}"
    );
    assert_eq!(new_sessions(&sink, before, 1), [["EHLO", "QUIT"]]);
    assert!(sink.messages().is_empty());
    app.paperboy(["send", "--now"])
        .at(LATER)
        .env("PAPERBOY__MAIL__SMTP_URL", &url("opportunistic"))
        .run()
        .assert_success();
    let received = sink.messages();
    assert_eq!(received.len(), 1, "the retried digest went out");
    assert_eq!(received[0].envelope_to, ["alice@example.org"]);
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
    let creds_dir = creds.path().display().to_string();
    // smtp-sink speaks no TLS: a password goes to it in clear text only when the operator
    // says so, and only because it is on loopback.
    let refused = app
        .paperboy(["check"])
        .at(NOW)
        .env("PAPERBOY__MAIL__SMTP_PASSWORD_FILE", "smtp_password")
        .env("CREDENTIALS_DIRECTORY", &creds_dir)
        .run();
    assert_eq!(refused.status.code(), Some(2), "{refused}");
    assert!(
        refused.stderr.contains("config key `mail.smtp_url`")
            && refused.stderr.contains("clear text")
            && refused.stderr.contains("`mail.smtp_plaintext_auth = true`"),
        "{refused}"
    );
    assert!(!refused.all_output().contains("s3cret-pass"), "{refused}");
    let out = app
        .paperboy(["check"])
        .at(NOW)
        .env("PAPERBOY__MAIL__SMTP_PASSWORD_FILE", "smtp_password")
        .env("PAPERBOY__MAIL__SMTP_PLAINTEXT_AUTH", "true")
        .env("CREDENTIALS_DIRECTORY", &creds_dir)
        .run();
    println!("{out}");
    // smtp-sink accepts any AUTH: that check authenticates at all proves the password from
    // the credential reached the URL (a user without a password means no AUTH).
    out.assert_success();
    assert!(
        out.stdout
            .contains("no TLS asked for; AUTH ok as paperboy; QUIT; nothing sent"),
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

/// The lines of stderr that carry the error (not the log lines before it).
fn error_lines(out: &CmdOutput) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect()
}

/// A SQLite file in a directory that does not exist: one line naming the file and its
/// directory and what to do, SQLite's own text at most once, and exit status 2 (a setting to
/// fix).
#[test]
fn a_database_in_a_missing_directory_is_named_once_with_exit_2() {
    let app = TestApp::builder()
        .file_transport()
        .sqlite_only("the path of a SQLite file is what is tested")
        .build();
    let missing = app.dir().join("no-such-dir");
    let file = missing.join("paperboy.db");
    let out = app
        .paperboy(["send", "--now"])
        .at(NOW)
        .env(
            "PAPERBOY__DATABASE__URL",
            &format!("sqlite://{}", file.display()),
        )
        .run();
    println!("{out}");
    assert_eq!(out.status.code(), Some(2), "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    let line = errors[0];
    assert!(
        line.contains(&file.display().to_string())
            && line.contains(&format!(
                "its directory {} does not exist",
                missing.display()
            ))
            && line.contains("writable by the user paperboy runs as")
            && line.contains("`database.url`"),
        "{line}"
    );
    assert!(
        out.stderr.matches("unable to open database file").count() <= 1,
        "{out}"
    );
    assert!(!missing.exists(), "nothing is created");
}

/// A PostgreSQL server that does not answer: the URL is shown without its password, the
/// reason is the refused connection (not "pool timed out" after the acquire timeout), and the
/// exit status is 1 (worth retrying).
#[test]
fn an_unanswering_postgres_is_named_without_its_password_with_exit_1() {
    let app = TestApp::builder().file_transport().build();
    let port = free_port();
    let password = "pw-7f3a9c-never-print";
    let out = app
        .paperboy(["send", "--now"])
        .at(NOW)
        .env(
            "PAPERBOY__DATABASE__URL",
            &format!("postgres://paperboy:{password}@127.0.0.1:{port}/paperboy"),
        )
        .run();
    println!("{out}");
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(!out.stderr.contains(password), "{out}");
    assert!(!out.stdout.contains(password), "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains(&format!(
            "postgres://paperboy:***@127.0.0.1:{port}/paperboy"
        )) && errors[0].contains("does not answer")
            && errors[0].contains("Connection refused")
            && errors[0].contains("PostgreSQL is running"),
        "{out}"
    );
    assert!(
        out.elapsed < std::time::Duration::from_secs(20),
        "a refused connection is reported at once, not after the pool's timeout: {out}"
    );
}

/// A database the PostgreSQL server does not have is a setting to fix: exit status 2.
#[test]
fn an_unknown_postgres_database_is_a_setting_to_fix_with_exit_2() {
    const T: &str = "an_unknown_postgres_database_is_a_setting_to_fix_with_exit_2";
    if std::env::var(TEST_DATABASE_ENV).is_ok() && !test_on_postgres() {
        eprintln!("{T}: PostgreSQL only; it runs in the PostgreSQL pass");
        return;
    }
    // A database made and dropped again: the server answers, the database is gone.
    let Some(gone) = PgDatabase::create_or_skip(T) else {
        return;
    };
    let url = gone.url.clone();
    drop(gone);
    let app = TestApp::builder()
        .file_transport()
        .sqlite_only("the database URL under test is set per run")
        .build();
    let out = app
        .paperboy(["send", "--now"])
        .at(NOW)
        .env("PAPERBOY__DATABASE__URL", &url)
        .run();
    println!("{out}");
    assert_eq!(out.status.code(), Some(2), "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains(&url)
            && errors[0].contains("does not exist")
            && errors[0].contains("database name in `database.url`"),
        "{out}"
    );
}

/// `web = 3` in the file: the message names `web` and what it must be, with or without
/// environment overrides (one of which used to get the blame).
#[test]
fn a_section_given_a_number_is_named_as_written_with_or_without_env_overrides() {
    let app = TestApp::builder().file_transport().build();
    let config = app.dir().join("wrong.toml");
    std::fs::write(&config, "web = 3\n").expect("write config");
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_paperboy"));
    let expected = format!(
        "error: config key `web` in {} must be a table (`[web]` with keys such as `base_url`, \
         `bind`, `confirmation_emails_per_hour`), not the number 3",
        config.display()
    );
    for env in [
        &[][..],
        &[("PAPERBOY__MAIL__TRANSPORT", "file")],
        &[("PAPERBOY__WEB__BIND", "127.0.0.1:9")],
    ] {
        let mut run = app.program(
            binary,
            ["--config", &config.display().to_string(), "send", "--now"],
        );
        for (k, v) in env {
            run = run.env(k, v);
        }
        let out = run.run();
        println!("{out}");
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert_eq!(out.stderr.trim_end(), expected, "with {env:?}");
    }
}
