//! `pixelgen pixelize`: an AI "pixel art" image to true pixel art (no model needed).

use std::path::PathBuf;

use image::RgbaImage;
use pixelgen_pixel::prelude::*;
use pixelgen_pixel::write;

use crate::Result;

/// Turn an AI-made "pixel art" image into true, palette-clean pixel art.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Turn an AI-made \"pixel art\" image into true, palette-clean pixel art.\n\n\
        Detects the pixel grid (cell size and offset), downscales to the true resolution with \
        one clean colour per cell, then optionally reduces colours (k-means in OKLab), maps to \
        a palette, dithers, removes the background, outlines and places the sprite on a \
        canvas. Only PNG is written; every output is checked before any work, and each file is \
        written atomically (a crash leaves the old file or none).",
    after_help = "Examples:\n  \
        pixelgen pixelize potion_ai.png potion.png --transparent --colors auto\n  \
        pixelgen pixelize in.png out.png --palette pico-8 --dither bayer4 --canvas 32x32\n  \
        pixelgen pixelize in.png out.png --cell 12 --preview before_after.png"
)]
pub struct Args {
    /// Input image (PNG).
    pub input: PathBuf,
    /// Output PNG at the true resolution (only `.png` is written; its folder is created).
    pub output: PathBuf,
    /// Cell size in source pixels, `N` or `WxH` (default: detected).
    #[arg(long, value_name = "N|WxH")]
    pub cell: Option<String>,
    /// Reduce to N colours (k-means in OKLab), or `auto`.
    #[arg(long, value_name = "N|auto")]
    pub colors: Option<String>,
    /// Map to a palette: a built-in name (pico-8, nes, gb-dmg, endesga-32, sweetie-16, 1bit, ...)
    /// or a .gpl / .hex / .pal / .png file.
    #[arg(long, value_name = "NAME|FILE")]
    pub palette: Option<String>,
    /// Dithering: none, bayer2, bayer4, bayer8, floyd-steinberg.
    #[arg(long, default_value = "none")]
    pub dither: String,
    /// Remove the background (flood fill from the border) to transparency.
    #[arg(long)]
    pub transparent: bool,
    /// Colour key to remove as background (hex, e.g. ff00ff); implies --transparent.
    #[arg(long, value_name = "HEX")]
    pub key: Option<String>,
    /// Draw a 1-px outer outline in this colour (hex, e.g. 1a1c2c).
    #[arg(long, value_name = "HEX")]
    pub outline: Option<String>,
    /// Remove isolated stray pixels.
    #[arg(long)]
    pub despeckle: bool,
    /// Trim and centre the result on an exact canvas, `WxH` (e.g. 32x32).
    #[arg(long, value_name = "WxH")]
    pub canvas: Option<String>,
    /// When no grid is found, resample to this size (`WxH`) instead of failing.
    #[arg(long, value_name = "WxH")]
    pub fallback: Option<String>,
    /// Seed for colour reduction (same seed, same result).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write a before/after picture here (a `.png`).
    #[arg(long, value_name = "PNG")]
    pub preview: Option<PathBuf>,
}

/// Runs `pixelgen pixelize`.
pub fn run(args: &Args) -> Result<()> {
    // Every output is checked before any work or write: a bad `--preview` path must not
    // fail after the main output was written. Only PNG is written.
    for path in std::iter::once(&args.output).chain(&args.preview) {
        write::check_output(path)?;
    }
    let input = image::open(&args.input)
        .map_err(|e| format!("cannot read {}: {e}", args.input.display()))?
        .to_rgba8();
    let opts = options(args)?;
    let out = pixelize(&input, &opts)?;
    let (w, h) = out.image.dimensions();
    match &out.grid {
        Some(g) if !out.fell_back => println!(
            "grid: cell {:.2}x{:.2} px, offset ({:.1}, {:.1}), confidence {:.2}",
            g.x.cell, g.y.cell, g.x.offset, g.y.offset, g.confidence
        ),
        _ => println!("grid: none found, resampled to the fallback size"),
    }
    println!(
        "{}x{} -> {w}x{h}, {} colours",
        input.width(),
        input.height(),
        out.palette.len()
    );
    let preview = args
        .preview
        .as_ref()
        .map(|p| (p, before_after(&input, &out.image)));
    for (path, image) in std::iter::once((&args.output, &out.image))
        .chain(preview.as_ref().map(|(p, img)| (*p, img)))
    {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Temporary files of a run killed mid-write (best effort).
            let _ = write::remove_stale_temps(dir);
        }
        // Encoded in memory, then written atomically (temp file, fsync, rename).
        write::save_png(path, image)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Parses `N` or `WxH` (`what` names the option in the error).
pub fn pair<T: std::str::FromStr + Copy>(s: &str, what: &str) -> Result<(T, T)> {
    let parse = |v: &str| {
        v.trim()
            .parse::<T>()
            .map_err(|_| format!("--{what}: `{s}` is not `N` or `WxH`"))
    };
    Ok(match s.split_once(['x', 'X']) {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => parse(s).map(|v| (v, v))?,
    })
}

/// Parses a hex colour such as `ff00ff` or `#1a1c2c`.
fn hex(s: &str, what: &str) -> Result<[u8; 3]> {
    let t = s.trim_start_matches('#');
    let v = u32::from_str_radix(t, 16).ok().filter(|_| t.len() == 6);
    Ok(v.map(|v| [(v >> 16) as u8, (v >> 8) as u8, v as u8])
        .ok_or_else(|| format!("--{what}: `{s}` is not a colour like ff00ff"))?)
}

/// `--colors N|auto` as a colour count.
pub fn color_count(s: &str) -> Result<ColorCount> {
    Ok(match s {
        "auto" => ColorCount::Auto,
        n => ColorCount::Fixed(
            n.parse()
                .map_err(|_| format!("--colors: `{n}` is not a number or `auto`"))?,
        ),
    })
}

fn options(args: &Args) -> Result<PixelOptions> {
    let mut o = PixelOptions::default();
    if let Some(c) = &args.cell {
        let (w, h) = pair::<f32>(c, "cell")?;
        (o.grid.cell_width, o.grid.cell_height) = (Some(w), Some(h));
    }
    if let Some(f) = &args.fallback {
        o.grid.fallback_size = Some(pair::<u32>(f, "fallback")?);
    }
    o.colors = args.colors.as_deref().map(color_count).transpose()?;
    if let Some(p) = &args.palette {
        o.palette = Some(Palette::resolve(p)?);
    }
    o.dither = args.dither.parse()?;
    o.seed = args.seed;
    if args.transparent || args.key.is_some() {
        let mut bg = BackgroundOptions::default();
        if let Some(k) = &args.key {
            bg.key = Some(hex(k, "key")?);
        }
        o.background = Some(bg);
    }
    if let Some(c) = &args.outline {
        let [r, g, b] = hex(c, "outline")?;
        o.outline = Some(OutlineOptions {
            color: [r, g, b, 255],
            ..OutlineOptions::default()
        });
    }
    o.remove_strays = args.despeckle;
    if let Some(c) = &args.canvas {
        let (w, h) = pair::<u32>(c, "canvas")?;
        o.canvas = Some(Canvas {
            width: w,
            height: h,
            ..Canvas::default()
        });
    }
    Ok(o)
}

/// The input scaled to 256 px high next to the result scaled (nearest) to the same height,
/// on a checkerboard so transparency shows.
fn before_after(input: &RgbaImage, out: &RgbaImage) -> RgbaImage {
    use image::imageops::{FilterType, resize};
    let h = 256u32;
    let scale = |img: &RgbaImage, f| {
        let w = (img.width() as u64 * h as u64 / img.height().max(1) as u64).max(1) as u32;
        resize(img, w, h, f)
    };
    let (a, b) = (
        scale(input, FilterType::Triangle),
        scale(out, FilterType::Nearest),
    );
    let gap = 16;
    let mut canvas = RgbaImage::from_pixel(
        a.width() + gap + b.width(),
        h,
        image::Rgba([40, 40, 48, 255]),
    );
    for y in 0..h {
        for x in 0..b.width() {
            let c = if ((x / 16) + (y / 16)) % 2 == 0 {
                200
            } else {
                160
            };
            canvas.put_pixel(a.width() + gap + x, y, image::Rgba([c, c, c, 255]));
        }
    }
    image::imageops::overlay(&mut canvas, &a, 0, 0);
    image::imageops::overlay(&mut canvas, &b, (a.width() + gap) as i64, 0);
    canvas
}
