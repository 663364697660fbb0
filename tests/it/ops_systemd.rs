//! The unit file `deploy/paperboy.service` as systemd reads it: `systemd-analyze verify`
//! must accept it without a single warning, and it must keep the promises the operator guide
//! makes (notify readiness, watchdog, restart on failure, a dynamic user, hardening, secrets as
//! credentials). The installed copy is verified again by scripts/package-test.sh.

use crate::common::*;
use std::fs;
use std::process::Command;

fn unit_text() -> String {
    fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/paperboy.service"
    ))
    .expect("read deploy/paperboy.service")
}

/// `Key=value` lines of the unit, in order (a key may repeat).
fn directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_without_warnings() {
    const T: &str = "systemd_analyze_verify_accepts_the_unit_without_warnings";
    let Some(analyze) = find_executable("systemd-analyze", &["/usr/bin", "/bin"]) else {
        missing_tool(T, "systemd-analyze", "`apt-get install systemd`");
        return;
    };
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("paperboy.service");
    let text = unit_text().replace("/usr/bin/paperboy", env!("CARGO_BIN_EXE_paperboy"));
    fs::write(&unit, text).expect("write unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stdout}\n{stderr}"
    );
    // Unknown keys and bad values are only warnings (exit 0): any line about our unit fails.
    let about_us: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("paperboy"))
        .collect();
    assert!(
        about_us.is_empty(),
        "systemd-analyze verify complained about the unit:\n{}",
        about_us.join("\n")
    );
}

#[test]
fn the_unit_keeps_the_promises_of_the_operator_guide() {
    let d = directives(&unit_text());
    let has = |k: &str, v: &str| d.iter().any(|(dk, dv)| dk == k && dv == v);
    for (k, v) in [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "paperboy"),
        ("ConfigurationDirectory", "paperboy"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("SystemCallFilter", "@system-service"),
        ("LoadCredential", "secret_key:/etc/paperboy/secret_key"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert!(has(k, v), "deploy/paperboy.service lacks {k}={v}");
    }
    let secs = |k: &str| -> u64 {
        let v = &d
            .iter()
            .find(|(dk, _)| dk == k)
            .unwrap_or_else(|| panic!("no {k}"))
            .1;
        v.trim_end_matches('s')
            .parse()
            .unwrap_or_else(|_| panic!("{k}={v}"))
    };
    assert!(secs("WatchdogSec") > 0);
    // The daemon's default shutdown_timeout_secs must fit inside TimeoutStopSec, or systemd
    // SIGKILLs it while it is still finishing SMTP transactions.
    let default_toml =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .expect("read config/default.toml");
    let shutdown: u64 = default_toml
        .lines()
        .find_map(|l| l.strip_prefix("shutdown_timeout_secs = "))
        .and_then(|v| v.trim().parse().ok())
        .expect("daemon.shutdown_timeout_secs in config/default.toml");
    assert!(
        shutdown + 10 <= secs("TimeoutStopSec"),
        "TimeoutStopSec must leave room for daemon.shutdown_timeout_secs = {shutdown}"
    );
    // The config the package installs finds the credential by its name.
    let etc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/paperboy.toml"))
        .expect("read deploy/paperboy.toml");
    assert!(etc.contains("secret_key_file = \"secret_key\""));
}

#[test]
fn the_packaged_config_loads_with_the_credential_from_credentials_directory() {
    // As systemd would run it: CREDENTIALS_DIRECTORY holds `secret_key`, the config names it.
    let creds = tempfile::tempdir().expect("tempdir");
    fs::write(
        creds.path().join("secret_key"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .expect("write credential");
    let state = tempfile::tempdir().expect("tempdir");
    let (database_url, _pg) = test_database_url(&state.path().join("paperboy.db"));
    let out = Command::new(env!("CARGO_BIN_EXE_paperboy"))
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/paperboy.toml"))
        .arg("migrate")
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .env("PAPERBOY__DATABASE__URL", &database_url)
        .output()
        .expect("run paperboy");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the credential it stops, naming the key.
    let out = Command::new(env!("CARGO_BIN_EXE_paperboy"))
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/paperboy.toml"))
        .arg("migrate")
        .env_remove("CREDENTIALS_DIRECTORY")
        .current_dir(state.path())
        .output()
        .expect("run paperboy");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret_key_file"));
}
