//! CLIP text transformer (transformers' `CLIPTextModel` / `CLIPTextModelWithProjection`).
//!
//! Weight names mirror transformers' so checkpoints load as published; both the
//! `text_model.`-prefixed layout (transformers 4, the SDXL repositories) and the unprefixed one
//! (`CLIPTextModel` saved by transformers 5) are accepted.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, Module, VarBuilder};

use crate::config::ClipTextConfig;
use crate::error::{Result, invalid, unsupported};
use crate::fused::{self, KernelOptions};

#[derive(Debug, Clone, Copy)]
enum Activation {
    QuickGelu,
    Gelu,
}

impl Activation {
    fn forward(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::QuickGelu => (x * candle_nn::ops::sigmoid(&x.affine(1.702, 0.0)?)?)?,
            Activation::Gelu => x.gelu_erf()?,
        })
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &ClipTextConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        if cfg.num_attention_heads == 0 || !h.is_multiple_of(cfg.num_attention_heads) {
            return Err(invalid(
                "text encoder config",
                format!(
                    "hidden_size {h} is not a multiple of num_attention_heads {}",
                    cfg.num_attention_heads
                ),
            ));
        }
        Ok(Self {
            q: candle_nn::linear(h, h, vb.pp("q_proj"))?,
            k: candle_nn::linear(h, h, vb.pp("k_proj"))?,
            v: candle_nn::linear(h, h, vb.pp("v_proj"))?,
            out: candle_nn::linear(h, h, vb.pp("out_proj"))?,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor, causal_mask: &Tensor, opts: &KernelOptions) -> Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, l, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let scale = (self.head_dim as f64).powf(-0.5);
        let q = split(fused::linear(&self.q, x, opts)?.affine(scale, 0.0)?)?;
        let k = split(fused::linear(&self.k, x, opts)?)?;
        let v = split(fused::linear(&self.v, x, opts)?)?;
        let dtype = q.dtype();
        let scores = q
            .matmul(&k.t()?)?
            .to_dtype(DType::F32)?
            .broadcast_add(causal_mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
        let o = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, l, h))?;
        fused::linear(&self.out, &o, opts)
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl EncoderLayer {
    fn new(cfg: &ClipTextConfig, act: Activation, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            norm1: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm1"))?,
            attn: Attention::new(cfg, vb.pp("self_attn"))?,
            norm2: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: candle_nn::linear(h, cfg.intermediate_size, vb.pp("mlp").pp("fc1"))?,
            fc2: candle_nn::linear(cfg.intermediate_size, h, vb.pp("mlp").pp("fc2"))?,
            act,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor, k: &KernelOptions) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x)?, mask, k)?)?;
        let h = fused::linear(&self.fc1, &self.norm2.forward(&x)?, k)?;
        let m = fused::linear(&self.fc2, &self.act.forward(&h)?, k)?;
        Ok((x + m)?)
    }
}

/// Outputs of one text-encoder call.
#[derive(Debug, Clone)]
pub struct ClipTextOutput {
    /// Output of the final layer norm, `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor,
    /// Embeddings output and every layer's output (before the final norm), `layers + 1` entries;
    /// SDXL uses `hidden_states[len - 2]`, the penultimate layer.
    pub hidden_states: Vec<Tensor>,
    /// `last_hidden_state` at each prompt's end-of-text token, `[batch, hidden]`.
    pub pooled: Tensor,
    /// `pooled` through `text_projection`, `[batch, projection_dim]` (only with a projection).
    pub text_embeds: Option<Tensor>,
}

impl ClipTextOutput {
    /// The output of layer `len - 1 - skip` (skip 1 = penultimate, SDXL's choice).
    pub fn hidden_from_end(&self, skip: usize) -> Result<&Tensor> {
        let n = self.hidden_states.len();
        n.checked_sub(1 + skip)
            .and_then(|i| self.hidden_states.get(i))
            .ok_or_else(|| {
                invalid(
                    "clip skip",
                    format!("{skip} but the encoder has {} layers", n.saturating_sub(1)),
                )
            })
    }
}

/// A CLIP text encoder, optionally with its projection (SDXL's second encoder).
#[derive(Debug, Clone)]
pub struct ClipTextModel {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<EncoderLayer>,
    final_norm: LayerNorm,
    projection: Option<Linear>,
    eos_token_id: Option<i64>,
    max_positions: usize,
    kernels: KernelOptions,
}

impl ClipTextModel {
    /// Builds the model from weights named like transformers' (`vb` at the checkpoint root).
    pub fn new(cfg: &ClipTextConfig, with_projection: bool, vb: VarBuilder) -> Result<Self> {
        let act = match cfg.hidden_act.as_str() {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            other => {
                return Err(unsupported(
                    format!("text encoder hidden_act = {other}"),
                    "use quick_gelu or gelu",
                ));
            }
        };
        let root = if vb.contains_tensor("text_model.embeddings.token_embedding.weight") {
            vb.pp("text_model")
        } else {
            vb.clone()
        };
        let h = cfg.hidden_size;
        let emb = root.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::new(cfg, act, root.pp("encoder").pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let projection = if with_projection {
            Some(candle_nn::linear_no_bias(
                h,
                cfg.projection_dim,
                vb.pp("text_projection"),
            )?)
        } else {
            None
        };
        Ok(Self {
            token_embedding: candle_nn::embedding(cfg.vocab_size, h, emb.pp("token_embedding"))?,
            position_embedding: candle_nn::embedding(
                cfg.max_position_embeddings,
                h,
                emb.pp("position_embedding"),
            )?,
            layers,
            final_norm: candle_nn::layer_norm(h, cfg.layer_norm_eps, root.pp("final_layer_norm"))?,
            projection,
            eos_token_id: cfg.eos_token_id,
            max_positions: cfg.max_position_embeddings,
            kernels: KernelOptions::default(),
        })
    }

    /// This encoder computing with `kernels` (builder style, at construction:
    /// `ClipTextModel::new(cfg, p, vb)?.with_kernel_options(k)`).
    pub fn with_kernel_options(mut self, kernels: KernelOptions) -> Self {
        self.kernels = kernels;
        self
    }

    /// The kernel options it computes with.
    pub fn kernel_options(&self) -> &KernelOptions {
        &self.kernels
    }

    /// Encodes `input_ids` (`[batch, seq]`, u32) with CLIP's causal attention.
    pub fn forward(&self, input_ids: &Tensor) -> Result<ClipTextOutput> {
        let (batch, seq) = input_ids.dims2()?;
        if seq == 0 || seq > self.max_positions {
            return Err(invalid(
                "input_ids",
                format!(
                    "{seq} tokens; the encoder takes 1 to {}",
                    self.max_positions
                ),
            ));
        }
        let device = input_ids.device();
        let positions = Tensor::arange(0u32, seq as u32, device)?;
        let mut x = self
            .token_embedding
            .forward(input_ids)?
            .broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let mask = causal_mask(seq, device)?;
        let mut hidden_states = Vec::with_capacity(self.layers.len() + 1);
        hidden_states.push(x.clone());
        for layer in &self.layers {
            x = layer.forward(&x, &mask, &self.kernels)?;
            hidden_states.push(x.clone());
        }
        let last_hidden_state = self.final_norm.forward(&x)?;
        let ids: Vec<Vec<u32>> = input_ids.to_vec2()?;
        let mut rows = Vec::with_capacity(batch);
        for (b, row) in ids.iter().enumerate() {
            let at = self.pool_index(row);
            rows.push(last_hidden_state.get(b)?.get(at)?);
        }
        let pooled = Tensor::stack(&rows, 0)?;
        let text_embeds = match &self.projection {
            Some(p) => Some(p.forward(&pooled)?),
            None => None,
        };
        Ok(ClipTextOutput {
            last_hidden_state,
            hidden_states,
            pooled,
            text_embeds,
        })
    }

    /// transformers' pooling: with the legacy `eos_token_id == 2` the highest id (CLIP's
    /// `<|endoftext|>`), otherwise the first `eos_token_id`.
    fn pool_index(&self, row: &[u32]) -> usize {
        let first_max = |row: &[u32]| {
            let mut best = 0;
            for (i, &id) in row.iter().enumerate() {
                if id > row[best] {
                    best = i;
                }
            }
            best
        };
        match self.eos_token_id {
            Some(eos) if eos != 2 => row.iter().position(|&id| i64::from(id) == eos).unwrap_or(0),
            _ => first_max(row),
        }
    }
}

fn causal_mask(seq: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(values, (seq, seq), device)?)
}
