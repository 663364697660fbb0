//! Transports: SMTP through our pool of reused connections (`pool`), or `.eml` files.
//!
//! What for: one `Mailer` the jobs and the web side share; it signs (DKIM, when configured),
//! holds SMTP sending to `mail.max_per_second` and sends. Not for: deciding what a failure means
//! for a delivery (that is `delivery`), or building messages (`message`).

use super::dkim::DkimSigner;
use super::pool::{Class, Failure, Kind, SmtpPool, Stage};
use super::tls::Trust;
use crate::config::{MailSettings, MailTransportKind};
use governor::{DefaultDirectRateLimiter, Quota};
use lettre::Message;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// `mail.max_per_second`; `None` when 0 (unlimited).
    rate_limit: Option<Arc<DefaultDirectRateLimiter>>,
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
                Trust::load(settings.tls_ca.as_ref()),
                settings.max_connections,
                settings.timeout,
                settings.tcp_nodelay,
            )?)),
        };
        let rate_limit = send_rate_limit(settings.max_per_second, settings.max_connections);
        Ok(Mailer {
            carrier,
            rate_limit,
            dkim,
        })
    }

    /// A mailer that writes `.eml` files into `dir` (for `send --dry-run DIR`).
    pub fn to_dir(dir: &Path) -> Mailer {
        Mailer {
            carrier: Carrier::File(dir.to_path_buf()),
            rate_limit: None,
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
                if let Some(limit) = &self.rate_limit {
                    limit.until_ready().await;
                }
                pool.send(message.envelope(), &message.formatted()).await
            }
            Carrier::File(dir) => write_eml(dir, file_name, &message.formatted())
                .await
                .map_err(|e| {
                    Failure::new(
                        Stage::Connect,
                        Kind::Temporary,
                        Class::Other,
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

/// `mail.max_per_second` as governor's GCRA limiter: on average `per_second` messages start
/// each second, with bursts of up to one per connection (so a pool that was idle can fill every
/// connection at once), never more than `per_second`. `None` for 0, which means unlimited.
fn send_rate_limit(per_second: u32, connections: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(connections.clamp(1, per_second)).unwrap_or(NonZeroU32::MIN);
    Some(Arc::new(DefaultDirectRateLimiter::direct(
        Quota::per_second(rate).allow_burst(burst),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_send_rate_limit_spaces_sends() {
        assert!(send_rate_limit(0, 4).is_none(), "0 means unlimited");
        let limit = send_rate_limit(50, 2).expect("a limit");
        let start = std::time::Instant::now();
        for _ in 0..7 {
            limit.until_ready().await;
        }
        // A burst of two, then five more at 50/s: at least five intervals of 20 ms.
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(100),
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
