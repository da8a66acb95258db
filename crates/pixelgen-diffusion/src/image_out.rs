//! Decoded tensors to `image` buffers and PNG files.

use candle_core::{DType, Tensor};
use image::RgbaImage;

use crate::error::{Result, invalid};
use crate::pipeline::ensure_finite;

/// An RGBA image -> `[1, 3, height, width]` RGB in [0, 1] (f32) on `device`, the input of
/// img2img or a set reference: scaled to `width` x `height` (nearest neighbour, so pixel
/// art stays crisp) and transparency composited over `background`.
pub fn rgba_to_tensor(
    image: &RgbaImage,
    width: usize,
    height: usize,
    background: [u8; 3],
    device: &candle_core::Device,
) -> Result<Tensor> {
    if image.width() == 0 || image.height() == 0 || width == 0 || height == 0 {
        return Err(invalid(
            "image",
            format!(
                "{}x{} to {width}x{height}: an image needs at least one pixel",
                image.width(),
                image.height()
            ),
        ));
    }
    let (w, h) = (
        u32::try_from(width).map_err(|_| invalid("image", "too wide"))?,
        u32::try_from(height).map_err(|_| invalid("image", "too tall"))?,
    );
    let scaled = image::imageops::resize(image, w, h, image::imageops::FilterType::Nearest);
    let mut planes = vec![0f32; 3 * width * height];
    for (i, p) in scaled.pixels().enumerate() {
        let a = f32::from(p.0[3]) / 255.0;
        for c in 0..3 {
            let v = f32::from(p.0[c]) * a + f32::from(background[c]) * (1.0 - a);
            planes[c * width * height + i] = v / 255.0;
        }
    }
    Ok(Tensor::from_vec(planes, (1, 3, height, width), device)?)
}

/// `[batch, 3, h, w]` (or `[3, h, w]`) RGB in [0, 1] -> one opaque RGBA image per batch item.
/// Values are clamped and rounded; NaN or infinite values are an error, never a black image.
pub fn to_rgba_images(image: &Tensor) -> Result<Vec<RgbaImage>> {
    let image = match image.rank() {
        3 => image.unsqueeze(0)?,
        4 => image.clone(),
        r => {
            return Err(invalid(
                "image",
                format!(
                    "rank {r} tensor {:?}, expected [batch, 3, h, w]",
                    image.dims()
                ),
            ));
        }
    };
    let (b, c, h, w) = image.dims4()?;
    if c != 3 || h == 0 || w == 0 {
        return Err(invalid(
            "image",
            format!("shape {:?}, expected [batch, 3, h, w] RGB", image.dims()),
        ));
    }
    ensure_finite(
        &image,
        "image",
        "the model produced NaN/inf: see the dtype advice above",
    )?;
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| invalid("image", "too wide"))?,
        u32::try_from(h).map_err(|_| invalid("image", "too tall"))?,
    );
    // [b, h, w, 3] u8 on the host.
    let bytes: Vec<u8> = image
        .to_device(&candle_core::Device::Cpu)?
        .to_dtype(DType::F32)?
        .clamp(0f32, 1f32)?
        .affine(255.0, 0.5)?
        .floor()?
        .permute((0, 2, 3, 1))?
        .flatten_all()?
        .to_dtype(DType::U8)?
        .to_vec1()?;
    let plane = h * w * 3;
    (0..b)
        .map(|i| {
            let rgb = &bytes[i * plane..(i + 1) * plane];
            let mut rgba = Vec::with_capacity(h * w * 4);
            for px in rgb.chunks_exact(3) {
                rgba.extend_from_slice(px);
                rgba.push(255);
            }
            RgbaImage::from_raw(w32, h32, rgba)
                .ok_or_else(|| invalid("image", "buffer size does not match its dimensions"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::error::DiffusionError;

    #[test]
    fn converts_rounds_and_clamps_each_channel() {
        // One 2x1 image: pixel 0 = (0, 0.5, 1), pixel 1 = (-1, 2, 0.25): channel-major input.
        let t = Tensor::from_vec(
            vec![0f32, -1.0, 0.5, 2.0, 1.0, 0.25],
            (1, 3, 1, 2),
            &Device::Cpu,
        )
        .unwrap();
        let imgs = to_rgba_images(&t).unwrap();
        assert_eq!(imgs.len(), 1);
        assert_eq!(imgs[0].dimensions(), (2, 1));
        assert_eq!(imgs[0].get_pixel(0, 0).0, [0, 128, 255, 255]);
        assert_eq!(imgs[0].get_pixel(1, 0).0, [0, 255, 64, 255]);
    }

    #[test]
    fn nan_and_bad_shapes_are_errors() {
        let nan = Tensor::from_vec(vec![f32::NAN; 3], (1, 3, 1, 1), &Device::Cpu).unwrap();
        let err = to_rgba_images(&nan).unwrap_err();
        assert!(
            matches!(err, DiffusionError::NonFinite { count: 3, .. }),
            "{err}"
        );
        let gray = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(to_rgba_images(&gray).is_err());
        let flat = Tensor::zeros(12, DType::F32, &Device::Cpu).unwrap();
        assert!(to_rgba_images(&flat).is_err());
    }
}
