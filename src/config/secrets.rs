//! Secrets in the configuration: the link-signing keys and the files credentials are read from.
//!
//! A `*_file` key names a file looked up in systemd's credentials directory first
//! (`$CREDENTIALS_DIRECTORY`, filled by `LoadCredential=`), so secrets need not sit in the
//! config file. A secret is held as [`Secret`], which never shows in `Debug` output or logs.
//! Not for: what a secret is used for (links, SMTP AUTH, DKIM signing live elsewhere).

use super::ConfigError;
use super::values::invalid;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a `*_file` key's file is: a relative name is looked up in systemd's credentials
/// directory (`$CREDENTIALS_DIRECTORY`, filled by `LoadCredential=`) first, then taken as is.
pub fn credential_path(file: &str) -> PathBuf {
    let path = PathBuf::from(file);
    if path.is_relative()
        && let Ok(dir) = std::env::var("CREDENTIALS_DIRECTORY")
    {
        let candidate = Path::new(&dir).join(file);
        if candidate.exists() {
            return candidate;
        }
    }
    path
}

/// The text of the credential file `key` names; `None` when the key is empty. `holding` says
/// what the file should hold, for the error.
pub(super) fn read_credential(
    key: &str,
    file: &str,
    holding: &str,
) -> Result<Option<String>, ConfigError> {
    let file = file.trim();
    if file.is_empty() {
        return Ok(None);
    }
    let path = credential_path(file);
    std::fs::read_to_string(&path).map(Some).map_err(|e| {
        invalid(
            key,
            path.display(),
            format!("a readable file holding {holding} ({e})"),
        )
    })
}

/// `secret_key`, `secret_key_file` and `previous_secret_key`: the keys that sign emailed links.
pub(super) struct SigningKeys {
    pub secret_key: Secret,
    pub generated: bool,
    pub previous: Option<Secret>,
}

impl SigningKeys {
    /// With no key configured, a key is generated when `may_generate` (the file transport: a
    /// trial run that mails nobody, whose links may stop working after a restart).
    pub fn parse(
        secret_key: &str,
        secret_key_file: &str,
        previous_secret_key: &str,
        may_generate: bool,
    ) -> Result<SigningKeys, ConfigError> {
        let key = match read_credential("secret_key_file", secret_key_file, "the key")? {
            Some(text) => text.trim().to_string(),
            None => secret_key.trim().to_string(),
        };
        let (secret_key, generated) = if !key.is_empty() {
            if key.len() < 32 {
                return Err(invalid(
                    "secret_key",
                    format!("({} characters, hidden)", key.len()),
                    "at least 32 characters; generate one with `openssl rand -hex 32`",
                ));
            }
            (Secret::new(key), false)
        } else if may_generate {
            (random_secret(), true)
        } else {
            return Err(ConfigError::Missing {
                key: "secret_key".into(),
                why: "it signs the links in every email, so it must be set when \
                      mail.transport = \"smtp\"; generate one with `openssl rand -hex 32` and \
                      put it in the config file, PAPERBOY__SECRET_KEY or secret_key_file"
                    .into(),
            });
        };
        let previous = match previous_secret_key.trim() {
            "" => None,
            k if k.len() < 32 => {
                return Err(invalid(
                    "previous_secret_key",
                    format!("({} characters, hidden)", k.len()),
                    "empty, or the full former secret_key (32+ characters)",
                ));
            }
            k => Some(Secret::new(k)),
        };
        Ok(SigningKeys {
            secret_key,
            generated,
            previous,
        })
    }
}

fn random_secret() -> Secret {
    use rand::Rng;
    let bytes: [u8; 32] = rand::thread_rng().r#gen();
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A URL fit for a message or a log line (`database.url`, `mail.smtp_url`): any password
/// replaced by `***`.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
