//! Seamless tiling: circular ("wrap") padding in every convolution of one call.
//!
//! With tiling on, each padded convolution of the UNet and the VAE pads its input with the
//! opposite edges (torch's `padding_mode="circular"`) instead of zeros, so the image wraps:
//! its right edge continues its left edge and its bottom edge its top. Tiling is a parameter of
//! each call, never a process or thread setting:
//! [`SdxlPipeline::txt2img`](crate::SdxlPipeline::txt2img) and `img2img` pass
//! [`GenerationParams::tiling`](crate::GenerationParams::tiling) down to the networks; to run
//! the UNet or the VAE directly with wrap padding call
//! [`UNet2DConditionModel::forward_with`](crate::UNet2DConditionModel::forward_with),
//! [`AutoencoderKl::decode_with`](crate::AutoencoderKl::decode_with) or
//! [`AutoencoderKl::encode_with`](crate::AutoencoderKl::encode_with) with `tiling = true`.

use candle_core::Tensor;

use crate::error::{Result, invalid};

/// Pads `x` along `dim` with `before` elements from its end and `after` from its start
/// (circular padding); both must be at most the size of `dim`.
pub fn pad_circular_dim(x: &Tensor, dim: usize, before: usize, after: usize) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let n = x.dim(dim)?;
    if before > n || after > n {
        return Err(invalid(
            "circular padding",
            format!(
                "pad {before}/{after} is larger than dimension {dim} of size {n} (shape {:?})",
                x.dims()
            ),
        ));
    }
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(x.narrow(dim, n - before, before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(x.narrow(dim, 0, after)?);
    }
    Ok(Tensor::cat(&parts, dim)?)
}

/// Pads an NCHW tensor circularly by `p` on every side (W first, then H, as torch does).
pub fn pad_circular(x: &Tensor, p: usize) -> Result<Tensor> {
    if x.rank() != 4 {
        return Err(invalid(
            "circular padding",
            format!("expected an NCHW tensor, got shape {:?}", x.dims()),
        ));
    }
    let x = pad_circular_dim(x, 3, p, p)?;
    pad_circular_dim(&x, 2, p, p)
}
