//! [`Dovecot`]: a real IMAP server (Debian's `dovecot-imapd`, not ours) on a free loopback
//! port, TLS from the first byte with a certificate from a [`TestCa`](super::TestCa), serving
//! one mailbox user. It runs in the foreground from a configuration of its own in a temporary
//! directory, so the machine's Dovecot (if any) is untouched. Messages are put in with
//! Python's `imaplib` (APPEND), a client we did not write either.

use super::{
    ServerCertificate, find_executable, free_port, missing_tool, port_accepts, wait_until,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DOVECOT_INSTALL: &str = "`apt-get install dovecot-imapd` (scripts/test.sh does)";

/// The running server; stopped when dropped.
pub struct Dovecot {
    child: Child,
    port: u16,
    user: String,
    password: String,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts Dovecot with `user` / `password`, presenting `certificate` (issued by the CA in
    /// `ca`). `None` (skipped with a reason, or a failure under `PAPERBOY_REQUIRE_ALL=1`)
    /// without Dovecot.
    pub fn start_or_skip(
        test: &str,
        certificate: &ServerCertificate,
        ca: &Path,
        user: &str,
        password: &str,
    ) -> Option<Dovecot> {
        let Some(dovecot) = find_executable("dovecot", &["/usr/sbin"]) else {
            missing_tool(test, "Dovecot", DOVECOT_INSTALL);
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        // Dovecot refuses to run its login process as root: as root it uses the users its
        // package made; otherwise everything runs as whoever runs the tests.
        let as_root = super::running_as_root();
        let (login_user, internal_user, mail_user) = if as_root {
            (
                "dovenull".to_string(),
                "dovecot".to_string(),
                "dovecot".to_string(),
            )
        } else {
            let me = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
            (me.clone(), me.clone(), me)
        };
        for sub in ["run", "state", "mail", "home"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        std::fs::write(root.join("users"), format!("{user}:{{PLAIN}}{password}\n"))
            .expect("write the users file");
        if as_root {
            // The mail and home directories belong to the user the mail processes run as, and
            // the temporary directory must be passable for them.
            let status = Command::new("chown")
                .args(["-R", &format!("{mail_user}:{mail_user}")])
                .arg(root.join("mail"))
                .arg(root.join("home"))
                .status()
                .expect("chown");
            assert!(status.success(), "chown the mail directory");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let port = free_port();
        let root_s = root.display().to_string();
        let config = format!(
            "base_dir = {root_s}/run\n\
             state_dir = {root_s}/state\n\
             log_path = {root_s}/dovecot.log\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = required\n\
             ssl_cert = <{cert}\n\
             ssl_key = <{key}\n\
             auth_mechanisms = plain login\n\
             mail_location = maildir:{root_s}/mail/%u\n\
             first_valid_uid = 0\n\
             default_login_user = {login_user}\n\
             default_internal_user = {internal_user}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {root_s}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid={mail_user} gid={mail_user} home={root_s}/home/%u\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = {port}\n    ssl = yes\n  }}\n}}\n",
            cert = certificate.certificate.display(),
            key = certificate.key.display(),
        );
        let config_file = root.join("dovecot.conf");
        std::fs::write(&config_file, config).expect("write dovecot.conf");
        if as_root {
            // The key is read by the master process as root; the rest must be readable.
            let _ = Command::new("chmod")
                .arg("644")
                .arg(root.join("users"))
                .status();
        }
        let child = Command::new(dovecot)
            .arg("-F")
            .arg("-c")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let mut server = Dovecot {
            child,
            port,
            user: user.to_string(),
            password: password.to_string(),
            ca: ca.to_path_buf(),
            _dir: dir,
        };
        let up = wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
            port_accepts(port)
        });
        if !up {
            let log = std::fs::read_to_string(root.join("dovecot.log")).unwrap_or_default();
            let _ = server.child.kill();
            panic!("Dovecot did not listen on {port}:\n{log}");
        }
        Some(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Puts `message` into the user's INBOX, unread, over IMAPS (Python's imaplib).
    pub fn append(&self, message: &str) {
        const APPEND: &str = r#"
import imaplib, ssl, sys
port, user, password, ca, path = sys.argv[1:6]
context = ssl.create_default_context(cafile=ca)
imap = imaplib.IMAP4_SSL("localhost", int(port), ssl_context=context)
imap.login(user, password)
with open(path, "rb") as f:
    typ, data = imap.append("INBOX", None, None, f.read())
assert typ == "OK", data
imap.logout()
"#;
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        std::fs::write(
            file.path(),
            message.replace("\r\n", "\n").replace('\n', "\r\n"),
        )
        .expect("write the message");
        let out = Command::new("python3")
            .args(["-c", APPEND])
            .arg(self.port.to_string())
            .args([&self.user, &self.password])
            .arg(&self.ca)
            .arg(file.path())
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "APPEND: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let stopped = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
