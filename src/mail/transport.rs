//! Transports: SMTP through a pool of reused connections, or `.eml` files in a folder.

use crate::config::{MailSettings, MailTransportKind};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
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

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        pacer: Option<Arc<Pacer>>,
    },
    File {
        dir: PathBuf,
    },
}

impl Mailer {
    pub fn from_settings(settings: &MailSettings) -> Result<Mailer, String> {
        match settings.transport {
            MailTransportKind::File => Ok(Mailer::File {
                dir: settings.file_dir.clone(),
            }),
            MailTransportKind::Smtp => {
                let transport =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose())
                        .map_err(|e| format!("config key `mail.smtp_url` cannot be used: {e}"))?
                        .timeout(Some(settings.timeout))
                        .pool_config(
                            lettre::transport::smtp::PoolConfig::new()
                                .max_size(settings.max_connections)
                                .idle_timeout(Duration::from_secs(60)),
                        )
                        .build();
                let pacer = (settings.max_per_second > 0)
                    .then(|| Arc::new(Pacer::new(settings.max_per_second)));
                Ok(Mailer::Smtp { transport, pacer })
            }
        }
    }

    /// A mailer that writes `.eml` files into `dir` (for `send --dry-run DIR`).
    pub fn to_dir(dir: &Path) -> Mailer {
        Mailer::File {
            dir: dir.to_path_buf(),
        }
    }

    /// Sends one message. `file_name` names the `.eml` file for the file transport (a resend
    /// overwrites rather than duplicates).
    pub async fn send(&self, message: &Message, file_name: &str) -> Result<(), SendError> {
        match self {
            Mailer::Smtp { transport, pacer } => {
                if let Some(p) = pacer {
                    p.wait().await;
                }
                transport
                    .send(message.clone())
                    .await
                    .map(|_| ())
                    .map_err(classify)
            }
            Mailer::File { dir } => write_eml(dir, file_name, &message.formatted())
                .await
                .map_err(|e| {
                    SendError::Temporary(format!(
                        "cannot write to {} (config key `mail.file_dir`): {e}",
                        dir.display()
                    ))
                }),
        }
    }

    /// Opens one SMTP session and closes it, sending nothing (`paperboy check`).
    pub async fn test_connection(&self) -> Result<(), String> {
        match self {
            Mailer::Smtp { transport, .. } => match transport.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err("the server did not answer NOOP".into()),
                Err(e) => Err(e.to_string()),
            },
            Mailer::File { dir } => tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else {
        SendError::Temporary(e.to_string())
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

/// Spaces sends evenly so that no more than `per_second` start in any second (a token bucket
/// of depth one: simple, and smooth for the receiving server).
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(per_second: u32) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))),
            next: Mutex::new(Instant::now()),
        }
    }

    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacer_spaces_sends() {
        let p = Pacer::new(50);
        let start = Instant::now();
        for _ in 0..6 {
            p.wait().await;
        }
        // Six sends at 50/s need at least five intervals of 20 ms.
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
