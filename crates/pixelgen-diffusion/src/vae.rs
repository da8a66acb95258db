//! The VAE (diffusers' `AutoencoderKL`): image <-> latents.
//!
//! [`AutoencoderKl::decode`] and [`AutoencoderKl::encode`] are the raw networks; the pipeline
//! scales latents with [`AutoencoderKl::scale_latents`] / [`AutoencoderKl::unscale_latents`].

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::blocks::{
    Conv, Ctx, Downsample, GroupNorm, ResnetBlock, Upsample, add, conv, group_norm, run_conv,
    run_linear,
};
use crate::config::{SdxlConfigs, VaeConfig};
use crate::error::{Result, invalid, unsupported};
use crate::fused::KernelOptions;
use crate::weights::{load_var_builder, weight_files};

/// The VAE's group norms and ResNets use eps 1e-6 (diffusers' `resnet_eps` for these blocks).
const EPS: f64 = 1e-6;

/// Single-head spatial self-attention of the VAE's mid block.
#[derive(Debug, Clone)]
struct SpatialAttention {
    norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl SpatialAttention {
    fn new(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        // Current diffusers names, or the pre-0.14 ones some checkpoints still carry.
        let (q, k, v, o) = if vb.contains_tensor("to_q.weight") {
            ("to_q", "to_k", "to_v", "to_out.0")
        } else {
            ("query", "key", "value", "proj_attn")
        };
        Ok(Self {
            norm: group_norm(groups, channels, EPS, vb.pp("group_norm"))?,
            q: candle_nn::linear(channels, channels, vb.pp(q))?,
            k: candle_nn::linear(channels, channels, vb.pp(k))?,
            v: candle_nn::linear(channels, channels, vb.pp(v))?,
            out: candle_nn::linear(channels, channels, vb.pp(o))?,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let t = self
            .norm
            .fwd(x, ctx)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = run_linear("linear_qkv", &self.q, &t, ctx)?;
        let k = run_linear("linear_qkv", &self.k, &t, ctx)?;
        let v = run_linear("linear_qkv", &self.v, &t, ctx)?;
        let o = crate::fused::attention(&q, &k, &v, 1, c, &ctx.kernels)?;
        let o = run_linear("linear_out", &self.out, &o, ctx)?;
        let o = o.transpose(1, 2)?.reshape((b, c, h, w))?;
        add(&o, x)
    }
}

#[derive(Debug, Clone)]
struct MidBlock {
    first: ResnetBlock,
    rest: Vec<(Option<SpatialAttention>, ResnetBlock)>,
}

impl MidBlock {
    fn new(channels: usize, groups: usize, attention: bool, vb: VarBuilder) -> Result<Self> {
        let first = ResnetBlock::new(
            channels,
            channels,
            None,
            groups,
            EPS,
            vb.pp("resnets").pp(0),
        )?;
        let attn = if attention {
            Some(SpatialAttention::new(
                channels,
                groups,
                vb.pp("attentions").pp(0),
            )?)
        } else {
            None
        };
        let second = ResnetBlock::new(
            channels,
            channels,
            None,
            groups,
            EPS,
            vb.pp("resnets").pp(1),
        )?;
        Ok(Self {
            first,
            rest: vec![(attn, second)],
        })
    }

    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut x = self.first.forward(x, None, ctx)?;
        for (attn, resnet) in &self.rest {
            if let Some(a) = attn {
                x = a.forward(&x, ctx)?;
            }
            x = resnet.forward(&x, None, ctx)?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
struct Encoder {
    conv_in: Conv,
    blocks: Vec<(Vec<ResnetBlock>, Option<Downsample>)>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv,
}

impl Encoder {
    fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let g = cfg.norm_num_groups;
        let conv_in = conv(cfg.in_channels, ch[0], 3, vb.pp("conv_in"))?;
        let mut blocks = Vec::new();
        let mut cin = ch[0];
        for (i, &cout) in ch.iter().enumerate() {
            let bvb = vb.pp("down_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    let input = if j == 0 { cin } else { cout };
                    ResnetBlock::new(input, cout, None, g, EPS, bvb.pp("resnets").pp(j))
                })
                .collect::<Result<Vec<_>>>()?;
            let down = if i + 1 < ch.len() {
                Some(Downsample::new(cout, 0, bvb.pp("downsamplers").pp(0))?)
            } else {
                None
            };
            blocks.push((resnets, down));
            cin = cout;
        }
        let last = cin;
        Ok(Self {
            conv_in,
            blocks,
            mid: MidBlock::new(last, g, cfg.mid_block_add_attention, vb.pp("mid_block"))?,
            norm_out: group_norm(g, last, EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv(last, 2 * cfg.latent_channels, 3, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut x = run_conv(&self.conv_in, x, ctx)?;
        for (resnets, down) in &self.blocks {
            for r in resnets {
                x = r.forward(&x, None, ctx)?;
            }
            if let Some(d) = down {
                x = d.forward(&x, ctx)?;
            }
        }
        let x = self.mid.forward(&x, ctx)?;
        run_conv(&self.conv_out, &self.norm_out.fwd_silu(&x, ctx)?, ctx)
    }
}

#[derive(Debug, Clone)]
struct Decoder {
    conv_in: Conv,
    mid: MidBlock,
    blocks: Vec<(Vec<ResnetBlock>, Option<Upsample>)>,
    norm_out: GroupNorm,
    conv_out: Conv,
}

impl Decoder {
    fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let reversed: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let g = cfg.norm_num_groups;
        let top = reversed[0];
        let mut blocks = Vec::new();
        let mut cin = top;
        for (i, &cout) in reversed.iter().enumerate() {
            let bvb = vb.pp("up_blocks").pp(i);
            let resnets = (0..=cfg.layers_per_block)
                .map(|j| {
                    let input = if j == 0 { cin } else { cout };
                    ResnetBlock::new(input, cout, None, g, EPS, bvb.pp("resnets").pp(j))
                })
                .collect::<Result<Vec<_>>>()?;
            let up = if i + 1 < reversed.len() {
                Some(Upsample::new(cout, bvb.pp("upsamplers").pp(0))?)
            } else {
                None
            };
            blocks.push((resnets, up));
            cin = cout;
        }
        Ok(Self {
            conv_in: conv(cfg.latent_channels, top, 3, vb.pp("conv_in"))?,
            mid: MidBlock::new(top, g, cfg.mid_block_add_attention, vb.pp("mid_block"))?,
            blocks,
            norm_out: group_norm(g, cin, EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv(cin, cfg.out_channels, 3, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, z: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut x = self.mid.forward(&run_conv(&self.conv_in, z, ctx)?, ctx)?;
        for (resnets, up) in &self.blocks {
            for r in resnets {
                x = r.forward(&x, None, ctx)?;
            }
            if let Some(u) = up {
                x = u.forward(&x, None, ctx)?;
            }
        }
        run_conv(&self.conv_out, &self.norm_out.fwd_silu(&x, ctx)?, ctx)
    }
}

/// The diagonal Gaussian the encoder predicts for each latent.
#[derive(Debug, Clone)]
pub struct LatentDistribution {
    /// Mean, `[batch, latent_channels, h / f, w / f]`.
    pub mean: Tensor,
    /// Log-variance, clamped to -30..=20 as in diffusers.
    pub logvar: Tensor,
}

impl LatentDistribution {
    /// Standard deviation `exp(logvar / 2)`.
    pub fn std(&self) -> Result<Tensor> {
        Ok(self.logvar.affine(0.5, 0.0)?.exp()?)
    }

    /// A sample `mean + std * noise` with caller-supplied unit-normal noise.
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        if noise.shape() != self.mean.shape() {
            return Err(invalid(
                "noise",
                format!(
                    "shape {:?}, the latents are {:?}",
                    noise.dims(),
                    self.mean.dims()
                ),
            ));
        }
        Ok((&self.mean + self.std()?.mul(noise)?)?)
    }
}

/// SDXL's VAE.
#[derive(Debug, Clone)]
pub struct AutoencoderKl {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv>,
    post_quant_conv: Option<Conv>,
    config: VaeConfig,
    dtype: DType,
    kernels: KernelOptions,
}

impl AutoencoderKl {
    /// Builds the VAE from weights named like diffusers' (`vb` at the checkpoint root).
    pub fn new(config: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        if config.block_out_channels.is_empty() {
            return Err(invalid("vae block_out_channels", "is empty"));
        }
        for t in config.down_block_types.iter().chain(&config.up_block_types) {
            if t != "DownEncoderBlock2D" && t != "UpDecoderBlock2D" {
                return Err(unsupported(
                    format!("VAE block type {t}"),
                    "SDXL's VAE uses DownEncoderBlock2D / UpDecoderBlock2D",
                ));
            }
        }
        let lc = config.latent_channels;
        Ok(Self {
            dtype: vb.dtype(),
            encoder: Encoder::new(config, vb.pp("encoder"))?,
            decoder: Decoder::new(config, vb.pp("decoder"))?,
            quant_conv: if config.use_quant_conv {
                Some(conv(2 * lc, 2 * lc, 1, vb.pp("quant_conv"))?)
            } else {
                None
            },
            post_quant_conv: if config.use_post_quant_conv {
                Some(conv(lc, lc, 1, vb.pp("post_quant_conv"))?)
            } else {
                None
            },
            config: config.clone(),
            kernels: KernelOptions::default(),
        })
    }

    /// This VAE computing with `kernels` (builder style, at construction:
    /// `AutoencoderKl::new(cfg, vb)?.with_kernel_options(k)`).
    pub fn with_kernel_options(mut self, kernels: KernelOptions) -> Self {
        self.kernels = kernels;
        self
    }

    /// The kernel options it computes with.
    pub fn kernel_options(&self) -> &KernelOptions {
        &self.kernels
    }

    fn ctx(&self, tiling: bool) -> Ctx {
        Ctx {
            kernels: self.kernels,
            tiling,
            share: None,
        }
    }

    /// Loads `vae/` of an SDXL folder (`variant` picks e.g. `diffusion_pytorch_model.fp16.safetensors`).
    pub fn load(
        configs: &SdxlConfigs,
        variant: Option<&str>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let files = weight_files(&configs.dir.join("vae"), "diffusion_pytorch_model", variant)?;
        Self::new(&configs.vae, load_var_builder(&files, dtype, device)?)
    }

    /// The config it was built from.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The dtype of its weights (inputs are expected in it).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Images in [-1, 1], `[batch, 3, h, w]` with h and w multiples of the scale factor -> latent distribution.
    pub fn encode(&self, image: &Tensor) -> Result<LatentDistribution> {
        self.encode_with(image, false)
    }

    /// [`Self::encode`]; with `tiling`, every padded convolution pads circularly (seamless
    /// tiling, see [`crate::tiling`]).
    pub fn encode_with(&self, image: &Tensor, tiling: bool) -> Result<LatentDistribution> {
        let ctx = &self.ctx(tiling);
        let (_, _, h, w) = image.dims4()?;
        let f = self.config.scale_factor();
        if !h.is_multiple_of(f) || !w.is_multiple_of(f) || h == 0 || w == 0 {
            return Err(invalid(
                "image size",
                format!("{w}x{h} is not a positive multiple of {f}"),
            ));
        }
        let mut moments = self.encoder.forward(image, ctx)?;
        if let Some(q) = &self.quant_conv {
            moments = run_conv(q, &moments, ctx)?;
        }
        let parts = moments.chunk(2, 1)?;
        Ok(LatentDistribution {
            mean: parts[0].clone(),
            logvar: parts[1].clamp(-30f32, 20f32)?,
        })
    }

    /// Unscaled latents `[batch, latent_channels, h, w]` -> images, nominally in [-1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        self.decode_with(latents, false)
    }

    /// [`Self::decode`]; with `tiling`, every padded convolution pads circularly (seamless
    /// tiling, see [`crate::tiling`]).
    pub fn decode_with(&self, latents: &Tensor, tiling: bool) -> Result<Tensor> {
        let ctx = &self.ctx(tiling);
        let (_, c, _, _) = latents.dims4()?;
        if c != self.config.latent_channels {
            return Err(invalid(
                "latents",
                format!(
                    "{c} channels, the VAE takes {}",
                    self.config.latent_channels
                ),
            ));
        }
        let z = match &self.post_quant_conv {
            Some(p) => run_conv(p, latents, ctx)?,
            None => latents.clone(),
        };
        self.decoder.forward(&z, ctx)
    }

    /// Encoder output -> the UNet's latent space (`(x - shift) * scaling_factor`, or with
    /// per-channel `latents_mean` / `latents_std` when the config has them).
    pub fn scale_latents(&self, latents: &Tensor) -> Result<Tensor> {
        let sf = self.config.scaling_factor;
        match (&self.config.latents_mean, &self.config.latents_std) {
            (Some(mean), Some(std)) => {
                let (m, s) = self.channel_stats(mean, std, latents)?;
                Ok(latents
                    .broadcast_sub(&m)?
                    .affine(sf, 0.0)?
                    .broadcast_div(&s)?)
            }
            _ => Ok(latents.affine(sf, -sf * self.config.shift_factor.unwrap_or(0.0))?),
        }
    }

    /// The inverse of [`scale_latents`](Self::scale_latents): UNet latents -> decoder input.
    pub fn unscale_latents(&self, latents: &Tensor) -> Result<Tensor> {
        let sf = self.config.scaling_factor;
        match (&self.config.latents_mean, &self.config.latents_std) {
            (Some(mean), Some(std)) => {
                let (m, s) = self.channel_stats(mean, std, latents)?;
                Ok(latents
                    .broadcast_mul(&s)?
                    .affine(1.0 / sf, 0.0)?
                    .broadcast_add(&m)?)
            }
            _ => Ok(latents.affine(1.0 / sf, self.config.shift_factor.unwrap_or(0.0))?),
        }
    }

    fn channel_stats(&self, mean: &[f64], std: &[f64], like: &Tensor) -> Result<(Tensor, Tensor)> {
        let c = self.config.latent_channels;
        if mean.len() != c || std.len() != c {
            return Err(invalid(
                "vae latents_mean/latents_std",
                format!("need {c} values each"),
            ));
        }
        let to = |v: &[f64]| -> Result<Tensor> {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Ok(Tensor::from_vec(v, (1, c, 1, 1), like.device())?.to_dtype(like.dtype())?)
        };
        Ok((to(mean)?, to(std)?))
    }
}
