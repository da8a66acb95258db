//! Building blocks shared by the UNet and the VAE: ResNet block, down/up-samplers, group norm.

use candle_core::{DType, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module, VarBuilder};

use crate::error::Result;
pub(crate) use crate::fused::GroupNorm;
use crate::fused::KernelOptions;
use crate::reference::SharedAttention;
use crate::{profile, tiling};

/// What one forward call of a network computes with: the network's [`KernelOptions`] (given
/// when it was built), the call's seamless-tiling switch and its reference attention. Passed
/// down to every layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ctx {
    /// The kernels the fused entry points use.
    pub(crate) kernels: KernelOptions,
    /// Circular ("wrap") padding in every padded convolution (see [`crate::tiling`]).
    pub(crate) tiling: bool,
    /// Shared self-attention of the UNet's transformer blocks (see [`crate::reference`]).
    pub(crate) share: Option<SharedAttention>,
}

impl GroupNorm {
    /// [`GroupNorm::forward`] with the call's kernels.
    pub(crate) fn fwd(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.forward(x, &ctx.kernels)
    }

    /// [`GroupNorm::forward_silu`] with the call's kernels.
    pub(crate) fn fwd_silu(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.forward_silu(x, &ctx.kernels)
    }
}

/// A convolution with a lazily built tap-major copy of its weight for the fused CUDA path
/// (see [`crate::fused::conv2d`]).
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    conv: Conv2d,
    tap_major: std::sync::OnceLock<Tensor>,
}

impl Conv {
    /// Loads `weight` `[cout, cin, k, k]` and `bias` with the given padding and stride.
    pub(crate) fn new(
        cin: usize,
        cout: usize,
        k: usize,
        cfg: Conv2dConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            conv: candle_nn::conv2d(cin, cout, k, cfg, vb)?,
            tap_major: std::sync::OnceLock::new(),
        })
    }
}

/// 3x3 (or `k`x`k`) convolution with "same" padding and stride 1.
pub(crate) fn conv(cin: usize, cout: usize, k: usize, vb: VarBuilder) -> Result<Conv> {
    let cfg = Conv2dConfig {
        padding: k / 2,
        ..Default::default()
    };
    Conv::new(cin, cout, k, cfg, vb)
}

/// Group norm that checks the channel count divides into the groups (a clear error, not a panic).
pub(crate) fn group_norm(
    groups: usize,
    channels: usize,
    eps: f64,
    vb: VarBuilder,
) -> Result<GroupNorm> {
    GroupNorm::new(groups, channels, eps, vb)
}

/// Runs a convolution, timed as `conv1x1`/`conv3x3` when profiling. With [`Ctx::tiling`], a
/// padded convolution pads its input circularly instead of with zeros (seamless tiling).
pub(crate) fn run_conv(conv: &Conv, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    run_conv_with(conv, x, None, ctx)
}

/// `residual + conv(x)` (see [`crate::fused::conv2d_residual`]), timed as
/// `conv3x3+residual` (or `conv1x1+residual`) when profiling.
pub(crate) fn run_conv_residual(
    conv: &Conv,
    x: &Tensor,
    residual: &Tensor,
    ctx: &Ctx,
) -> Result<Tensor> {
    run_conv_with(conv, x, Some(residual), ctx)
}

fn run_conv_with(conv: &Conv, x: &Tensor, residual: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
    let name = match (conv.conv.weight().dim(3), residual.is_some()) {
        (Ok(1), false) => "conv1x1",
        (Ok(1), true) => "conv1x1+residual",
        (Ok(3), false) => "conv3x3",
        (Ok(3), true) => "conv3x3+residual",
        (_, false) => "conv",
        (_, true) => "conv+residual",
    };
    let go = |c: &Conv2d, tap: Option<&std::sync::OnceLock<Tensor>>, input: &Tensor| match residual
    {
        Some(r) => crate::fused::conv2d_residual(c, tap, input, r, &ctx.kernels),
        None => crate::fused::conv2d_cached(c, tap, input, &ctx.kernels),
    };
    let cfg = *conv.conv.config();
    if cfg.padding > 0 && ctx.tiling {
        // Seamless tiling: wrap the input, then convolve without padding.
        let padded = tiling::pad_circular(x, cfg.padding)?;
        let unpadded = Conv2d::new(
            conv.conv.weight().clone(),
            conv.conv.bias().cloned(),
            Conv2dConfig { padding: 0, ..cfg },
        );
        return profile::scope(name, x.device(), || go(&unpadded, None, &padded));
    }
    profile::scope(name, x.device(), || {
        go(&conv.conv, Some(&conv.tap_major), x)
    })
}

/// Runs a linear layer, timed under `name` when profiling.
pub(crate) fn run_linear(name: &'static str, l: &Linear, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    profile::scope(name, x.device(), || {
        crate::fused::linear(l, x, &ctx.kernels)
    })
}

/// `a + b`, timed as `add` when profiling.
pub(crate) fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    profile::scope("add", a.device(), || Ok((a + b)?))
}

/// diffusers' `ResnetBlock2D` (default time-scale-shift, output scale 1).
#[derive(Debug, Clone)]
pub(crate) struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl ResnetBlock {
    pub(crate) fn new(
        cin: usize,
        cout: usize,
        temb: Option<usize>,
        groups: usize,
        eps: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm1: group_norm(groups, cin, eps, vb.pp("norm1"))?,
            conv1: conv(cin, cout, 3, vb.pp("conv1"))?,
            time_emb_proj: match temb {
                Some(t) => Some(candle_nn::linear(t, cout, vb.pp("time_emb_proj"))?),
                None => None,
            },
            norm2: group_norm(groups, cout, eps, vb.pp("norm2"))?,
            conv2: conv(cout, cout, 3, vb.pp("conv2"))?,
            shortcut: if cin != cout {
                Some(conv(cin, cout, 1, vb.pp("conv_shortcut"))?)
            } else {
                None
            },
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, temb: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
        let mut h = run_conv(&self.conv1, &self.norm1.fwd_silu(x, ctx)?, ctx)?;
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb) {
            let t = proj.forward(&t.silu()?)?.unsqueeze(2)?.unsqueeze(3)?;
            h = profile::scope("add", x.device(), || Ok(h.broadcast_add(&t)?))?;
        }
        let skip = match &self.shortcut {
            Some(c) => run_conv(c, x, ctx)?,
            None => x.clone(),
        };
        run_conv_residual(&self.conv2, &self.norm2.fwd_silu(&h, ctx)?, &skip, ctx)
    }
}

/// diffusers' `Downsample2D` with a convolution: stride 2, padding `padding`; padding 0 means
/// the VAE's asymmetric zero pad of one pixel on the right and bottom (a circular pad of the
/// first column and row while tiling).
#[derive(Debug, Clone)]
pub(crate) struct Downsample {
    conv: Conv,
    padding: usize,
}

impl Downsample {
    pub(crate) fn new(channels: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding,
            stride: 2,
            ..Default::default()
        };
        Ok(Self {
            conv: Conv::new(channels, channels, 3, cfg, vb.pp("conv"))?,
            padding,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let x = if self.padding == 0 && ctx.tiling {
            let x = tiling::pad_circular_dim(x, 3, 0, 1)?;
            tiling::pad_circular_dim(&x, 2, 0, 1)?
        } else if self.padding == 0 {
            x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?
        } else {
            x.clone()
        };
        run_conv(&self.conv, &x, ctx)
    }
}

/// diffusers' `Upsample2D`: nearest-neighbour resize (2x, or to a given size), then a 3x3 conv.
#[derive(Debug, Clone)]
pub(crate) struct Upsample {
    conv: Conv,
}

impl Upsample {
    pub(crate) fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(channels, channels, 3, vb.pp("conv"))?,
        })
    }

    pub(crate) fn forward(
        &self,
        x: &Tensor,
        size: Option<(usize, usize)>,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (th, tw) = size.unwrap_or((2 * h, 2 * w));
        // Nearest interpolation in f32 for half types (torch upsamples half natively; exact either way).
        let up = profile::scope("upsample", x.device(), || {
            Ok(if x.dtype() == DType::BF16 {
                x.to_dtype(DType::F32)?
                    .upsample_nearest2d(th, tw)?
                    .to_dtype(DType::BF16)?
            } else {
                x.upsample_nearest2d(th, tw)?
            })
        })?;
        run_conv(&self.conv, &up, ctx)
    }
}
