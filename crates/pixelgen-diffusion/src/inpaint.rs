//! Masked generation (inpaint and outpaint), as diffusers' `StableDiffusionXLInpaintPipeline`.
//!
//! [`SdxlPipeline::inpaint`] repaints the region of an image that a mask marks (1 = repaint,
//! 0 = keep). Outpainting is the same call on an image extended with any fill (e.g. white) and
//! a mask that marks the new border.
//!
//! The steps, each as diffusers takes them:
//! - **Mask.** With [`InpaintParams::mask_blur`] > 0 the mask is first blurred as diffusers'
//!   `VaeImageProcessor.blur` does (PIL's `GaussianBlur` on the 8-bit mask, see [`blur_mask`]).
//!   It is then binarised at 0.5 (`mask_processor` with `do_binarize`): below 0.5 keeps,
//!   0.5 and above repaints. Because of that threshold the blur does not feather the seam: it
//!   rounds the mask's corners and closes small gaps, as in diffusers. The latent mask is the
//!   pixel mask downsampled by nearest neighbour (`F.interpolate`'s default: the top-left pixel
//!   of each 8x8 cell).
//! - **Start.** The image is VAE-encoded (a sample of its latent distribution) and noised to the
//!   first step of `strength` as img2img; strength 1 starts from pure noise (times the
//!   scheduler's initial sigma), as diffusers does.
//! - **4-channel UNet** (any SDXL): after every step the known region is put back,
//!   `latents = (1 - mask) * known + mask * latents`, with `known` the image latents noised to
//!   the next step's level with the start noise, and the clean image latents after the last step.
//! - **9-channel UNet** (an SDXL inpainting UNet, `in_channels: 9` in its config): the UNet
//!   input is `[latents (4), mask (1), masked-image latents (4)]`, the masked image being the
//!   image with the region to repaint set to 0 (mid grey) in [-1, 1]; no blending.
//!
//! The decoded image is the whole VAE decode: outside the mask it is the image's VAE round trip,
//! close to but not exactly the input pixels (diffusers does the same unless asked to paste
//! the input back). A host that needs the kept pixels exact composites them itself.

use candle_core::{DType, Device, Tensor};
use image::RgbaImage;
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::noise::NoiseSource;
use crate::pipeline::{
    Control, Generated, GenerationParams, Progress, SdxlPipeline, ensure_finite,
};
use crate::scheduler::{self, Scheduler};

/// Largest [`InpaintParams::mask_blur`] radius in pixels.
pub const MAX_MASK_BLUR: f64 = 256.0;

/// Options of one inpaint call, plain serde data for recipes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InpaintParams {
    /// How much of the schedule is re-run inside the mask, in (0, 1]: 1 (the default) starts
    /// from pure noise there, lower values keep more of the image under the mask.
    pub strength: f64,
    /// Gaussian blur radius in pixels applied to the mask before it is binarised, as diffusers'
    /// `mask_processor.blur(mask, blur_factor)` (0, the default, is none; at most
    /// [`MAX_MASK_BLUR`]). With the binarisation this rounds the mask's corners and fills small
    /// holes rather than feathering the seam.
    pub mask_blur: f64,
}

impl Default for InpaintParams {
    fn default() -> Self {
        Self {
            strength: 1.0,
            mask_blur: 0.0,
        }
    }
}

/// What the denoising loop needs for an inpaint run.
pub(crate) struct Masking {
    /// A 9-channel UNet's extra input `[1, 5, h, w]` (mask, masked-image latents), joined to the
    /// scaled latents of every call (repeated over the batch).
    pub(crate) unet_extra: Option<Tensor>,
    /// A 4-channel UNet's blend of the known region after each step.
    pub(crate) blend: Option<Blend>,
}

/// The known region, put back after each step of a 4-channel UNet.
pub(crate) struct Blend {
    /// Latent mask `[1, 1, h, w]`, 1 = repaint.
    mask: Tensor,
    /// `1 - mask`.
    keep: Tensor,
    /// Clean image latents `[1, 4, h, w]`.
    image_latents: Tensor,
    /// The start noise, reused to noise the image latents to each step's level.
    noise: Tensor,
}

impl Blend {
    /// After the step that leads to index `next` (of `total` timesteps): the known region noised
    /// to `next`'s level (clean after the last step) outside the mask, `latents` inside.
    pub(crate) fn apply(
        &self,
        sched: &dyn Scheduler,
        latents: &Tensor,
        next: usize,
        total: usize,
    ) -> Result<Tensor> {
        let known = if next < total {
            sched.add_noise(&self.image_latents, &self.noise, next)?
        } else {
            self.image_latents.clone()
        };
        let known = known.to_dtype(latents.dtype())?;
        Ok((self.keep.broadcast_mul(&known)? + self.mask.broadcast_mul(latents)?)?)
    }
}

impl SdxlPipeline {
    /// Repaints the masked region of `image` (see [`crate::inpaint`] for the semantics, which
    /// follow diffusers' `StableDiffusionXLInpaintPipeline`; a 9-channel inpainting UNet is used
    /// as such). `image` is `[1, 3, height, width]` RGB in [0, 1]; `mask` is `[1, 1, height,
    /// width]` in [0, 1], 1 = repaint ([`mask_from_rgba`] makes one from a PNG). A mask with
    /// nothing to repaint is an error; a full mask is allowed and repaints everything (like
    /// img2img at the same strength, or txt2img at strength 1, conditioned on the image for a
    /// 9-channel UNet).
    ///
    /// `noise` gives, in diffusers' order: the VAE-sample noise of the image (not drawn for a
    /// 9-channel UNet at strength 1), the start noise `[1, 4, h / 8, w / 8]`, the VAE-sample
    /// noise of the masked image (drawn and unused for a 4-channel UNet, as diffusers does),
    /// then any per-step noise. Everything is checked before any network runs.
    pub fn inpaint(
        &self,
        params: &GenerationParams,
        image: &Tensor,
        mask: &Tensor,
        options: &InpaintParams,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Generated> {
        let cfg = self.configs();
        let latent_c = cfg.vae.latent_channels;
        let nine = match cfg.unet.in_channels {
            c if c == latent_c => false,
            c if c == 2 * latent_c + 1 => true,
            c => {
                return Err(invalid(
                    "unet",
                    format!(
                        "takes {c} input channels: inpaint runs a UNet of {latent_c} (any SDXL) \
                         or {} (an inpainting UNet) channels",
                        2 * latent_c + 1
                    ),
                ));
            }
        };
        let f = cfg.vae.scale_factor();
        params.validate(f)?;
        if params.batch != 1 {
            return Err(invalid(
                "batch",
                format!("inpaint takes one image, not a batch of {}", params.batch),
            ));
        }
        check_strength(options.strength)?;
        let start = scheduler::img2img_start(params.steps, options.strength)?;
        check_image(image, params)?;
        let pixel_mask = prepare_mask(mask, params, options.mask_blur)?.to_device(self.device())?;
        let (lh, lw) = (params.height / f, params.width / f);
        let latent_mask = downsample_nearest(&pixel_mask, f)?;
        if !nine && max_value(&latent_mask)? < 0.5 {
            return Err(invalid(
                "mask",
                format!(
                    "marks no {f}x{f} latent cell (each cell follows its top-left pixel): \
                     enlarge the region to repaint"
                ),
            ));
        }
        self.check_memory(params)?;
        let mut sched = self.scheduler(params)?;
        if start >= sched.timesteps().len() {
            return Err(invalid(
                "strength",
                format!(
                    "{} with {} steps leaves no step to run: raise strength or steps",
                    options.strength, params.steps
                ),
            ));
        }

        let device = self.device();
        let vae_dtype = self.vae_dtype();
        let pixels = image
            .to_device(device)?
            .to_dtype(vae_dtype)?
            .affine(2.0, -1.0)?;
        let full = options.strength >= 1.0;
        let image_latents = if !nine || !full {
            Some(self.encode_sample(&pixels, params.tiling, noise)?)
        } else {
            None
        };
        let start_noise = noise
            .normal(&[1, latent_c, lh, lw], device)?
            .to_dtype(self.dtype())?;
        let latents = match &image_latents {
            Some(init) if !full => sched
                .add_noise(&init.to_dtype(self.dtype())?, &start_noise, start)?
                .to_dtype(self.dtype())?,
            _ => start_noise.affine(sched.init_noise_sigma(), 0.0)?,
        };
        let masking = if nine {
            // The masked image: the region to repaint set to 0 (diffusers' image * (mask < 0.5)).
            let keep = pixel_mask.affine(-1.0, 1.0)?.to_dtype(vae_dtype)?;
            let masked = pixels.broadcast_mul(&keep)?;
            let masked_latents = self.encode_sample(&masked, params.tiling, noise)?;
            let extra = Tensor::cat(
                &[
                    &latent_mask.to_dtype(self.dtype())?,
                    &masked_latents.to_dtype(self.dtype())?,
                ],
                1,
            )?;
            Masking {
                unet_extra: Some(extra),
                blend: None,
            }
        } else {
            // diffusers encodes the masked image here whatever the UNet; a 4-channel UNet never
            // uses it, so only its sample noise is drawn, to keep later draws in step.
            let mean_dims = [1, latent_c, lh, lw];
            noise.normal(&mean_dims, device)?;
            let mask = latent_mask.to_dtype(self.dtype())?;
            Masking {
                unet_extra: None,
                blend: Some(Blend {
                    keep: mask.affine(-1.0, 1.0)?,
                    mask,
                    image_latents: image_latents
                        .ok_or_else(|| invalid("image", "was not encoded"))?
                        .to_dtype(self.dtype())?,
                    noise: start_noise,
                }),
            }
        };
        let (latents, truncated_tokens) = self.denoise(
            params,
            sched.as_mut(),
            latents,
            start,
            Some(&masking),
            noise,
            progress,
        )?;
        let image = self.decode_with(&latents, params.tiling)?;
        Ok(Generated {
            latents,
            image,
            truncated_tokens,
        })
    }

    /// Pixels in [-1, 1] -> scaled latents sampled from the VAE's distribution (one draw).
    fn encode_sample(
        &self,
        pixels: &Tensor,
        tiling: bool,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let dist = self.vae().encode_with(pixels, tiling)?;
        let sample_noise = noise
            .normal(dist.mean.dims(), self.device())?
            .to_dtype(self.vae_dtype())?;
        self.vae().scale_latents(&dist.sample(&sample_noise)?)
    }
}

fn check_strength(strength: f64) -> Result<()> {
    if !strength.is_finite() || strength <= 0.0 || strength > 1.0 {
        return Err(invalid(
            "strength",
            format!("{strength}: use a number above 0 and at most 1 (1 repaints from pure noise)"),
        ));
    }
    Ok(())
}

fn check_image(image: &Tensor, p: &GenerationParams) -> Result<()> {
    let ok = matches!(image.dims4(), Ok((1, 3, h, w)) if h == p.height && w == p.width);
    if !ok {
        return Err(invalid(
            "image",
            format!(
                "shape {:?}, expected [1, 3, {}, {}] (one RGB image in [0, 1] at the requested size)",
                image.dims(),
                p.height,
                p.width
            ),
        ));
    }
    ensure_finite(image, "inpaint image", "pass RGB values in [0, 1]")
}

/// The mask as the pipeline uses it: `mask` `[1, 1, height, width]` in [0, 1] checked against
/// `params`' size, blurred with `blur` (pixels, 0 = none; see [`blur_mask`]) and binarised at
/// 0.5 (1 = repaint), f32 on the mask's device. Fails on another shape, values outside [0, 1]
/// or not finite, and a mask with nothing to repaint.
pub fn prepare_mask(mask: &Tensor, params: &GenerationParams, blur: f64) -> Result<Tensor> {
    let ok = matches!(mask.dims4(), Ok((1, 1, h, w)) if h == params.height && w == params.width);
    if !ok {
        return Err(invalid(
            "mask",
            format!(
                "shape {:?}, expected [1, 1, {}, {}] (one channel in [0, 1] at the image's size; \
                 mask_from_rgba scales a PNG mask)",
                mask.dims(),
                params.height,
                params.width
            ),
        ));
    }
    if !blur.is_finite() || !(0.0..=MAX_MASK_BLUR).contains(&blur) {
        return Err(invalid(
            "mask_blur",
            format!("{blur}: use a radius in pixels from 0 (none) to {MAX_MASK_BLUR}"),
        ));
    }
    let values: Vec<f32> = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    if let Some(bad) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(invalid(
            "mask",
            format!("holds {bad}: use values in [0, 1] (1 = repaint, 0 = keep)"),
        ));
    }
    let values = if blur > 0.0 {
        let bytes: Vec<u8> = values.iter().map(|v| (v * 255.0).round() as u8).collect();
        gaussian_blur_u8(&bytes, params.width, params.height, blur as f32)
            .into_iter()
            .map(|b| f32::from(b) / 255.0)
            .collect()
    } else {
        values
    };
    let binary: Vec<f32> = values
        .iter()
        .map(|&v| if v >= 0.5 { 1.0 } else { 0.0 })
        .collect();
    if !binary.contains(&1.0) {
        return Err(invalid(
            "mask",
            "marks nothing to repaint: paint the region to regenerate white (1), or use \
             txt2img/img2img for the whole image",
        ));
    }
    Ok(Tensor::from_vec(
        binary,
        (1, 1, params.height, params.width),
        mask.device(),
    )?)
}

/// `mask` `[1, 1, height, width]` in [0, 1] blurred as diffusers' `VaeImageProcessor.blur(mask,
/// radius)`, i.e. PIL's `ImageFilter.GaussianBlur(radius)`: the mask rounded to 8 bits, then
/// three passes of an extended box blur per axis (PIL's approximation of a Gaussian with that
/// standard deviation), edges extended, 8-bit rounding after each pass. Not binarised.
pub fn blur_mask(mask: &Tensor, radius: f64) -> Result<Tensor> {
    let (_, c, h, w) = mask.dims4()?;
    if c != 1 || mask.dim(0)? != 1 || !radius.is_finite() || radius < 0.0 {
        return Err(invalid(
            "mask",
            "blur_mask takes [1, 1, h, w] and a radius of 0 or more",
        ));
    }
    let values: Vec<f32> = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let bytes: Vec<u8> = values
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let out: Vec<f32> = gaussian_blur_u8(&bytes, w, h, radius as f32)
        .into_iter()
        .map(|b| f32::from(b) / 255.0)
        .collect();
    Ok(Tensor::from_vec(out, (1, 1, h, w), mask.device())?)
}

/// PIL's box radius for a Gaussian of standard deviation `radius` made of `passes` box blurs
/// (Gwosdek et al., "Theoretical foundations of Gaussian convolution by extended box
/// filtering"): an integer radius plus a fractional weight for the two pixels just outside.
fn extended_box_radius(radius: f32, passes: u32) -> f32 {
    let sigma2 = radius * radius / passes as f32;
    let length = (12.0 * f64::from(sigma2) + 1.0).sqrt() as f32;
    let l = ((f64::from(length) - 1.0) / 2.0).floor() as f32;
    let a =
        (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2) / (6.0 * (sigma2 - (l + 1.0) * (l + 1.0)));
    l + a
}

/// One extended box blur of a line in PIL's 8.24 fixed point: the `2r + 1` pixels around each
/// (edges extended) at weight `ww`, the two next ones at `fw`, rounded to 8 bits.
fn box_blur_line(line: &[u8], out: &mut [u8], radius: f32) {
    let r = radius as i64;
    let ww = ((1u32 << 24) as f32 / (radius * 2.0 + 1.0)) as u32;
    let fw = ((1u32 << 24) - (r as u32 * 2 + 1).wrapping_mul(ww)) / 2;
    let last = line.len() as i64 - 1;
    let at = |i: i64| u32::from(line[i.clamp(0, last) as usize]);
    let mut acc: u32 = (-r..=r).map(at).sum();
    for (x, o) in out.iter_mut().enumerate() {
        let x = x as i64;
        if x > 0 {
            acc = acc + at(x + r) - at(x - r - 1);
        }
        let bulk = acc
            .wrapping_mul(ww)
            .wrapping_add((at(x - r - 1) + at(x + r + 1)).wrapping_mul(fw));
        *o = (bulk.wrapping_add(1 << 23) >> 24) as u8;
    }
}

/// PIL's `GaussianBlur(radius)` of an 8-bit `width` x `height` image (row-major): three
/// extended box passes along rows, then three along columns.
fn gaussian_blur_u8(pixels: &[u8], width: usize, height: usize, radius: f32) -> Vec<u8> {
    const PASSES: u32 = 3;
    let mut img = pixels.to_vec();
    if radius == 0.0 || width == 0 || height == 0 {
        return img;
    }
    let box_radius = extended_box_radius(radius, PASSES);
    if box_radius == 0.0 {
        return img;
    }
    let mut line = vec![0u8; width.max(height)];
    let mut out = vec![0u8; width.max(height)];
    for _ in 0..PASSES {
        for y in 0..height {
            let row = &mut img[y * width..(y + 1) * width];
            line[..width].copy_from_slice(row);
            box_blur_line(&line[..width], &mut out[..width], box_radius);
            row.copy_from_slice(&out[..width]);
        }
    }
    for _ in 0..PASSES {
        for x in 0..width {
            for y in 0..height {
                line[y] = img[y * width + x];
            }
            box_blur_line(&line[..height], &mut out[..height], box_radius);
            for y in 0..height {
                img[y * width + x] = out[y];
            }
        }
    }
    img
}

/// `[1, 1, h, w]` -> `[1, 1, h / f, w / f]`, each cell its top-left pixel (PyTorch's
/// `F.interpolate(mode="nearest")` for an integer factor).
fn downsample_nearest(mask: &Tensor, f: usize) -> Result<Tensor> {
    let (_, _, h, w) = mask.dims4()?;
    let (lh, lw) = (h / f, w / f);
    Ok(mask
        .reshape((1, 1, lh, f, lw, f))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((1, 1, lh, lw))?)
}

fn max_value(t: &Tensor) -> Result<f32> {
    Ok(t.to_dtype(DType::F32)?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?)
}

/// The mask value of one RGBA mask pixel, 0 (keep) to 1 (repaint): its grey level (PIL's
/// `convert("L")` luma) over black by its alpha. The pipeline repaints where the (blurred) mask
/// is at least 0.5.
pub fn mask_value(p: [u8; 4]) -> f32 {
    let [r, g, b, a] = p.map(u32::from);
    // PIL's L24 luma in 16.16 fixed point.
    let luma = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    (luma * a) as f32 / (255.0 * 255.0)
}

/// A mask image -> `[1, 1, height, width]` in [0, 1] on `device` for [`SdxlPipeline::inpaint`].
///
/// The convention of A1111 and ComfyUI masks: white repaints, black keeps. Each pixel's grey
/// level is PIL's `convert("L")` (ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B) taken over black
/// by its alpha, so transparent pixels keep too: a white stroke on a transparent layer and a
/// white shape on black both mark their shape. Scaled to `width` x `height` with nearest
/// neighbour, so a pixel-art mask stays crisp; values between 0 and 1 are kept (the pipeline
/// binarises at 0.5, after any blur).
pub fn mask_from_rgba(
    mask: &RgbaImage,
    width: usize,
    height: usize,
    device: &Device,
) -> Result<Tensor> {
    if mask.width() == 0 || mask.height() == 0 || width == 0 || height == 0 {
        return Err(invalid(
            "mask",
            format!(
                "{}x{} to {width}x{height}: a mask needs at least one pixel",
                mask.width(),
                mask.height()
            ),
        ));
    }
    let (w, h) = (
        u32::try_from(width).map_err(|_| invalid("mask", "too wide"))?,
        u32::try_from(height).map_err(|_| invalid("mask", "too tall"))?,
    );
    let scaled = image::imageops::resize(mask, w, h, image::imageops::FilterType::Nearest);
    let values: Vec<f32> = scaled.pixels().map(|p| mask_value(p.0)).collect();
    Ok(Tensor::from_vec(values, (1, 1, height, width), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(w: usize, h: usize) -> GenerationParams {
        GenerationParams {
            width: w,
            height: h,
            ..Default::default()
        }
    }

    #[test]
    fn box_radius_matches_pil() {
        // PIL: sigma2 = 16 / 3, L = sqrt(65) = 8.06, l = 3, a = 7 * (12 - 16) / (6 * (5.33 - 16)).
        let r = extended_box_radius(4.0, 3);
        assert!((r - 3.4375).abs() < 1e-4, "{r}");
    }

    #[test]
    fn blur_of_a_constant_is_the_constant() {
        let img = vec![200u8; 12 * 7];
        assert_eq!(gaussian_blur_u8(&img, 12, 7, 3.0), img);
    }

    #[test]
    fn prepare_mask_binarises_and_rejects_bad_values() {
        let dev = Device::Cpu;
        let p = params(8, 8);
        let mut v = vec![0f32; 64];
        v[9] = 0.5;
        v[10] = 0.49;
        let m = Tensor::from_vec(v.clone(), (1, 1, 8, 8), &dev).unwrap();
        let out: Vec<f32> = prepare_mask(&m, &p, 0.0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!((out[9], out[10], out.iter().sum::<f32>()), (1.0, 0.0, 1.0));
        for bad in [f32::NAN, 1.5, -0.1] {
            v[0] = bad;
            let m = Tensor::from_vec(v.clone(), (1, 1, 8, 8), &dev).unwrap();
            let err = prepare_mask(&m, &p, 0.0).unwrap_err().to_string();
            assert!(err.contains("[0, 1]"), "{err}");
        }
    }

    #[test]
    fn mask_from_rgba_is_white_repaints_over_black() {
        let mut img = RgbaImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgba([255, 255, 255, 255]));
        img.put_pixel(1, 0, image::Rgba([255, 255, 255, 0]));
        let m = mask_from_rgba(&img, 4, 2, &Device::Cpu).unwrap();
        let v: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }
}
