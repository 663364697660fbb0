//! `PaperId` and `Paper`: one research paper, whichever source reported it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The canonical key of a paper.
///
/// For arXiv papers it is the arXiv identifier without its version: new style `2410.17243`
/// (`YYMM.NNNN` or `YYMM.NNNNN`) or old style `quant-ph/0210005`. Papers that have no arXiv id
/// (from a journal feed, say) are keyed `doi:<doi>` or `url:<link>`; those come with the feed
/// source.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PaperId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{input}` is not an arXiv identifier (expected e.g. 2410.17243, 2410.17243v2 or quant-ph/0210005)"
)]
pub struct PaperIdError {
    pub input: String,
}

impl PaperId {
    /// Parses an arXiv id in any of the forms sources use: bare (`2410.17243`), versioned
    /// (`2410.17243v3`), prefixed (`arXiv:2410.17243`) or as an abstract/PDF URL
    /// (`https://arxiv.org/abs/2410.17243v1`). The version is dropped.
    pub fn parse_arxiv(input: &str) -> Result<Self, PaperIdError> {
        let err = || PaperIdError {
            input: input.to_string(),
        };
        let mut s = input.trim();
        for prefix in ["http://", "https://"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest;
            }
        }
        for host in ["www.arxiv.org/", "arxiv.org/", "export.arxiv.org/"] {
            if let Some(rest) = s.strip_prefix(host) {
                s = rest;
            }
        }
        for path in ["abs/", "pdf/"] {
            if let Some(rest) = s.strip_prefix(path) {
                s = rest;
            }
        }
        if s.len() > 6 && s[..6].eq_ignore_ascii_case("arxiv:") {
            s = &s[6..];
        }
        let s = s.strip_suffix(".pdf").unwrap_or(s);
        let base = strip_version(s);
        if is_new_style(base) || is_old_style(base) {
            Ok(PaperId(base.to_string()))
        } else {
            Err(err())
        }
    }

    /// A key for a paper that has no arXiv id: its DOI, else its link.
    pub fn from_doi(doi: &str) -> Self {
        PaperId(format!("doi:{}", doi.trim().to_ascii_lowercase()))
    }

    pub fn from_url(url: &str) -> Self {
        PaperId(format!("url:{}", url.trim()))
    }

    /// Restores a key that was stored by this program (no validation beyond non-emptiness).
    pub fn from_stored(key: String) -> Self {
        PaperId(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The arXiv id, when this key is one.
    pub fn arxiv(&self) -> Option<&str> {
        if self.0.starts_with("doi:") || self.0.starts_with("url:") {
            None
        } else {
            Some(&self.0)
        }
    }
}

fn strip_version(s: &str) -> &str {
    if let Some(pos) = s.rfind('v') {
        let (head, tail) = s.split_at(pos);
        if tail.len() > 1 && tail[1..].bytes().all(|b| b.is_ascii_digit()) && !head.is_empty() {
            return head;
        }
    }
    s
}

fn is_new_style(s: &str) -> bool {
    let Some((yymm, num)) = s.split_once('.') else {
        return false;
    };
    yymm.len() == 4
        && yymm.bytes().all(|b| b.is_ascii_digit())
        && (num.len() == 4 || num.len() == 5)
        && num.bytes().all(|b| b.is_ascii_digit())
}

fn is_old_style(s: &str) -> bool {
    let Some((archive, num)) = s.split_once('/') else {
        return false;
    };
    !archive.is_empty()
        && archive
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'.' || b.is_ascii_uppercase())
        && archive.as_bytes()[0].is_ascii_alphabetic()
        && num.len() == 7
        && num.bytes().all(|b| b.is_ascii_digit())
}

impl TryFrom<String> for PaperId {
    type Error = PaperIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.starts_with("doi:") || s.starts_with("url:") {
            Ok(PaperId(s))
        } else {
            PaperId::parse_arxiv(&s)
        }
    }
}

impl From<PaperId> for String {
    fn from(id: PaperId) -> String {
        id.0
    }
}

impl fmt::Display for PaperId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PaperId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaperId({})", self.0)
    }
}

/// Where a reader can go from the digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperLinks {
    /// The abstract page (arxiv.org/abs/... for arXiv papers).
    pub abstract_url: Option<String>,
    pub pdf_url: Option<String>,
    /// The paper's Hugging Face page, when Hugging Face listed it.
    pub hf_url: Option<String>,
    pub code_url: Option<String>,
    pub project_url: Option<String>,
}

impl PaperLinks {
    /// Fills each missing link from `other`; links already known win.
    pub fn merge_from(&mut self, other: &PaperLinks) {
        fn fill(slot: &mut Option<String>, other: &Option<String>) {
            if slot.is_none() {
                slot.clone_from(other);
            }
        }
        fill(&mut self.abstract_url, &other.abstract_url);
        fill(&mut self.pdf_url, &other.pdf_url);
        fill(&mut self.hf_url, &other.hf_url);
        fill(&mut self.code_url, &other.code_url);
        fill(&mut self.project_url, &other.project_url);
    }
}

/// One paper as a source reports it. Text fields are already white-space normalised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paper {
    pub id: PaperId,
    pub title: String,
    #[serde(rename = "abstract")]
    pub abstract_text: String,
    pub authors: Vec<String>,
    /// arXiv categories (`cs.LG`), primary first when known.
    pub categories: Vec<String>,
    pub published_at: Option<DateTime<Utc>>,
    /// Hugging Face upvotes: the popularity ("trending") signal. `None` when no source has it.
    pub upvotes: Option<i64>,
    pub links: PaperLinks,
    /// What arXiv says beyond the basics; empty for papers only other sources know.
    #[serde(default)]
    pub arxiv: ArxivMeta,
}

/// arXiv's extra metadata: from the arXiv listing or API, merged into a paper whichever source
/// listed it first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArxivMeta {
    pub doi: Option<String>,
    /// The authors' comment (pages, venue, project page).
    pub comment: Option<String>,
    pub journal_ref: Option<String>,
}

impl ArxivMeta {
    /// Takes every value `other` has: arXiv's latest word wins over an older one.
    pub fn update_from(&mut self, other: &ArxivMeta) {
        fn take(slot: &mut Option<String>, other: &Option<String>) {
            if other.is_some() {
                slot.clone_from(other);
            }
        }
        take(&mut self.doi, &other.doi);
        take(&mut self.comment, &other.comment);
        take(&mut self.journal_ref, &other.journal_ref);
    }
}

impl Paper {
    /// Links that can be derived from an arXiv id, for sources that do not give them.
    pub fn arxiv_links(id: &PaperId) -> PaperLinks {
        match id.arxiv() {
            Some(a) => PaperLinks {
                abstract_url: Some(format!("https://arxiv.org/abs/{a}")),
                pdf_url: Some(format!("https://arxiv.org/pdf/{a}")),
                ..PaperLinks::default()
            },
            None => PaperLinks::default(),
        }
    }
}

/// Collapses every run of white space (including arXiv's hard line breaks and indents) into one
/// space and trims the ends.
pub fn normalize_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arxiv_ids_in_every_form() {
        for (input, want) in [
            ("2410.17243", "2410.17243"),
            ("2410.17243v3", "2410.17243"),
            ("arXiv:2410.17243v1", "2410.17243"),
            ("https://arxiv.org/abs/2510.14968v2", "2510.14968"),
            ("http://arxiv.org/pdf/2510.14968v2.pdf", "2510.14968"),
            ("0704.0001", "0704.0001"),
            ("quant-ph/0210005v1", "quant-ph/0210005"),
            ("http://arxiv.org/abs/math.GT/0309136v1", "math.GT/0309136"),
        ] {
            assert_eq!(
                PaperId::parse_arxiv(input).unwrap().as_str(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_an_arxiv_id() {
        for bad in [
            "",
            "2410",
            "2410.123",
            "24101.12345",
            "hello/world",
            "v2",
            "2410.17243v",
        ] {
            let err = PaperId::parse_arxiv(bad).unwrap_err();
            assert!(err.to_string().contains("not an arXiv identifier"), "{bad}");
        }
    }

    #[test]
    fn white_space_is_normalised() {
        assert_eq!(
            normalize_whitespace("Breaking the Memory Barrier: Near Infinite\n  Batch Size"),
            "Breaking the Memory Barrier: Near Infinite Batch Size"
        );
        assert_eq!(normalize_whitespace("  \n\t "), "");
    }

    #[test]
    fn links_merge_keeps_known_values() {
        let mut a = PaperLinks {
            code_url: Some("https://github.com/a/b".into()),
            ..Default::default()
        };
        let b = PaperLinks {
            code_url: Some("https://github.com/other".into()),
            hf_url: Some("https://huggingface.co/papers/1".into()),
            ..Default::default()
        };
        a.merge_from(&b);
        assert_eq!(a.code_url.as_deref(), Some("https://github.com/a/b"));
        assert_eq!(a.hf_url.as_deref(), Some("https://huggingface.co/papers/1"));
    }
}
