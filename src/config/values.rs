//! The value parsers every section shares: numbers in a range, booleans, http(s) URLs,
//! non-empty text. Each error names the key, the value as written and what is allowed.
//! Not for: rules of one key (those live with the key's section).

use super::ConfigError;
use std::fmt;

pub(super) fn invalid(
    key: &str,
    value: impl fmt::Display,
    allowed: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

pub(super) fn parse_range(key: &str, value: &str, min: u32, max: u32) -> Result<u32, ConfigError> {
    match value.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            key,
            value,
            format!("a whole number from {min} to {max}"),
        )),
    }
}

pub(super) fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "true or false")),
    }
}

pub(super) fn parse_http_url(key: &str, value: &str) -> Result<url::Url, ConfigError> {
    match url::Url::parse(value.trim()) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(u),
        _ => Err(invalid(
            key,
            value,
            "an http:// or https:// URL such as https://example.org",
        )),
    }
}

pub(super) fn nonempty<'a>(key: &str, value: &'a str) -> Result<&'a str, ConfigError> {
    let v = value.trim();
    if v.is_empty() {
        Err(invalid(key, value, "a non-empty value"))
    } else {
        Ok(v)
    }
}
