//! Sentence vectors: what "close in meaning" is computed from.
//!
//! What it is for: turning a paper (title and abstract) or an interest ("mind reading") into a
//! unit vector of [`DIMENSIONS`] numbers with the built-in model ([`Embedder`],
//! all-MiniLM-L6-v2, int8 ONNX, run by tract in pure Rust), and the one stored form of such a
//! vector ([`Embedding::to_stored`], f16 little-endian). Two texts about the same thing get
//! vectors with a high cosine even when they share no word.
//!
//! What it is not for: deciding when to embed (`jobs::embed`), storing (`store::vectors`) or
//! ranking (`matching`). The model files and their provenance are in `models/all-MiniLM-L6-v2/`.

mod model;
#[cfg(test)]
mod tests;

pub use model::{EmbedError, Embedder, MODEL_NAME};

/// Length of every vector the model produces.
pub const DIMENSIONS: usize = 384;

/// A unit-length sentence vector: the cosine of two is their dot product.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Box<[f32]>);

impl Embedding {
    /// Scales `values` to length 1. `None` for a vector of the wrong length, or one with no
    /// direction (all zeros, or not finite), which no text the model reads produces.
    pub fn normalized(mut values: Vec<f32>) -> Option<Embedding> {
        if values.len() != DIMENSIONS {
            return None;
        }
        let norm = dot(&values, &values).sqrt();
        if !norm.is_finite() || norm <= f32::EPSILON {
            return None;
        }
        for v in &mut values {
            *v /= norm;
        }
        Some(Embedding(values.into_boxed_slice()))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Cosine similarity: 1 for the same direction, about 0 for unrelated texts.
    pub fn cosine(&self, other: &Embedding) -> f32 {
        dot(&self.0, &other.0)
    }

    /// The stored form: f16 little-endian, 768 bytes. Half precision changes a cosine by less
    /// than 1e-3, far below the gap between a related and an unrelated paper.
    pub fn to_stored(&self) -> Vec<u8> {
        self.0
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect()
    }

    /// Reads [`Embedding::to_stored`]'s bytes back.
    pub fn from_stored(bytes: &[u8]) -> Result<Embedding, StoredVectorError> {
        if bytes.len() != DIMENSIONS * 2 {
            return Err(StoredVectorError { len: bytes.len() });
        }
        let values = bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        Embedding::normalized(values).ok_or(StoredVectorError { len: bytes.len() })
    }
}

/// A stored vector that is not one this version wrote.
#[derive(Debug, thiserror::Error)]
#[error(
    "a stored vector of {len} bytes is not a {DIMENSIONS}-number f16 vector; \
     run `paperboy db embed --again` to compute the vectors again"
)]
pub struct StoredVectorError {
    len: usize,
}

/// Dot product of two equally long slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four running sums let the compiler vectorise without reassociating one sum.
    let mut sums = [0f32; 4];
    let (a4, a_rest) = a.split_at(a.len() - a.len() % 4);
    let (b4, b_rest) = b.split_at(a4.len());
    for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        for k in 0..4 {
            sums[k] += x[k] * y[k];
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + rest
}

/// What a paper's vector is computed from: its title, then its abstract.
pub fn paper_text(title: &str, abstract_text: &str) -> String {
    let title = title.trim();
    let abstract_text = abstract_text.trim();
    if abstract_text.is_empty() {
        title.to_string()
    } else if title.ends_with(['.', '?', '!']) {
        format!("{title} {abstract_text}")
    } else {
        format!("{title}. {abstract_text}")
    }
}

/// The sentences of an abstract (Unicode's sentence boundaries, UAX #29), as byte ranges
/// without their surrounding white space; pieces of fewer than [`SENTENCE_MIN_WORDS`] words
/// (a stray "i.e." cut) are left out. A single line break is read as a space: fetched
/// abstracts are wrapped mid-sentence (arXiv's at 80 columns), and UAX #29 ends a sentence at
/// every one. A blank line still ends one.
pub fn abstract_sentences(abstract_text: &str) -> Vec<std::ops::Range<usize>> {
    use unicode_segmentation::UnicodeSegmentation;
    let bytes = abstract_text.as_bytes();
    let unwrapped: String = abstract_text
        .char_indices()
        .map(|(i, c)| {
            let blank_line = bytes.get(i + 1) == Some(&b'\n') || (i > 0 && bytes[i - 1] == b'\n');
            match c {
                // One byte for one byte: the ranges found hold for `abstract_text`.
                '\r' => ' ',
                '\n' if !blank_line => ' ',
                c => c,
            }
        })
        .collect();
    unwrapped
        .split_sentence_bound_indices()
        .filter_map(|(at, sentence)| {
            let start = at + (sentence.len() - sentence.trim_start().len());
            let end = at + sentence.trim_end().len();
            (sentence.split_whitespace().count() >= SENTENCE_MIN_WORDS).then_some(start..end)
        })
        .collect()
}

/// Shorter pieces of an abstract are not sentences worth showing on their own.
const SENTENCE_MIN_WORDS: usize = 4;

/// One sentence of an abstract: its bytes in the abstract and its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceVector {
    pub start: u32,
    pub end: u32,
    pub vector: Embedding,
}

/// Bytes of one sentence in the stored form: start and end (u32 little-endian), then the
/// vector's stored form.
const STORED_SENTENCE: usize = 8 + DIMENSIONS * 2;

/// The stored form of a paper's sentence vectors: each sentence's byte range and vector, one
/// after another ([`STORED_SENTENCE`] bytes each).
pub fn sentences_to_stored(sentences: &[SentenceVector]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sentences.len() * STORED_SENTENCE);
    for s in sentences {
        out.extend(s.start.to_le_bytes());
        out.extend(s.end.to_le_bytes());
        out.extend(s.vector.to_stored());
    }
    out
}

/// Reads [`sentences_to_stored`]'s bytes back.
pub fn sentences_from_stored(bytes: &[u8]) -> Result<Vec<SentenceVector>, StoredVectorError> {
    if !bytes.len().is_multiple_of(STORED_SENTENCE) {
        return Err(StoredVectorError { len: bytes.len() });
    }
    bytes
        .chunks_exact(STORED_SENTENCE)
        .map(|c| {
            let word = |k: usize| u32::from_le_bytes([c[k], c[k + 1], c[k + 2], c[k + 3]]);
            Ok(SentenceVector {
                start: word(0),
                end: word(4),
                vector: Embedding::from_stored(&c[8..])?,
            })
        })
        .collect()
}

/// The form of an interest that decides its vector: the model lower-cases and splits on
/// whitespace itself, so "Mind  Reading" and "mind reading" share one stored vector.
pub fn interest_key(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
