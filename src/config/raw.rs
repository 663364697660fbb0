//! What the file and the environment say, before any value is judged: the embedded defaults,
//! then the file, then `PAPERBOY__…` variables, merged into one [`Raw`] of text values. Also the
//! shape check that names a key as the user wrote it (`web = 3` in the file, `PAPERBOY__WEB`).
//! Not for: judging values (each section parses its own).
//!
//! Every scalar is read as text, so that parsing (and its error message) happens in the
//! sections rather than inside serde, where the message could not name the value and what is
//! allowed.

use super::mail::RawMail;
use super::sections::{
    RawDaemon, RawDatabase, RawDigest, RawLog, RawMatching, RawSchedule, RawWeb,
};
use super::sources::RawSources;
use super::{ConfigError, DEFAULT_TOML, ENV_PREFIX};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub secret_key: String,
    pub secret_key_file: String,
    pub previous_secret_key: String,
    pub database: RawDatabase,
    pub web: RawWeb,
    pub mail: RawMail,
    pub schedule: RawSchedule,
    pub digest: RawDigest,
    pub matching: RawMatching,
    pub sources: RawSources,
    pub log: RawLog,
    pub daemon: RawDaemon,
}

impl Raw {
    /// Merges the defaults, `file` (which must exist when given) and the `PAPERBOY__…`
    /// variables among `env`.
    pub fn read(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Raw, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
            // Parse here first: the `config` crate's TOML errors do not name the file.
            let table = text.parse::<toml::Table>().map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                detail: format!("it is not valid TOML: {e}"),
            })?;
            check_file_shape(
                &defaults_table(),
                &table,
                "",
                &format!("in {}", path.display()),
            )?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let prefix = format!("{ENV_PREFIX}__");
        let env_map: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        for var in env_map.keys() {
            check_env_shape(&defaults_table(), var)?;
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("sources.arxiv.categories")
                .try_parsing(false)
                .source(Some(env_map)),
        );
        let merged = builder
            .build()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        merged.try_deserialize().map_err(|e| {
            ConfigError::Load(format!(
                "{e}; see config/default.toml for every key and its meaning"
            ))
        })
    }
}

/// `config/default.toml` as a table: it has every key, so its shape is the shape of the settings.
fn defaults_table() -> toml::Table {
    DEFAULT_TOML
        .parse()
        .expect("the embedded config/default.toml is valid TOML")
}

/// Checks that each key the file sets has the kind of value its default has (a section is a
/// table, a list a list, anything else a single value), naming the key as written. Done before
/// the environment merges in: with `web = 3` in the file and `PAPERBOY__WEB__BIND` set, the
/// merged result would blame a key the user never wrote. Unknown keys are left to serde, whose
/// message lists the known ones.
fn check_file_shape(
    defaults: &toml::Table,
    file: &toml::Table,
    prefix: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    for (name, value) in file {
        let key = format!("{prefix}{name}");
        let Some(default) = defaults.get(name) else {
            continue;
        };
        let expected = match (default, value) {
            (toml::Value::Table(d), toml::Value::Table(v)) => {
                check_file_shape(d, v, &format!("{key}."), origin)?;
                continue;
            }
            (toml::Value::Array(_), toml::Value::Array(_)) => continue,
            (toml::Value::Table(d), _) => table_wanted(&key, d),
            (toml::Value::Array(d), _) if d.is_empty() => format!("a list of `[[{key}]]` tables"),
            (toml::Value::Array(_), _) => format!("a list such as `{}`", toml_example(default)),
            (_, toml::Value::Table(_) | toml::Value::Array(_)) => {
                format!("a single value such as `{}`", toml_example(default))
            }
            _ => continue,
        };
        return Err(ConfigError::Shape {
            key,
            origin: origin.to_string(),
            expected,
            found: value_kind(value),
        });
    }
    Ok(())
}

/// An environment variable can only set a single value: one that names a section is refused
/// with the section's keys, rather than with serde's name for the section's type.
fn check_env_shape(defaults: &toml::Table, var: &str) -> Result<(), ConfigError> {
    let path = var
        .trim_start_matches(ENV_PREFIX)
        .trim_start_matches("__")
        .to_ascii_lowercase();
    let mut table = defaults;
    for (i, part) in path.split("__").enumerate() {
        match table.get(part) {
            Some(toml::Value::Table(t)) => table = t,
            _ => return Ok(()),
        }
        let key = path.split("__").take(i + 1).collect::<Vec<_>>().join(".");
        if path.split("__").nth(i + 1).is_none() {
            let first = table.keys().next().map(String::as_str).unwrap_or("key");
            return Err(ConfigError::Shape {
                expected: format!(
                    "{}; set one of its keys instead, such as {var}__{}",
                    table_wanted(&key, table),
                    first.to_ascii_uppercase()
                ),
                key,
                origin: format!("set by {var}"),
                found: "a single value".into(),
            });
        }
    }
    Ok(())
}

/// "a table (`[web]` with keys such as `base_url`, `bind`)"
fn table_wanted(key: &str, default: &toml::Table) -> String {
    let keys: Vec<String> = default.keys().take(3).map(|k| format!("`{k}`")).collect();
    format!("a table (`[{key}]` with keys such as {})", keys.join(", "))
}

/// A default value as it is written in TOML.
fn toml_example(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_example).collect();
            format!("[{}]", items.join(", "))
        }
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Table(_) => "{ … }".into(),
    }
}

/// What a TOML value is, in words. Text is not quoted: it could be a password put in the wrong
/// place.
fn value_kind(value: &toml::Value) -> String {
    match value {
        toml::Value::String(_) => "a text value".into(),
        toml::Value::Integer(n) => format!("the number {n}"),
        toml::Value::Float(x) => format!("the number {x}"),
        toml::Value::Boolean(b) => format!("the value {b}"),
        toml::Value::Datetime(_) => "a date".into(),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}
