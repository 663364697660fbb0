//! Transports: SMTP through our pool of reused connections (`pool`), or `.eml` files.
//!
//! What for: one `Mailer` the jobs and the web side share; it signs (DKIM, when configured),
//! paces (`mail.max_per_second`) and sends. Not for: deciding what a failure means for a
//! delivery (that is `jobs::send`), or building messages (`message`).

use super::dkim::DkimSigner;
use super::pool::{Failure, Kind, SmtpPool, Stage};
use crate::config::{MailSettings, MailTransportKind};
use lettre::Message;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How a send failed, which decides what happens to the delivery.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Try again later: a 4xx answer, a dropped connection, a timeout, an unreachable server.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Do not try again: the server refused the message or the recipient for good (5xx).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl From<Failure> for SendError {
    fn from(f: Failure) -> Self {
        match f.kind {
            Kind::Temporary => SendError::Temporary(f.to_string()),
            Kind::Permanent => SendError::Permanent(f.to_string()),
        }
    }
}

#[derive(Clone)]
enum Carrier {
    Smtp(Arc<SmtpPool>),
    File(PathBuf),
}

/// Sends messages: cheap to clone, shared by every job.
#[derive(Clone)]
pub struct Mailer {
    carrier: Carrier,
    pacer: Option<Arc<Pacer>>,
    dkim: Option<DkimSigner>,
}

impl Mailer {
    pub fn from_settings(settings: &MailSettings) -> Result<Mailer, String> {
        let dkim = match &settings.dkim {
            None => None,
            Some(d) => Some(DkimSigner::load(&d.key_file, &d.selector, &d.domain)?),
        };
        let carrier = match settings.transport {
            MailTransportKind::File => Carrier::File(settings.file_dir.clone()),
            MailTransportKind::Smtp => Carrier::Smtp(Arc::new(SmtpPool::new(
                settings.smtp_url.clone(),
                settings.max_connections,
                settings.timeout,
                settings.tcp_nodelay,
            ))),
        };
        let pacer = (settings.max_per_second > 0).then(|| {
            Arc::new(Pacer::new(
                settings.max_per_second,
                settings.max_connections,
            ))
        });
        Ok(Mailer {
            carrier,
            pacer,
            dkim,
        })
    }

    /// A mailer that writes `.eml` files into `dir` (for `send --dry-run DIR`).
    pub fn to_dir(dir: &Path) -> Mailer {
        Mailer {
            carrier: Carrier::File(dir.to_path_buf()),
            pacer: None,
            dkim: None,
        }
    }

    /// Sends one message. `file_name` names the `.eml` file for the file transport (a resend
    /// overwrites rather than duplicates).
    pub async fn send(&self, message: &Message, file_name: &str) -> Result<(), SendError> {
        self.deliver(message.clone(), file_name)
            .await
            .map_err(SendError::from)
    }

    /// As [`Mailer::send`], with the failure's stage (a 5xx at RCPT is a hard bounce).
    pub async fn deliver(&self, mut message: Message, file_name: &str) -> Result<(), Failure> {
        if let Some(dkim) = &self.dkim {
            dkim.sign(&mut message);
        }
        match &self.carrier {
            Carrier::Smtp(pool) => {
                if let Some(p) = &self.pacer {
                    p.wait().await;
                }
                pool.send(message.envelope(), &message.formatted()).await
            }
            Carrier::File(dir) => write_eml(dir, file_name, &message.formatted())
                .await
                .map_err(|e| {
                    Failure::new(
                        Stage::Connect,
                        Kind::Temporary,
                        format!(
                            "cannot write to {} (config key `mail.file_dir`): {e}",
                            dir.display()
                        ),
                    )
                }),
        }
    }

    /// The SMTP pool messages go through; `None` for the file transport. `paperboy check`
    /// probes the server through it.
    pub fn smtp_pool(&self) -> Option<&SmtpPool> {
        match &self.carrier {
            Carrier::Smtp(pool) => Some(pool),
            Carrier::File(_) => None,
        }
    }
}

async fn write_eml(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let final_path = dir.join(format!("{safe}.eml"));
    // Write then rename, so a reader never sees half a message.
    let tmp = dir.join(format!(".{safe}.eml.tmp"));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, &final_path).await
}

/// A token bucket: on average `per_second` sends start each second, with bursts of up to
/// `burst` (one per connection, so a pool that was idle can fill every connection at once).
/// The balance may go negative: each caller reserves its slot under the lock and sleeps
/// outside it, so waiters are served in order and none spins.
pub struct Pacer {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Pacer {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.clamp(1, per_second.max(1)));
        Pacer {
            per_second: f64::from(per_second.max(1)),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    pub async fn wait(&self) {
        let wait = {
            let mut state = self.state.lock().await;
            let now = Instant::now();
            let (tokens, last) = *state;
            let refilled =
                (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(self.burst);
            let left = refilled - 1.0;
            *state = (left, now);
            if left >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-left / self.per_second)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacer_spaces_sends() {
        let p = Pacer::new(50, 2);
        let start = Instant::now();
        for _ in 0..7 {
            p.wait().await;
        }
        // A burst of two, then five more at 50/s: at least five intervals of 20 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn eml_files_are_named_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        write_eml(dir.path(), "a/b", b"one").await.unwrap();
        write_eml(dir.path(), "a/b", b"two").await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read(dir.path().join("a_b.eml")).unwrap(), b"two");
    }
}
