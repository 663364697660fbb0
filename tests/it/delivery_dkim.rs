//! DKIM: digests signed with an RSA or an Ed25519 key (made here by `openssl`) verify with an
//! independent verifier, Python's dkimpy, against the public key, both as written by the file
//! transport and as received by a real SMTP server (smtp-sink). The signature covers the list
//! headers (lettre's default would sign only four headers), and changing a signed header
//! breaks it: the verifier is not vacuous.

use crate::common::*;
use crate::delivery_support::*;
use std::path::Path;
use std::process::Command;

const DKIMPY_INSTALL: &str = "`pip install 'dkimpy[ed25519]'` (Python 3)";

/// Verifies `message` (CRLF) with dkimpy, answering the DNS query for
/// `<selector>._domainkey.<domain>` with `txt`. Prints and returns dkimpy's verdict.
const VERIFY_PY: &str = r#"
import sys, dkim
msg = open(sys.argv[1], 'rb').read()
txt = open(sys.argv[2], 'rb').read().strip()
def dns(name, timeout=5):
    if name.rstrip(b'.') == sys.argv[3].encode():
        return txt
    return None
ok = dkim.verify(msg, dnsfunc=dns)
tags = dkim.util.parse_tag_value(msg.split(b'DKIM-Signature:', 1)[1].split(b'\r\n\r\n')[0].replace(b'\r\n', b'') if b'DKIM-Signature:' in msg else b'')
print('verified' if ok else 'FAILED')
print('h=' + tags.get(b'h', b'').decode())
print('a=' + tags.get(b'a', b'').decode())
"#;

fn have_tools(test: &str) -> bool {
    let python = Command::new("python3")
        .args(["-c", "import dkim, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if !python {
        missing_tool(test, "Python 3 with dkimpy and PyNaCl", DKIMPY_INSTALL);
        return false;
    }
    if find_executable("openssl", &[]).is_none() {
        missing_tool(test, "openssl", "`apt-get install openssl`");
        return false;
    }
    true
}

/// Makes a key in `dir`; returns (private key file, DNS TXT record).
fn make_key(dir: &Path, algorithm: &str) -> (String, String) {
    use base64::Engine;
    let key = dir.join(format!("dkim-{algorithm}.pem"));
    let key_s = key.display().to_string();
    match algorithm {
        "ed25519" => {
            openssl(&["genpkey", "-algorithm", "ed25519", "-out", &key_s]);
            let der = openssl(&["pkey", "-in", &key_s, "-pubout", "-outform", "DER"]);
            // The record holds the raw 32-byte key (RFC 8463), the end of the SPKI DER.
            let raw = &der[der.len() - 32..];
            let p = base64::engine::general_purpose::STANDARD.encode(raw);
            (key_s, format!("v=DKIM1; k=ed25519; p={p}"))
        }
        _ => {
            // PKCS#8, what `openssl genrsa` writes today; paperboy must take it.
            openssl(&["genrsa", "-out", &key_s, "2048"]);
            let der = openssl(&["pkey", "-in", &key_s, "-pubout", "-outform", "DER"]);
            let p = base64::engine::general_purpose::STANDARD.encode(&der);
            (key_s, format!("v=DKIM1; k=rsa; p={p}"))
        }
    }
}

/// dkimpy's verdict on `raw` (LF or CRLF line ends).
fn verify(dir: &Path, raw: &[u8], txt: &str) -> String {
    let text = String::from_utf8_lossy(raw)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    let msg = dir.join("verify.eml");
    std::fs::write(&msg, text).unwrap();
    let txt_file = dir.join("dns.txt");
    std::fs::write(&txt_file, txt).unwrap();
    let out = Command::new("python3")
        .args(["-c", VERIFY_PY])
        .arg(&msg)
        .arg(&txt_file)
        .arg("mail2026._domainkey.paperboy.example.org")
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "dkimpy crashed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const MUST_SIGN: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
];

fn check_signed(dir: &Path, raw: &[u8], txt: &str, algorithm: &str) {
    let verdict = verify(dir, raw, txt);
    assert!(verdict.starts_with("verified"), "dkimpy: {verdict}");
    let h = verdict
        .lines()
        .find_map(|l| l.strip_prefix("h="))
        .unwrap_or("")
        .to_ascii_lowercase();
    let signed: Vec<&str> = h.split(':').map(str::trim).collect();
    for header in MUST_SIGN {
        assert!(signed.contains(header), "{header} is signed: h={h}");
    }
    let a = verdict
        .lines()
        .find_map(|l| l.strip_prefix("a="))
        .unwrap_or("");
    assert_eq!(a, format!("{algorithm}-sha256"));

    // Change a signed header: the signature must no longer verify.
    let text = String::from_utf8_lossy(raw).into_owned();
    let tampered = text.replacen(
        "List-Unsubscribe: <https://",
        "List-Unsubscribe: <https://evil.example/",
        1,
    );
    assert_ne!(tampered, text, "the message has a List-Unsubscribe header");
    let verdict = verify(dir, tampered.as_bytes(), txt);
    assert!(
        verdict.starts_with("FAILED"),
        "tampering detected: {verdict}"
    );
}

fn signed_digest_verifies(test: &str, algorithm: &str) {
    if !have_tools(test) {
        return;
    }
    let Some(sink) = SmtpSink::start_or_skip(test) else {
        return;
    };
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let smtp_app = TestApp::builder().hf(&server).smtp(&sink).build();
    let file_app = TestApp::builder().hf(&server).build();
    let (key, txt) = make_key(smtp_app.dir(), algorithm);
    let env = [
        ("PAPERBOY__MAIL__DKIM_KEY_FILE", key.as_str()),
        ("PAPERBOY__MAIL__DKIM_SELECTOR", "mail2026"),
    ];
    for app in [&smtp_app, &file_app] {
        migrate(app);
        fetch_day1(app);
        Db::open(app).seed_subscribers(0, 2, "07:00", "UTC", "daily");
        let mut send = app.paperboy(["send"]).at("2024-10-25T09:00:00Z");
        for (k, v) in env {
            send = send.env(k, v);
        }
        send.run().assert_success();
    }
    let over_smtp = complete_messages(&sink);
    assert_eq!(over_smtp.len(), 2);
    let in_files = file_app.outbox_messages();
    assert_eq!(in_files.len(), 2);
    for m in over_smtp.iter().chain(&in_files) {
        check_signed(smtp_app.dir(), &m.raw, &txt, algorithm);
    }
}

#[test]
fn ed25519_signed_digests_verify_with_dkimpy() {
    signed_digest_verifies("ed25519_dkim", "ed25519");
}

#[test]
fn rsa_signed_digests_verify_with_dkimpy() {
    signed_digest_verifies("rsa_dkim", "rsa");
}

#[test]
fn a_bad_dkim_key_stops_paperboy_at_start_naming_the_key() {
    let app = TestApp::builder().build();
    let bad = app.dir().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let out = app
        .paperboy(["send"])
        .at("2024-10-25T09:00:00Z")
        .env("PAPERBOY__MAIL__DKIM_KEY_FILE", &bad.display().to_string())
        .env("PAPERBOY__MAIL__DKIM_SELECTOR", "s1")
        .run();
    out.assert_failure();
    assert!(out.stderr.contains("mail.dkim_key_file"), "{out}");
}
