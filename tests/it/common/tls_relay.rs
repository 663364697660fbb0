//! [`TlsRelay`]: a submission server we did not write (aiosmtpd, run by
//! `tests/tools/tls_relay.py`) with STARTTLS or implicit TLS and AUTH, on a free loopback
//! port, with a certificate from a private CA that [`TestCa`] makes with `openssl`.

use super::{free_port, missing_tool, openssl, port_accepts, wait_until};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

const AIOSMTPD_INSTALL: &str = "`python3 -m pip install aiosmtpd` (scripts/test.sh does)";

/// A private CA in a temporary directory, and server certificates it signs.
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA's certificate (PEM): what `mail.tls_ca_file` names.
    pub certificate: PathBuf,
}

/// A server certificate and its key.
pub struct ServerCertificate {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// The subject the CA's certificate carries, as the error should name it.
    pub const NAME: &'static str = "Paperboy Test Relay CA";

    /// `None` (skipped with a reason, or a failure under `PAPERBOY_REQUIRE_ALL=1`) without
    /// openssl.
    pub fn create_or_skip(test: &str) -> Option<TestCa> {
        if super::find_executable("openssl", &[]).is_none() {
            missing_tool(test, "openssl", "`apt-get install openssl`");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let certificate = dir.path().join("ca.pem");
        let key = dir.path().join("ca.key");
        let _ = openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/O=Paperboy Tests/CN={}", Self::NAME),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &certificate.display().to_string(),
        ]);
        Some(TestCa { dir, certificate })
    }

    /// A server certificate for `names` (`DNS:localhost,IP:127.0.0.1`), signed by this CA.
    pub fn issue(&self, label: &str, names: &str) -> ServerCertificate {
        self.sign(label, names, None)
    }

    /// As [`TestCa::issue`], valid only in January 2020: long expired.
    pub fn issue_expired(&self, label: &str, names: &str) -> ServerCertificate {
        self.sign(label, names, Some(("20200101000000Z", "20200201000000Z")))
    }

    fn sign(&self, label: &str, names: &str, dates: Option<(&str, &str)>) -> ServerCertificate {
        let path = |ext: &str| self.dir.path().join(format!("{label}.{ext}"));
        let (key, csr, certificate, ext) = (path("key"), path("csr"), path("pem"), path("ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={names}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write extensions");
        let _ = openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={label}"),
            "-keyout",
            &key.display().to_string(),
            "-out",
            &csr.display().to_string(),
        ]);
        let (ca_cert, ca_key) = (
            self.certificate.display().to_string(),
            self.dir.path().join("ca.key").display().to_string(),
        );
        let (csr, ext_s, out) = (
            csr.display().to_string(),
            ext.display().to_string(),
            certificate.display().to_string(),
        );
        match dates {
            None => {
                let _ = openssl(&[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_cert,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-days",
                    "30",
                    "-extfile",
                    &ext_s,
                    "-out",
                    &out,
                ]);
            }
            // `openssl x509` cannot choose the dates; `openssl ca` can, with a database.
            Some((start, end)) => {
                let dir = self.dir.path().display().to_string();
                let config = self.dir.path().join("ca.cnf");
                std::fs::write(
                    &config,
                    format!(
                        "[ca]\ndefault_ca = test_ca\n[test_ca]\ndatabase = {dir}/index.txt\n\
                         new_certs_dir = {dir}\nserial = {dir}/serial\ndefault_md = sha256\n\
                         policy = any\n[any]\ncommonName = supplied\n"
                    ),
                )
                .expect("write ca.cnf");
                std::fs::write(self.dir.path().join("index.txt"), "").expect("index");
                std::fs::write(self.dir.path().join("serial"), "1000\n").expect("serial");
                let _ = openssl(&[
                    "ca",
                    "-batch",
                    "-config",
                    &config.display().to_string(),
                    "-cert",
                    &ca_cert,
                    "-keyfile",
                    &ca_key,
                    "-startdate",
                    start,
                    "-enddate",
                    end,
                    "-in",
                    &csr,
                    "-extfile",
                    &ext_s,
                    "-out",
                    &out,
                ]);
            }
        }
        ServerCertificate { certificate, key }
    }
}

/// How the relay secures its sessions.
#[derive(Clone, Copy, Debug)]
pub enum RelayTls {
    /// Plain greeting, STARTTLS required before anything else.
    StartTls,
    /// TLS from the first byte (what port 465 speaks).
    Implicit,
}

/// One message the relay accepted.
#[derive(Debug, serde::Deserialize)]
pub struct RelayedMessage {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The user that authenticated the session.
    pub user: Option<String>,
    /// Whether the session was encrypted when the message was given.
    pub encrypted: bool,
    pub data: String,
}

/// The running relay; stopped when dropped.
pub struct TlsRelay {
    child: Child,
    /// Closing it stops the relay.
    stdin: Option<ChildStdin>,
    port: u16,
    out: tempfile::TempDir,
}

impl TlsRelay {
    /// Starts aiosmtpd requiring AUTH as `login` (user, password), or offering no AUTH at all
    /// for `None`. `None` (skipped with a reason, or a failure under
    /// `PAPERBOY_REQUIRE_ALL=1`) without Python's aiosmtpd.
    pub fn start_or_skip(
        test: &str,
        tls: RelayTls,
        certificate: &ServerCertificate,
        login: Option<(&str, &str)>,
    ) -> Option<TlsRelay> {
        let have = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            missing_tool(test, "Python 3 with aiosmtpd", AIOSMTPD_INSTALL);
            return None;
        }
        let out = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/tls_relay.py");
        let mut command = Command::new("python3");
        command.arg(script);
        if let Some((user, password)) = login {
            command.args(["--user", user, "--password", password]);
        }
        let mut child = command
            .args(["--port", &port.to_string()])
            .args([
                "--mode",
                match tls {
                    RelayTls::StartTls => "starttls",
                    RelayTls::Implicit => "implicit",
                },
            ])
            .arg("--cert")
            .arg(&certificate.certificate)
            .arg("--key")
            .arg(&certificate.key)
            .arg("--out")
            .arg(out.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 tests/tools/tls_relay.py");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read the relay's first line");
        assert_eq!(first.trim(), "ready", "the relay did not start");
        assert!(
            wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
                port_accepts(port)
            }),
            "the relay does not accept connections on {port}"
        );
        let stdin = child.stdin.take();
        Some(TlsRelay {
            child,
            stdin,
            port,
            out,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<RelayedMessage> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("read the relay's directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                serde_json::from_slice(&std::fs::read(f).expect("read message"))
                    .expect("a message record")
            })
            .collect()
    }

    /// How many AUTH attempts the relay refused.
    pub fn refused_logins(&self) -> usize {
        std::fs::read_to_string(self.out.path().join("auth-failures"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let stopped = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
