//! A message as it arrived: from an smtp-sink dump or an `.eml` file of the file transport,
//! with its envelope, headers, parts and links.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// One message as an SMTP server received it: the envelope and the bytes after DATA.
#[derive(Clone)]
pub struct ReceivedMail {
    /// `MAIL FROM` address, without angle brackets or parameters.
    pub envelope_from: String,
    /// Each `RCPT TO` address in order, without angle brackets or parameters.
    pub envelope_to: Vec<String>,
    /// The message as sent (headers and body, LF line ends, dot-unstuffed).
    pub raw: Vec<u8>,
    /// Where it came from (a dump file, or an .eml file).
    pub file: PathBuf,
}

impl fmt::Debug for ReceivedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedMail")
            .field("envelope_from", &self.envelope_from)
            .field("envelope_to", &self.envelope_to)
            .field("file", &self.file)
            .field("raw", &String::from_utf8_lossy(&self.raw))
            .finish()
    }
}

/// `<a@x.org> SIZE=12` -> `a@x.org`
fn envelope_address(args: &str) -> String {
    let first = args.split_whitespace().next().unwrap_or("");
    first
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

impl ReceivedMail {
    /// Parses one smtp-sink dump file: `X-…` lines smtp-sink adds, its three-line `Received:`
    /// header, then the message, then one empty line. `Ok(None)` for a transaction that
    /// never reached DATA (only the `X-…` lines).
    pub fn from_dump(bytes: &[u8], file: PathBuf) -> Result<Option<Self>, String> {
        let mut envelope_from = None;
        let mut envelope_to = Vec::new();
        let mut offset = 0;
        let mut in_received = false;
        loop {
            let rest = &bytes[offset..];
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                if in_received || !rest.is_empty() {
                    return Err("ended inside smtp-sink's own headers".into());
                }
                return Ok(None);
            };
            let line = String::from_utf8_lossy(&rest[..end]);
            let line = line.trim_end_matches('\r');
            if in_received {
                if line.starts_with([' ', '\t']) {
                    offset += end + 1;
                    continue;
                }
                break;
            }
            if let Some(args) = line.strip_prefix("X-Mail-Args:") {
                envelope_from = Some(envelope_address(args));
            } else if let Some(args) = line.strip_prefix("X-Rcpt-Args:") {
                envelope_to.push(envelope_address(args));
            } else if line.starts_with("Received:") {
                in_received = true;
            } else if !line.starts_with("X-") {
                return Err(format!("unexpected line before Received: {line:?}"));
            }
            offset += end + 1;
        }
        let mut raw = bytes[offset..].to_vec();
        // smtp-sink ends each dump with one empty line of its own.
        if raw.ends_with(b"\n\n") {
            raw.pop();
        }
        Ok(Some(Self {
            envelope_from: envelope_from.ok_or("no X-Mail-Args line")?,
            envelope_to,
            raw,
            file,
        }))
    }

    /// Reads an `.eml` file (e.g. from `send --dry-run` or the file transport). The envelope
    /// comes from the `To` header, the envelope sender from `From`.
    pub fn from_eml(path: &Path) -> Self {
        let raw = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut mail = Self {
            envelope_from: String::new(),
            envelope_to: Vec::new(),
            raw,
            file: path.to_path_buf(),
        };
        mail.envelope_from = mail
            .header("From")
            .map(|v| address_in(&v))
            .unwrap_or_default();
        mail.envelope_to = mail
            .header("To")
            .map(|v| v.split(',').map(address_in).collect())
            .unwrap_or_default();
        mail
    }

    /// The message parsed by mail-parser.
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .unwrap_or_else(|| panic!("mail-parser could not parse {:?}", self))
    }

    /// The top-level header block, unfolded: (name, value) in order.
    pub fn header_fields(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.raw).replace("\r\n", "\n");
        let block = text.split("\n\n").next().unwrap_or("");
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim().to_string(), value.to_string()));
            }
        }
        fields
            .into_iter()
            .map(|(name, value)| (name, value.trim().to_string()))
            .collect()
    }

    /// Every value of a top-level header (case-insensitive name), unfolded, not decoded.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.header_fields()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The single value of a top-level header; panics when it appears more than once.
    #[track_caller]
    pub fn header(&self, name: &str) -> Option<String> {
        let mut values = self.headers(name);
        assert!(
            values.len() <= 1,
            "header {name} appears {} times in {:?}",
            values.len(),
            self
        );
        values.pop()
    }

    /// The decoded Subject.
    pub fn subject(&self) -> Option<String> {
        self.parsed().subject().map(str::to_string)
    }

    /// The decoded body of the first real `text/plain` part (never converted from HTML).
    pub fn text_body(&self) -> Option<String> {
        self.first_part_of_type("text", "plain")
    }

    /// The decoded body of the first real `text/html` part (never converted from text).
    pub fn html_body(&self) -> Option<String> {
        self.first_part_of_type("text", "html")
    }

    fn first_part_of_type(&self, ctype: &str, subtype: &str) -> Option<String> {
        let message = self.parsed();
        message
            .parts
            .iter()
            .find(|part| match part.content_type() {
                Some(ct) => {
                    ct.ctype().eq_ignore_ascii_case(ctype)
                        && ct
                            .subtype()
                            .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
                }
                // No Content-Type means text/plain (RFC 2045).
                None => ctype == "text" && subtype == "plain" && !part.is_multipart(),
            })
            .and_then(|part| part.text_contents().map(str::to_string))
    }

    /// The MIME tree as `type/subtype` strings, children indented: for messages and asserts.
    pub fn mime_structure(&self) -> Vec<String> {
        fn walk(message: &mail_parser::Message<'_>, id: u32, depth: usize, out: &mut Vec<String>) {
            let Some(part) = message.part(id) else { return };
            let ct = part
                .content_type()
                .map(|ct| {
                    format!(
                        "{}/{}",
                        ct.ctype().to_ascii_lowercase(),
                        ct.subtype().unwrap_or("").to_ascii_lowercase()
                    )
                })
                .unwrap_or_else(|| "text/plain".to_string());
            out.push(format!("{}{ct}", "  ".repeat(depth)));
            if let PartType::Multipart(children) = &part.body {
                for &child in children {
                    walk(message, child, depth + 1, out);
                }
            }
        }
        let message = self.parsed();
        let mut out = Vec::new();
        walk(&message, 0, 0, &mut out);
        out
    }

    /// Ok when the message is `multipart/alternative` with exactly two parts: `text/plain`
    /// first, then `text/html`.
    pub fn check_alternative(&self) -> Result<(), String> {
        let structure = self.mime_structure();
        let expected = ["multipart/alternative", "  text/plain", "  text/html"];
        if structure == expected {
            Ok(())
        } else {
            Err(format!(
                "expected MIME structure {expected:?}, got {structure:?}"
            ))
        }
    }

    #[track_caller]
    pub fn assert_alternative(&self) {
        if let Err(e) = self.check_alternative() {
            panic!("{e}\nmessage: {self:?}");
        }
    }

    /// Every http(s) URL in the text and HTML parts.
    pub fn links(&self) -> Vec<String> {
        let mut links = Vec::new();
        for body in [self.text_body(), self.html_body()].into_iter().flatten() {
            links.extend(find_links(&body));
        }
        links
    }
}

/// `Name <a@x.org>` or `a@x.org` -> `a@x.org`
fn address_in(value: &str) -> String {
    let value = value.trim();
    match (value.rfind('<'), value.rfind('>')) {
        (Some(start), Some(end)) if start < end => value[start + 1..end].trim().to_string(),
        _ => value.to_string(),
    }
}

/// Every `http://` or `https://` URL in a text, cut at white space, quotes, angle brackets and
/// closing parentheses; HTML's `&amp;` is turned back into `&`.
pub fn find_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    loop {
        let next = [rest.find("http://"), rest.find("https://")]
            .into_iter()
            .flatten()
            .min();
        let Some(start) = next else { break };
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || "\"'<>)]".contains(c))
            .unwrap_or(candidate.len());
        let link = candidate[..end].trim_end_matches(['.', ',', ';']);
        links.push(link.replace("&amp;", "&"));
        rest = &candidate[end..];
    }
    links
}

/// Every `.eml` file under `dir` (recursively), parsed, sorted by path. Empty when `dir` does
/// not exist.
pub fn eml_files(dir: &Path) -> Vec<ReceivedMail> {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "eml") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    collect(dir, &mut paths);
    paths.sort();
    paths.iter().map(|p| ReceivedMail::from_eml(p)).collect()
}
