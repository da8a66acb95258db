//! Cheap previews of SDXL latents: a fixed linear map from the 4 latent channels to RGB.

use candle_core::{DType, Tensor};
use image::{Rgb, RgbImage};

use crate::error::{Result, invalid};

/// Latent-to-RGB factors for SDXL's VAE: row `c` is latent channel `c`'s contribution to
/// (R, G, B), for latents in the UNet's (scaled) space; the sum lands roughly in [-1, 1].
///
/// The published least-squares fit used by ComfyUI's fast "Latent2RGB" previews:
/// `comfy/latent_formats.py`, class `SDXL`, `latent_rgb_factors`
/// (<https://github.com/comfyanonymous/ComfyUI>, 2023). Numbers only; the code is ours.
pub const SDXL_LATENT_RGB: [[f32; 3]; 4] = [
    [0.3920, 0.4054, 0.4549],
    [-0.2634, -0.0196, 0.0653],
    [0.0568, 0.1687, -0.0755],
    [-0.3112, -0.2359, -0.2076],
];

/// One latent pixel (4 channels, UNet space) as an sRGB colour: the linear map
/// [`SDXL_LATENT_RGB`], then [-1, 1] -> [0, 255] (clamped, rounded).
pub fn latent_pixel_to_rgb(latent: [f32; 4]) -> [u8; 3] {
    let mut rgb = [0u8; 3];
    for (channel, out) in rgb.iter_mut().enumerate() {
        let v: f32 = latent
            .iter()
            .zip(SDXL_LATENT_RGB.iter())
            .map(|(l, row)| l * row[channel])
            .sum();
        let v = if v.is_finite() { v } else { 0.0 };
        *out = (((v + 1.0) * 0.5).clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    rgb
}

/// A preview of SDXL latents `[1, 4, h, w]` (or `[4, h, w]`; only the first batch item is
/// used) as a `w` x `h` RGB image, one pixel per latent pixel (1/8 of the image size).
///
/// Costs one copy of the latents to the host and 12 multiply-adds per pixel: about 0.2 ms at
/// 128x128 (a 1024x1024 generation), cheap enough for every sampling step.
pub fn latents_to_rgb(latents: &Tensor) -> Result<RgbImage> {
    let bad_shape = || {
        invalid(
            "latents",
            format!(
                "shape {:?} cannot be previewed: expected [1, 4, h, w] or [4, h, w]",
                latents.dims()
            ),
        )
    };
    let chw = match latents.dims().len() {
        4 => latents.get(0)?,
        3 => latents.clone(),
        _ => return Err(bad_shape()),
    };
    let (c, h, w) = chw.dims3()?;
    if c != 4 || h == 0 || w == 0 {
        return Err(bad_shape());
    }
    let values: Vec<f32> = chw
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())?;
    let plane = h * w;
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| bad_shape())?,
        u32::try_from(h).map_err(|_| bad_shape())?,
    );
    let mut out = RgbImage::new(w32, h32);
    for (i, px) in out.pixels_mut().enumerate() {
        let at = |ch: usize| values.get(ch * plane + i).copied().unwrap_or(0.0);
        *px = Rgb(latent_pixel_to_rgb([at(0), at(1), at(2), at(3)]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn known_latents_map_to_known_colours() {
        // Zero latents are mid grey: (0 + 1) / 2 * 255 = 127.5 -> 128.
        assert_eq!(latent_pixel_to_rgb([0.0; 4]), [128, 128, 128]);
        // Channel 0 alone at 0.8: 127.5 * (1 + 0.8 * factor), rounded, for R, G, B.
        // R: 127.5 * 1.31360 = 167.48; G: 127.5 * 1.32432 = 168.85; B: 127.5 * 1.36392 = 173.90.
        assert_eq!(latent_pixel_to_rgb([0.8, 0.0, 0.0, 0.0]), [167, 169, 174]);
        // Channel 3 strongly positive darkens every channel to black (clamped).
        assert_eq!(latent_pixel_to_rgb([0.0, 0.0, 0.0, 10.0]), [0, 0, 0]);
        // Channel 1 negative warms the colour: R up, B down.
        // R: 127.5 * (1 + 0.2634) = 161.08; G: 127.5 * 1.0196 = 130.0; B: 127.5 * 0.9347 = 119.17.
        assert_eq!(latent_pixel_to_rgb([0.0, -1.0, 0.0, 0.0]), [161, 130, 119]);
        assert_eq!(
            latent_pixel_to_rgb([f32::NAN, 0.0, 0.0, 0.0]),
            [128, 128, 128]
        );
    }

    #[test]
    fn preview_has_latent_resolution_and_pixel_positions() {
        // [1, 4, 3, 5]: zero except channel 0 = 0.8 at row 2, column 4.
        let mut v = vec![0f32; 4 * 3 * 5];
        v[2 * 5 + 4] = 0.8;
        let t = Tensor::from_vec(v, (1, 4, 3, 5), &Device::Cpu).unwrap();
        let img = latents_to_rgb(&t).unwrap();
        assert_eq!(img.dimensions(), (5, 3));
        assert_eq!(img.get_pixel(4, 2).0, [167, 169, 174]);
        assert_eq!(img.get_pixel(0, 0).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(4, 1).0, [128, 128, 128]);
        // f16 latents (CUDA runs) preview the same.
        let half = t.to_dtype(DType::F16).unwrap();
        assert_eq!(latents_to_rgb(&half).unwrap(), img);
        // Unbatched input works; wrong channel counts and ranks are errors.
        assert_eq!(latents_to_rgb(&t.get(0).unwrap()).unwrap(), img);
        let three = Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(latents_to_rgb(&three).is_err());
        let flat = Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap();
        assert!(latents_to_rgb(&flat).is_err());
    }
}
