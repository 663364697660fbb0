use super::*;
use sha2::{Digest, Sha256};

const SHA256SUMS: &str = include_str!("../../models/all-MiniLM-L6-v2/SHA256SUMS");
const REFERENCE: &str = include_str!("../../tests/fixtures/embedding/reference.json");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_built_in_files_are_the_pinned_ones() {
    for (name, bytes) in model::built_in_files() {
        let pinned = SHA256SUMS
            .lines()
            .find_map(|l| l.strip_suffix(name).map(|h| h.trim().to_string()))
            .unwrap_or_else(|| panic!("{name} is not in SHA256SUMS"));
        assert_eq!(hex(&Sha256::digest(bytes)), pinned, "{name}");
    }
    assert!(
        MODEL_NAME.ends_with(&SHA256SUMS[..8]),
        "MODEL_NAME names the model file"
    );
}

/// The vectors onnxruntime computes from the same model file and word pieces
/// (`scripts/embedding-reference.py`).
#[test]
fn vectors_agree_with_onnxruntime() {
    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 7);
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let ours = Embedder::shared().unwrap().embed(&texts).unwrap();
    for (s, v) in sentences.iter().zip(&ours) {
        let expected: Vec<f32> = s["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let expected = Embedding::normalized(expected).unwrap();
        let cosine = v.cosine(&expected);
        let max_diff = v
            .as_slice()
            .iter()
            .zip(expected.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(cosine > 0.99999, "{:?}: cosine {cosine}", s["text"]);
        assert!(
            max_diff < 1e-3,
            "{:?}: largest difference {max_diff}",
            s["text"]
        );
    }
}

#[test]
fn a_batch_gives_each_text_its_own_vector() {
    let model = Embedder::shared().unwrap();
    let texts = [
        "video generation",
        "a much longer sentence about diffusion models that generate video from text prompts",
        "graph neural networks",
    ];
    let together = model.embed_parallel(&texts, 2, |_| true).unwrap();
    for (t, v) in texts.iter().zip(&together) {
        let alone = &model.embed(&[t]).unwrap()[0];
        assert!(v.cosine(alone) > 0.99999, "{t}: padding changed the vector");
    }
}

#[test]
fn related_texts_are_closer_than_unrelated_ones() {
    let model = Embedder::shared().unwrap();
    let v = model
        .embed(&[
            "mind reading",
            "Decoding brain activity into text with a language model",
            "Bayesian deep learning",
        ])
        .unwrap();
    assert!(v[0].cosine(&v[1]) > 0.3, "{}", v[0].cosine(&v[1]));
    assert!(v[0].cosine(&v[1]) > 2.0 * v[0].cosine(&v[2]));
}

#[test]
fn stored_vectors_read_back_within_half_precision() {
    let model = Embedder::shared().unwrap();
    let v = &model.embed(&["stored vectors"]).unwrap()[0];
    let bytes = v.to_stored();
    assert_eq!(bytes.len(), 2 * DIMENSIONS);
    let back = Embedding::from_stored(&bytes).unwrap();
    assert!(v.cosine(&back) > 0.9999);
    let err = Embedding::from_stored(&bytes[..100])
        .unwrap_err()
        .to_string();
    assert!(err.contains("paperboy db embed --again"), "{err}");
    assert!(
        Embedding::from_stored(&[0u8; 2 * DIMENSIONS]).is_err(),
        "no direction"
    );
}

#[test]
fn dot_matches_the_plain_sum() {
    let a: Vec<f32> = (0..7).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..7).map(|i| 1.0 - i as f32).collect();
    let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    assert!((dot(&a, &b) - plain).abs() < 1e-5);
}

#[test]
fn paper_text_and_interest_keys() {
    assert_eq!(
        paper_text("A title", " An abstract. "),
        "A title. An abstract."
    );
    assert_eq!(paper_text("Why?", "Because."), "Why? Because.");
    assert_eq!(paper_text("Only a title", ""), "Only a title");
    assert_eq!(interest_key("  Mind \n Reading "), "mind reading");
}

/// An abstract's sentences: trimmed, wrapped lines read as spaces, stray short pieces left
/// out; their stored vectors read back.
#[test]
fn abstract_sentences_and_their_stored_vectors() {
    // Leading white space and line breaks inside sentences, as fetched abstracts have.
    let abstract_text = "  We fold proteins with graph networks and message passing.\n\
        Our second contribution is an invisible watermark that survives\nphoto editing. \
        Experiments on three benchmarks show consistent gains. Code follows.\n\n\
        A new paragraph starts a new sentence\n\nwithout a stop";
    let ranges = abstract_sentences(abstract_text);
    let texts: Vec<&str> = ranges.iter().map(|r| &abstract_text[r.clone()]).collect();
    assert_eq!(
        texts,
        [
            "We fold proteins with graph networks and message passing.",
            "Our second contribution is an invisible watermark that survives\nphoto editing.",
            "Experiments on three benchmarks show consistent gains.",
            "A new paragraph starts a new sentence",
        ],
        "each sentence, trimmed; the two- and three-word pieces are left out"
    );
    let model = Embedder::shared().unwrap();
    let vectors = model.embed(&texts).unwrap();
    let query = &model.embed(&["hidden signatures in photographs"]).unwrap()[0];
    let closest = (0..texts.len())
        .max_by(|&a, &b| {
            vectors[a]
                .cosine(query)
                .total_cmp(&vectors[b].cosine(query))
        })
        .unwrap();
    assert_eq!(closest, 1, "the watermark sentence");

    let sentences: Vec<SentenceVector> = ranges
        .iter()
        .zip(vectors)
        .map(|(r, vector)| SentenceVector {
            start: r.start as u32,
            end: r.end as u32,
            vector,
        })
        .collect();
    let stored = sentences_to_stored(&sentences);
    assert_eq!(stored.len(), 4 * (8 + 2 * DIMENSIONS));
    let back = sentences_from_stored(&stored).unwrap();
    for (a, b) in back.iter().zip(&sentences) {
        assert_eq!((a.start, a.end), (b.start, b.end));
        assert!(a.vector.cosine(&b.vector) > 0.9999);
    }
    assert!(sentences_from_stored(&stored[..100]).is_err());
    assert!(sentences_from_stored(&[]).unwrap().is_empty());
}
