//! The SDXL UNet (diffusers' `UNet2DConditionModel` with the `text_time` add-embedding).
//!
//! Module and weight names mirror diffusers', so a diffusers `unet/` folder loads as is. The
//! supported configuration space is what SDXL-family models use: `DownBlock2D` /
//! `CrossAttnDownBlock2D`, `UNetMidBlock2DCrossAttn`, `UpBlock2D` / `CrossAttnUpBlock2D`,
//! linear or 1x1-conv projections, GEGLU feed-forward; anything else is a clear error.

use candle_core::{D, DType, Device, Tensor, TensorId};
use candle_nn::{LayerNorm, Linear, Module, VarBuilder};

use crate::blocks::{
    Conv, Ctx, Downsample, GroupNorm, ResnetBlock, Upsample, add, conv, group_norm, run_conv,
    run_linear,
};
use crate::config::{SdxlConfigs, UNetConfig};
use crate::error::{Result, invalid, unsupported};
use crate::fused::KernelOptions;
use crate::reference::{self, SharedAttention};
use crate::weights::{load_var_builder, weight_files};
use crate::{fused, profile};

/// Sinusoidal embedding of (possibly fractional) timesteps, `[n] -> [n, dim]`, computed in f32
/// the way diffusers' `get_timestep_embedding` does (the frequencies are rounded to f32 first).
pub(crate) fn timestep_embedding(
    t: &Tensor,
    dim: usize,
    flip_sin_to_cos: bool,
    shift: f64,
) -> Result<Tensor> {
    let half = dim / 2;
    if half == 0 || (half as f64 - shift) == 0.0 {
        return Err(invalid(
            "timestep embedding",
            format!("dimension {dim} is too small"),
        ));
    }
    let log_max = -(10000f64.ln() as f32);
    let denom = (half as f64 - shift) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (log_max * i as f32 / denom).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t
        .to_dtype(DType::F32)?
        .unsqueeze(1)?
        .broadcast_mul(&freqs)?;
    let (sin, cos) = (args.sin()?, args.cos()?);
    let emb = if flip_sin_to_cos {
        Tensor::cat(&[cos, sin], D::Minus1)?
    } else {
        Tensor::cat(&[sin, cos], D::Minus1)?
    };
    Ok(if dim % 2 == 1 {
        emb.pad_with_zeros(D::Minus1, 0, 1)?
    } else {
        emb
    })
}

/// diffusers' `TimestepEmbedding`: linear, SiLU, linear.
#[derive(Debug, Clone)]
struct TimestepMlp {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepMlp {
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_1: candle_nn::linear(cin, cout, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(cout, cout, vb.pp("linear_2"))?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)?)
    }
}

/// Multi-head attention with diffusers' names (`to_q`, `to_k`, `to_v`, `to_out.0`).
///
/// The projections are fused at load: self-attention keeps one `[3 * inner, dim]` weight (Q, K
/// and V from one GEMM), cross-attention one for Q and one `[2 * inner, context_dim]` for K and
/// V; the heads then read strided views of the fused output.
#[derive(Debug, Clone)]
struct CrossAttention {
    /// Self-attention: Q|K|V. Cross-attention: Q.
    in_proj: Linear,
    /// Cross-attention only: K|V from the context.
    kv_proj: Option<Linear>,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
    /// Cross-attention only: the last context's K|V, reused while the same context tensor
    /// comes back (every denoising step of a generation passes the same text embeddings).
    kv_cache: KvCache,
}

/// The id of a context tensor, the kernel options that projected it and its K|V projection
/// (tensors are immutable, ids never reused; clones of a UNet share the cache, so the options
/// are part of the key).
type KvCache = std::sync::Arc<std::sync::Mutex<Option<(TensorId, KernelOptions, Tensor)>>>;

impl CrossAttention {
    fn new(
        dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        head_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        let kv_dim = context_dim.unwrap_or(dim);
        let get = |name: &str, cin: usize| vb.pp(name).get((inner, cin), "weight");
        let (q, k, v) = (
            get("to_q", dim)?,
            get("to_k", kv_dim)?,
            get("to_v", kv_dim)?,
        );
        let (in_proj, kv_proj) = match context_dim {
            None => (Linear::new(Tensor::cat(&[&q, &k, &v], 0)?, None), None),
            Some(_) => (
                Linear::new(q, None),
                Some(Linear::new(Tensor::cat(&[&k, &v], 0)?, None)),
            ),
        };
        Ok(Self {
            in_proj,
            kv_proj,
            to_out: candle_nn::linear(inner, dim, vb.pp("to_out").pp(0))?,
            heads,
            head_dim,
            kv_cache: KvCache::default(),
        })
    }

    /// K|V of `context`, projected once per context tensor.
    fn context_kv(&self, kv_proj: &Linear, context: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut cache = match self.kv_cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((id, kernels, kv)) = cache.as_ref()
            && *id == context.id()
            && *kernels == ctx.kernels
        {
            return Ok(kv.clone());
        }
        let kv = run_linear("linear_qkv", kv_proj, context, ctx)?;
        *cache = Some((context.id(), ctx.kernels, kv.clone()));
        Ok(kv)
    }

    /// Attention of `x` to `context` (cross-attention) or to itself (`None`); self-attention
    /// shares keys and values across the batch where `share` says so.
    fn forward(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        share: Option<&SharedAttention>,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let inner = self.heads * self.head_dim;
        let proj = run_linear("linear_qkv", &self.in_proj, x, ctx)?;
        let (q, k, v) = match (&self.kv_proj, context) {
            (Some(kv_proj), Some(context)) => {
                let kv = self.context_kv(kv_proj, context, ctx)?;
                (proj, kv.narrow(2, 0, inner)?, kv.narrow(2, inner, inner)?)
            }
            (None, None) => (
                proj.narrow(2, 0, inner)?,
                proj.narrow(2, inner, inner)?,
                proj.narrow(2, 2 * inner, inner)?,
            ),
            _ => {
                return Err(invalid(
                    "attention context",
                    "self-attention takes no context and cross-attention needs one",
                ));
            }
        };
        let o = match share {
            Some(share) if context.is_none() => {
                reference::attention(&q, &k, &v, self.heads, self.head_dim, share, &ctx.kernels)?
            }
            _ => fused::attention(&q, &k, &v, self.heads, self.head_dim, &ctx.kernels)?,
        };
        run_linear("linear_out", &self.to_out, &o, ctx)
    }
}

/// `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward, pre-norm.
#[derive(Debug, Clone)]
struct TransformerBlock {
    norm1: LayerNorm,
    attn1: CrossAttention,
    norm2: LayerNorm,
    attn2: CrossAttention,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
}

impl TransformerBlock {
    fn new(dim: usize, context_dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        let head_dim = dim / heads;
        let inner = dim * 4;
        Ok(Self {
            norm1: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            attn1: CrossAttention::new(dim, None, heads, head_dim, vb.pp("attn1"))?,
            norm2: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            attn2: CrossAttention::new(dim, Some(context_dim), heads, head_dim, vb.pp("attn2"))?,
            norm3: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm3"))?,
            ff_in: candle_nn::linear(dim, inner * 2, vb.pp("ff").pp("net").pp(0).pp("proj"))?,
            ff_out: candle_nn::linear(inner, dim, vb.pp("ff").pp("net").pp(2))?,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let norm = |n: &LayerNorm, x: &Tensor| {
            profile::scope("layer_norm", x.device(), || Ok(n.forward(x)?))
        };
        let x = add(
            &self
                .attn1
                .forward(&norm(&self.norm1, x)?, None, ctx.share.as_ref(), ctx)?,
            x,
        )?;
        let x = add(
            &self
                .attn2
                .forward(&norm(&self.norm2, &x)?, Some(context), None, ctx)?,
            &x,
        )?;
        let h = run_linear("linear_ff", &self.ff_in, &norm(&self.norm3, &x)?, ctx)?;
        let geglu = fused::geglu(&h, &ctx.kernels)?;
        add(&run_linear("linear_ff", &self.ff_out, &geglu, ctx)?, &x)
    }
}

#[derive(Debug, Clone)]
enum Projection {
    Linear(Linear),
    Conv(Conv),
}

/// `Transformer2DModel` on a feature map.
#[derive(Debug, Clone)]
struct SpatialTransformer {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<TransformerBlock>,
    proj_out: Projection,
}

impl SpatialTransformer {
    fn new(
        channels: usize,
        context_dim: usize,
        heads: usize,
        layers: usize,
        groups: usize,
        linear: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        if heads == 0 || !channels.is_multiple_of(heads) {
            return Err(invalid(
                "unet attention heads",
                format!("{heads} heads do not divide {channels} channels"),
            ));
        }
        let proj = |name: &str| -> Result<Projection> {
            Ok(if linear {
                Projection::Linear(candle_nn::linear(channels, channels, vb.pp(name))?)
            } else {
                Projection::Conv(conv(channels, channels, 1, vb.pp(name))?)
            })
        };
        Ok(Self {
            norm: group_norm(groups, channels, 1e-6, vb.pp("norm"))?,
            proj_in: proj("proj_in")?,
            blocks: (0..layers)
                .map(|i| {
                    TransformerBlock::new(
                        channels,
                        context_dim,
                        heads,
                        vb.pp("transformer_blocks").pp(i),
                    )
                })
                .collect::<Result<Vec<_>>>()?,
            proj_out: proj("proj_out")?,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let normed = self.norm.fwd(x, ctx)?;
        let to_tokens = |t: &Tensor| -> Result<Tensor> {
            profile::scope("permute", t.device(), || {
                Ok(t.permute((0, 2, 3, 1))?.reshape((b, h * w, c))?)
            })
        };
        let mut t = match &self.proj_in {
            Projection::Linear(l) => run_linear("linear_proj", l, &to_tokens(&normed)?, ctx)?,
            Projection::Conv(cv) => to_tokens(&run_conv(cv, &normed, ctx)?)?,
        };
        for block in &self.blocks {
            t = block.forward(&t, context, ctx)?;
        }
        let to_map = |t: &Tensor| -> Result<Tensor> {
            profile::scope("permute", t.device(), || {
                Ok(t.reshape((b, h, w, c))?
                    .permute((0, 3, 1, 2))?
                    .contiguous()?)
            })
        };
        let out = match &self.proj_out {
            Projection::Linear(l) => to_map(&run_linear("linear_proj", l, &t, ctx)?)?,
            Projection::Conv(cv) => run_conv(cv, &to_map(&t)?, ctx)?,
        };
        add(&out, x)
    }
}

#[derive(Debug, Clone)]
struct DownBlock {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<SpatialTransformer>,
    downsample: Option<Downsample>,
}

#[derive(Debug, Clone)]
struct UpBlock {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<SpatialTransformer>,
    upsample: Option<Upsample>,
}

/// Conditioning of one UNet call besides the latents and timestep.
#[derive(Debug, Clone)]
pub struct UNetConditioning<'a> {
    /// Prompt embeddings `[batch, 77, cross_attention_dim]`.
    pub encoder_hidden_states: &'a Tensor,
    /// Pooled text embeddings `[batch, projection_dim]` (SDXL's `text_embeds`).
    pub text_embeds: &'a Tensor,
    /// Micro-conditioning `[batch, 6]`: original size, crop top-left, target size (h, w each).
    pub time_ids: &'a Tensor,
}

/// Options of one UNet call ([`UNet2DConditionModel::forward_with_options`]): what may change
/// from call to call, never held by the model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ForwardOptions {
    /// Every padded convolution pads circularly (seamless tiling, see [`crate::tiling`]).
    pub tiling: bool,
    /// Reference attention: self-attention shared across the batch (see [`crate::reference`]).
    pub shared_attention: Option<SharedAttention>,
}

/// SDXL's UNet.
#[derive(Debug, Clone)]
pub struct UNet2DConditionModel {
    conv_in: Conv,
    time_embedding: TimestepMlp,
    add_embedding: Option<(TimestepMlp, usize)>,
    down: Vec<DownBlock>,
    mid: (ResnetBlock, Vec<SpatialTransformer>, ResnetBlock),
    up: Vec<UpBlock>,
    norm_out: GroupNorm,
    conv_out: Conv,
    config: UNetConfig,
    kernels: KernelOptions,
}

impl UNet2DConditionModel {
    /// Loads `unet/` of an SDXL folder (`variant` picks e.g. `diffusion_pytorch_model.fp16.safetensors`).
    pub fn load(
        configs: &SdxlConfigs,
        variant: Option<&str>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let files = weight_files(
            &configs.dir.join("unet"),
            "diffusion_pytorch_model",
            variant,
        )?;
        Self::new(&configs.unet, load_var_builder(&files, dtype, device)?)
    }

    /// Builds the UNet from weights named like diffusers' (`vb` at the checkpoint root).
    pub fn new(cfg: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        check_supported(cfg)?;
        let n = cfg.block_out_channels.len();
        let ch = &cfg.block_out_channels;
        let groups = cfg.norm_num_groups.unwrap_or(32);
        let eps = cfg.norm_eps;
        let heads = cfg.heads_per_block()?;
        let layers = cfg.layers_per_block.expand(n, "unet layers_per_block")?;
        let tlayers = cfg
            .transformer_layers_per_block
            .expand(n, "unet transformer_layers_per_block")?;
        let context = cfg
            .cross_attention_dim
            .expand(n, "unet cross_attention_dim")?;
        let temb = ch[0] * 4;
        let linear = cfg.use_linear_projection;

        let pad = (cfg.conv_in_kernel.max(1) - 1) / 2;
        let conv_in = Conv::new(
            cfg.in_channels,
            ch[0],
            cfg.conv_in_kernel,
            candle_nn::Conv2dConfig {
                padding: pad,
                ..Default::default()
            },
            vb.pp("conv_in"),
        )?;
        let time_embedding = TimestepMlp::new(ch[0], temb, vb.pp("time_embedding"))?;
        let add_embedding = match cfg.addition_embed_type.as_deref() {
            Some("text_time") => {
                let dim = cfg.addition_time_embed_dim.ok_or_else(|| {
                    invalid("unet config", "text_time needs addition_time_embed_dim")
                })?;
                let input = cfg.projection_class_embeddings_input_dim.ok_or_else(|| {
                    invalid(
                        "unet config",
                        "text_time needs projection_class_embeddings_input_dim",
                    )
                })?;
                Some((TimestepMlp::new(input, temb, vb.pp("add_embedding"))?, dim))
            }
            _ => None,
        };

        let mut down = Vec::with_capacity(n);
        let mut cout = ch[0];
        for (i, kind) in cfg.down_block_types.iter().enumerate() {
            let cin = cout;
            cout = ch[i];
            let bvb = vb.pp("down_blocks").pp(i);
            let cross = kind == "CrossAttnDownBlock2D";
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..layers[i] {
                let input = if j == 0 { cin } else { cout };
                resnets.push(ResnetBlock::new(
                    input,
                    cout,
                    Some(temb),
                    groups,
                    eps,
                    bvb.pp("resnets").pp(j),
                )?);
                if cross {
                    attentions.push(SpatialTransformer::new(
                        cout,
                        context[i],
                        heads[i],
                        tlayers[i],
                        groups,
                        linear,
                        bvb.pp("attentions").pp(j),
                    )?);
                }
            }
            let downsample = if i + 1 < n {
                Some(Downsample::new(
                    cout,
                    cfg.downsample_padding,
                    bvb.pp("downsamplers").pp(0),
                )?)
            } else {
                None
            };
            down.push(DownBlock {
                resnets,
                attentions,
                downsample,
            });
        }

        let top = ch[n - 1];
        let mvb = vb.pp("mid_block");
        let mid = (
            ResnetBlock::new(top, top, Some(temb), groups, eps, mvb.pp("resnets").pp(0))?,
            vec![SpatialTransformer::new(
                top,
                context[n - 1],
                heads[n - 1],
                tlayers[n - 1],
                groups,
                linear,
                mvb.pp("attentions").pp(0),
            )?],
            ResnetBlock::new(top, top, Some(temb), groups, eps, mvb.pp("resnets").pp(1))?,
        );

        let rev = |v: &[usize]| -> Vec<usize> { v.iter().rev().copied().collect() };
        let (rch, rheads, rlayers, rcontext) = (rev(ch), rev(&heads), rev(&layers), rev(&context));
        let rtlayers = rev(&tlayers);
        let mut up = Vec::with_capacity(n);
        let mut out_ch = rch[0];
        for (i, kind) in cfg.up_block_types.iter().enumerate() {
            let prev = out_ch;
            out_ch = rch[i];
            let skip_in = rch[(i + 1).min(n - 1)];
            let bvb = vb.pp("up_blocks").pp(i);
            let cross = kind == "CrossAttnUpBlock2D";
            let count = rlayers[i] + 1;
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..count {
                let res_skip = if j + 1 == count { skip_in } else { out_ch };
                let input = if j == 0 { prev } else { out_ch };
                resnets.push(ResnetBlock::new(
                    input + res_skip,
                    out_ch,
                    Some(temb),
                    groups,
                    eps,
                    bvb.pp("resnets").pp(j),
                )?);
                if cross {
                    attentions.push(SpatialTransformer::new(
                        out_ch,
                        rcontext[i],
                        rheads[i],
                        rtlayers[i],
                        groups,
                        linear,
                        bvb.pp("attentions").pp(j),
                    )?);
                }
            }
            let upsample = if i + 1 < n {
                Some(Upsample::new(out_ch, bvb.pp("upsamplers").pp(0))?)
            } else {
                None
            };
            up.push(UpBlock {
                resnets,
                attentions,
                upsample,
            });
        }

        Ok(Self {
            conv_in,
            time_embedding,
            add_embedding,
            down,
            mid,
            up,
            norm_out: group_norm(groups, ch[0], eps, vb.pp("conv_norm_out"))?,
            conv_out: conv(
                ch[0],
                cfg.out_channels,
                cfg.conv_out_kernel,
                vb.pp("conv_out"),
            )?,
            config: cfg.clone(),
            kernels: KernelOptions::default(),
        })
    }

    /// This UNet computing with `kernels` (builder style, at construction:
    /// `UNet2DConditionModel::new(cfg, vb)?.with_kernel_options(k)`).
    pub fn with_kernel_options(mut self, kernels: KernelOptions) -> Self {
        self.kernels = kernels;
        self
    }

    /// The kernel options it computes with.
    pub fn kernel_options(&self) -> &KernelOptions {
        &self.kernels
    }

    /// The config it was built from.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Predicts noise (or v) for `sample` `[batch, 4, h, w]` at `timestep` (one value for the
    /// whole batch, possibly fractional); zero padding ([`Self::forward_with`] with `tiling`
    /// off).
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: f64,
        cond: &UNetConditioning,
    ) -> Result<Tensor> {
        self.forward_with(sample, timestep, cond, false)
    }

    /// [`Self::forward`]; with `tiling`, every padded convolution pads circularly (seamless
    /// tiling, see [`crate::tiling`]).
    pub fn forward_with(
        &self,
        sample: &Tensor,
        timestep: f64,
        cond: &UNetConditioning,
        tiling: bool,
    ) -> Result<Tensor> {
        let opts = ForwardOptions {
            tiling,
            shared_attention: None,
        };
        self.forward_with_options(sample, timestep, cond, &opts)
    }

    /// [`Self::forward`] with the call's [`ForwardOptions`]: seamless tiling and reference
    /// attention (the batch must split into [`SharedAttention::groups`] equal groups).
    pub fn forward_with_options(
        &self,
        sample: &Tensor,
        timestep: f64,
        cond: &UNetConditioning,
        opts: &ForwardOptions,
    ) -> Result<Tensor> {
        let ctx = &Ctx {
            kernels: self.kernels,
            tiling: opts.tiling,
            share: opts.shared_attention,
        };
        let (b, c, h, w) = sample.dims4()?;
        if let Some(share) = &opts.shared_attention {
            share.check_batch(b)?;
        }
        if c != self.config.in_channels {
            return Err(invalid(
                "latents",
                format!("{c} channels, the UNet takes {}", self.config.in_channels),
            ));
        }
        let ehs_batch = cond.encoder_hidden_states.dim(0)?;
        if ehs_batch != b {
            return Err(invalid(
                "encoder_hidden_states",
                format!("batch {ehs_batch}, the latents have batch {b}"),
            ));
        }
        let dtype = sample.dtype();
        let device = sample.device();
        let ch0 = self.config.block_out_channels[0];
        let t = Tensor::from_vec(vec![timestep as f32; b], b, device)?;
        let t_emb =
            timestep_embedding(&t, ch0, self.config.flip_sin_to_cos, self.config.freq_shift)?
                .to_dtype(dtype)?;
        let mut emb = self.time_embedding.forward(&t_emb)?;
        if let Some((mlp, dim)) = &self.add_embedding {
            let ids = cond.time_ids;
            let (ib, n_ids) = ids.dims2()?;
            if ib != b {
                return Err(invalid(
                    "time_ids",
                    format!("batch {ib}, the latents have batch {b}"),
                ));
            }
            let time = timestep_embedding(
                &ids.flatten_all()?,
                *dim,
                self.config.flip_sin_to_cos,
                self.config.freq_shift,
            )?
            .reshape((b, n_ids * dim))?;
            let add =
                Tensor::cat(&[cond.text_embeds.to_dtype(DType::F32)?, time], 1)?.to_dtype(dtype)?;
            emb = (emb + mlp.forward(&add)?)?;
        }
        let context = cond.encoder_hidden_states.to_dtype(dtype)?;

        let mut x = run_conv(&self.conv_in, sample, ctx)?;
        let mut skips = vec![x.clone()];
        for block in &self.down {
            for (j, resnet) in block.resnets.iter().enumerate() {
                x = resnet.forward(&x, Some(&emb), ctx)?;
                if let Some(attn) = block.attentions.get(j) {
                    x = attn.forward(&x, &context, ctx)?;
                }
                skips.push(x.clone());
            }
            if let Some(d) = &block.downsample {
                x = d.forward(&x, ctx)?;
                skips.push(x.clone());
            }
        }
        x = self.mid.0.forward(&x, Some(&emb), ctx)?;
        for attn in &self.mid.1 {
            x = attn.forward(&x, &context, ctx)?;
        }
        x = self.mid.2.forward(&x, Some(&emb), ctx)?;
        for block in &self.up {
            for (j, resnet) in block.resnets.iter().enumerate() {
                let skip = skips.pop().ok_or_else(|| {
                    invalid(
                        "unet",
                        "skip connections ran out: config and weights disagree",
                    )
                })?;
                let cat = profile::scope("cat", x.device(), || Ok(Tensor::cat(&[&x, &skip], 1)?))?;
                x = resnet.forward(&cat, Some(&emb), ctx)?;
                if let Some(attn) = block.attentions.get(j) {
                    x = attn.forward(&x, &context, ctx)?;
                }
            }
            if let Some(u) = &block.upsample {
                // Upsample to the size of the skip it will meet (handles sizes not divisible by 2^n).
                let size = match skips.last() {
                    Some(s) => Some((s.dim(2)?, s.dim(3)?)),
                    None => None,
                };
                x = u.forward(&x, size, ctx)?;
            }
        }
        let out = run_conv(&self.conv_out, &self.norm_out.fwd_silu(&x, ctx)?, ctx)?;
        debug_assert_eq!(out.dims(), &[b, self.config.out_channels, h, w]);
        Ok(out)
    }
}

fn check_supported(cfg: &UNetConfig) -> Result<()> {
    let n = cfg.block_out_channels.len();
    if n == 0 || cfg.down_block_types.len() != n || cfg.up_block_types.len() != n {
        return Err(invalid(
            "unet config",
            format!(
                "{} channels, {} down blocks, {} up blocks: they must agree",
                n,
                cfg.down_block_types.len(),
                cfg.up_block_types.len()
            ),
        ));
    }
    for t in &cfg.down_block_types {
        if t != "DownBlock2D" && t != "CrossAttnDownBlock2D" {
            return Err(unsupported(
                format!("down block {t}"),
                "SDXL uses DownBlock2D / CrossAttnDownBlock2D",
            ));
        }
    }
    for t in &cfg.up_block_types {
        if t != "UpBlock2D" && t != "CrossAttnUpBlock2D" {
            return Err(unsupported(
                format!("up block {t}"),
                "SDXL uses UpBlock2D / CrossAttnUpBlock2D",
            ));
        }
    }
    if cfg.mid_block_type.as_deref() != Some("UNetMidBlock2DCrossAttn") {
        return Err(unsupported(
            format!("mid block {:?}", cfg.mid_block_type),
            "SDXL uses UNetMidBlock2DCrossAttn",
        ));
    }
    let checks: [(bool, &str); 6] = [
        (cfg.class_embed_type.is_none(), "class_embed_type"),
        (
            cfg.time_cond_proj_dim.is_none(),
            "time_cond_proj_dim (LCM-distilled UNets)",
        ),
        (
            cfg.resnet_time_scale_shift == "default",
            "resnet_time_scale_shift",
        ),
        (
            cfg.time_embedding_type == "positional",
            "time_embedding_type",
        ),
        (!cfg.center_input_sample, "center_input_sample"),
        (
            matches!(cfg.addition_embed_type.as_deref(), None | Some("text_time")),
            "addition_embed_type",
        ),
    ];
    for (ok, name) in checks {
        if !ok {
            return Err(unsupported(format!("unet {name}"), "not implemented yet"));
        }
    }
    if cfg.act_fn != "silu" {
        return Err(unsupported(
            format!("unet act_fn = {}", cfg.act_fn),
            "SDXL uses silu",
        ));
    }
    if matches!(
        &cfg.only_cross_attention,
        crate::config::PerBlock::One(true)
    ) || matches!(&cfg.only_cross_attention, crate::config::PerBlock::Each(v) if v.iter().any(|&b| b))
    {
        return Err(unsupported(
            "unet only_cross_attention",
            "not implemented yet",
        ));
    }
    // `upcast_attention` needs nothing: the reference and flash paths run the softmax in f32.
    Ok(())
}
