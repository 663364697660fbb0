//! The built-in model run with tract: tokenise, run the transformer, mean-pool, normalise.
//! Texts run one at a time, on as many threads as asked.
//!
//! The model and tokenizer are compiled into the binary, so a deployment has nothing to
//! download or install; they are parsed and optimised once per process, on first use
//! ([`Embedder::shared`]), which takes about a second.

use super::{DIMENSIONS, Embedding};
use std::sync::{Arc, OnceLock};
use tokenizers::{Tokenizer, TruncationParams};
use tract_onnx::prelude::*;

const MODEL_ONNX: &[u8] = include_bytes!("../../models/all-MiniLM-L6-v2/model.onnx");
const TOKENIZER_JSON: &[u8] = include_bytes!("../../models/all-MiniLM-L6-v2/tokenizer.json");

/// Names the model and its file; stored beside every vector, so that vectors of another model
/// are never compared with these (`paperboy db embed --again` recomputes them).
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2-int8-8199be6f";

/// The longest input in word pieces: what the model was trained on. Longer abstracts are cut,
/// as sentence-transformers cuts them.
const MAX_TOKENS: usize = 256;
/// Texts a worker takes from the shared queue at a time.
const BATCH: usize = 32;

type Plan = Arc<TypedRunnableModel>;

/// The sentence-embedding model, ready to run. Cheap to share: `embed` takes `&self` and may
/// run on several threads at once.
pub struct Embedder {
    tokenizer: Tokenizer,
    plan: Plan,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the built-in embedding model could not be loaded: {0}")]
    Load(String),
    #[error("embedding failed: {0}")]
    Run(String),
    #[error("embedding stopped on request")]
    Stopped,
}

static SHARED: OnceLock<Result<Embedder, String>> = OnceLock::new();

impl Embedder {
    /// The process's one model, loaded on first use.
    pub fn shared() -> Result<&'static Embedder, EmbedError> {
        SHARED
            .get_or_init(|| Embedder::load().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| EmbedError::Load(e.clone()))
    }

    fn load() -> Result<Embedder, EmbedError> {
        let load = |e: &dyn std::fmt::Display| EmbedError::Load(e.to_string());
        let mut tokenizer = Tokenizer::from_bytes(TOKENIZER_JSON).map_err(|e| load(&e))?;
        // The file pads and cuts everything to 128 pieces; we cut at the model's own limit
        // and pad each batch only to its longest text.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| load(&e))?;
        tokenizer.with_padding(None);
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &MODEL_ONNX[..])
            .map_err(|e| load(&e))?;
        without_attention_mask(&mut model).map_err(|e| load(&e))?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| load(&e))?;
        Ok(Embedder { tokenizer, plan })
    }

    /// The vector of each text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, EmbedError> {
        self.embed_parallel(texts, 1, |_| true)
    }

    /// The vector of each text, in order, computed on `threads` threads. `done(n)` is called
    /// as texts are finished, with how many (for a progress bar); when it answers `false`, the
    /// workers stop after the text each has under way and [`EmbedError::Stopped`] is returned,
    /// so a caller that is shutting down never waits for more than one text.
    pub fn embed_parallel(
        &self,
        texts: &[&str],
        threads: usize,
        done: impl Fn(usize) -> bool + Sync,
    ) -> Result<Vec<Embedding>, EmbedError> {
        let run = |e: &dyn std::fmt::Display| EmbedError::Run(e.to_string());
        let encodings: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(*t, true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| run(&e))
            })
            .collect::<Result<_, _>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let batches: Vec<&[usize]> = order.chunks(BATCH).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = threads.clamp(1, batches.len().max(1));
        let mut out: Vec<Option<Embedding>> = vec![None; texts.len()];
        let results: Vec<Result<Vec<(usize, Embedding)>, EmbedError>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(batch) = batches.get(b) else {
                                return Ok(mine);
                            };
                            for &i in *batch {
                                mine.push((i, self.run_one(&encodings[i])?));
                                if !done(1) {
                                    return Err(EmbedError::Stopped);
                                }
                            }
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(EmbedError::Run("a worker panicked".into())))
                })
                .collect()
        });
        for result in results {
            for (i, v) in result? {
                out[i] = Some(v);
            }
        }
        out.into_iter()
            .map(|v| v.ok_or_else(|| EmbedError::Run("a text was left out".into())))
            .collect()
    }

    /// One text through the model, alone: mean-pooled, normalised. Alone because tract's
    /// optimised graph of this export fails on a padded batch; alone, a text needs no padding
    /// and costs the same per word piece.
    fn run_one(&self, tokens: &[u32]) -> Result<Embedding, EmbedError> {
        let run = |e: &dyn std::fmt::Display| EmbedError::Run(e.to_string());
        let len = tokens.len();
        if len == 0 {
            return Err(EmbedError::Run("a text with no word pieces".into()));
        }
        let input_ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let mask = vec![1i64; len];
        let types = vec![0i64; len];
        let shape = [1, len];
        let inputs: TVec<TValue> = tvec![
            Tensor::from_shape(&shape, &input_ids)
                .map_err(|e| run(&e))?
                .into(),
            Tensor::from_shape(&shape, &mask)
                .map_err(|e| run(&e))?
                .into(),
            Tensor::from_shape(&shape, &types)
                .map_err(|e| run(&e))?
                .into(),
        ];
        let outputs = self.plan.run(inputs).map_err(|e| run(&e))?;
        let hidden = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| run(&e))?;
        if hidden.shape() != [1, len, DIMENSIONS] {
            return Err(EmbedError::Run(format!(
                "the model answered a {:?} tensor for a text of {len} pieces",
                hidden.shape()
            )));
        }
        let mut sum = vec![0f32; DIMENSIONS];
        for c in 0..len {
            for (d, s) in sum.iter_mut().enumerate() {
                *s += hidden[[0, c, d]];
            }
        }
        sum.iter_mut().for_each(|s| *s /= len as f32);
        Embedding::normalized(sum)
            .ok_or_else(|| EmbedError::Run("the model gave a zero vector".into()))
    }
}

/// The node of this export that turns `attention_mask` into the additive mask of every
/// attention layer (0 where a token may be attended, the lowest float where not).
const ATTENTION_MASK_NODE: &str = "node_Where_92";

/// Texts run alone and unpadded, so every position may be attended and the additive mask is 0
/// everywhere: its six uses get the constant 0 instead. Why not keep it: tract plans that
/// node's output as `[batch, 1, sequence, sequence]` but computes `[batch, 1, 1, sequence]`
/// from this export's mask arithmetic, and refuses to run. The vectors are the ones
/// onnxruntime computes with the mask (`vectors_agree_with_onnxruntime`).
fn without_attention_mask(model: &mut InferenceModel) -> TractResult<()> {
    let mask = model.node_id_by_name(ATTENTION_MASK_NODE)?;
    let uses: Vec<InletId> = model.node(mask).outputs[0].successors.to_vec();
    anyhow::ensure!(
        !uses.is_empty(),
        "{ATTENTION_MASK_NODE} feeds nothing: not the export this code knows"
    );
    let zero = model.add_const("paperboy_attend_everything", tensor0(0f32))?;
    for inlet in uses {
        model.add_edge(zero, inlet)?;
    }
    Ok(())
}

#[cfg(test)]
pub(super) fn built_in_files() -> [(&'static str, &'static [u8]); 2] {
    [
        ("model.onnx", MODEL_ONNX),
        ("tokenizer.json", TOKENIZER_JSON),
    ]
}
