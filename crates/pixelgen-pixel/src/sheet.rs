//! Sprite sheets: pack frames into a grid image and describe it with Aseprite-compatible JSON.
//!
//! [`pack`] lays frames out row-major on a regular grid (tile = largest frame, optional
//! spacing, outer margin and 1-px edge extrusion). The resulting [`SheetLayout`] keeps the
//! grid facts a game engine needs explicit: in Bevy,
//! `TextureAtlasLayout::from_grid(UVec2::new(tile_width, tile_height), columns, rows,
//! Some(UVec2::splat(padding)), Some(UVec2::splat(margin)))` gives atlas index `i` for frame
//! `i` of a packed sheet (see [`SheetLayout::grid_index`] for imported ones).
//!
//! [`SheetLayout::to_aseprite_json`] writes the JSON Aseprite's exporter writes (`json-hash`
//! or `json-array`), plus the grid under `meta.pixelgenGrid`; [`SheetLayout::from_aseprite_json`]
//! reads both forms back, including uniform-grid sheets exported by Aseprite itself.

pub use crate::cleanup::Anchor;
use std::fmt;
use std::path::Path;

use image::RgbaImage;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::{PixelError, Result};

/// Largest sheet side [`pack`] accepts, in pixels (the common GPU texture limit is 8192–16384).
pub const MAX_SHEET_SIDE: u32 = 16384;

/// Frame duration used by [`Frame::new`], in milliseconds (Aseprite's default too).
pub const DEFAULT_DURATION_MS: u32 = 100;

/// The `meta.app` value written to sheet JSON.
pub const APP_URL: &str = "https://github.com/dgx-pixels/dgx-pixels";

/// Key under `meta` that holds the grid facts in sheet JSON.
pub const GRID_META_KEY: &str = "pixelgenGrid";

/// One animation frame to pack: its pixels, how long it shows and an optional unique name.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The frame's pixels.
    pub image: RgbaImage,
    /// How long the frame shows, in milliseconds (at least 1).
    pub duration_ms: u32,
    /// Name used as the frame's `filename` in JSON; `frame {index}` when `None`.
    pub name: Option<String>,
}

impl Frame {
    /// A frame showing for [`DEFAULT_DURATION_MS`], without a name.
    pub fn new(image: RgbaImage) -> Self {
        Self {
            image,
            duration_ms: DEFAULT_DURATION_MS,
            name: None,
        }
    }

    /// Sets the duration in milliseconds.
    pub fn with_duration(mut self, duration_ms: u32) -> Self {
        self.duration_ms = duration_ms;
        self
    }

    /// Sets the name written as the frame's `filename`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Playback direction of an animation tag; names match Aseprite's `direction` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// `from`, `from+1`, ..., `to`.
    #[default]
    Forward,
    /// `to`, `to-1`, ..., `from`.
    Reverse,
    /// Forward then back, without repeating the end frames.
    Pingpong,
    /// Reverse then forward, without repeating the end frames.
    PingpongReverse,
}

/// A named range of frames (inclusive), like Aseprite's `frameTags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameTag {
    /// Animation name, e.g. `walk`.
    pub name: String,
    /// First frame index (0-based, inclusive).
    pub from: u32,
    /// Last frame index (inclusive).
    pub to: u32,
    /// Playback direction.
    #[serde(default)]
    pub direction: Direction,
    /// How many times to play (Aseprite 1.3 `repeat`); `None` loops forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
}

impl FrameTag {
    /// A tag over `from..=to` played in `direction`, looping forever.
    pub fn new(name: impl Into<String>, from: u32, to: u32, direction: Direction) -> Self {
        Self {
            name: name.into(),
            from,
            to,
            direction,
            repeat: None,
        }
    }

    /// Frame indices of one play-through, in order (`pingpong` over 0..=3 is 0 1 2 3 2 1).
    pub fn frame_sequence(&self) -> Vec<u32> {
        let (lo, hi) = (self.from.min(self.to), self.from.max(self.to));
        let up: Vec<u32> = (lo..=hi).collect();
        let down: Vec<u32> = (lo..=hi).rev().collect();
        let inner = |v: &[u32]| -> Vec<u32> {
            // The way back skips both end frames.
            v.iter()
                .skip(1)
                .take(v.len().saturating_sub(2))
                .copied()
                .collect()
        };
        match self.direction {
            Direction::Forward => up,
            Direction::Reverse => down,
            Direction::Pingpong => [up.clone(), inner(&down)].concat(),
            Direction::PingpongReverse => [down.clone(), inner(&up)].concat(),
        }
    }
}

/// How [`pack`] lays frames out. Plain data, so recipes can hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SheetOptions {
    /// Columns in the grid; `None` picks a near-square grid (`ceil(sqrt(n))`).
    pub columns: Option<u32>,
    /// Transparent pixels between neighbouring cells (at least 2 with `extrude`).
    pub padding: u32,
    /// Transparent pixels around the whole grid (at least 1 with `extrude`).
    pub margin: u32,
    /// Repeat each cell's edge pixels 1 px outwards into the padding (stops sampling seams).
    pub extrude: bool,
    /// Where a frame smaller than the tile sits in its cell.
    pub anchor: Anchor,
    /// Refuse frames of different sizes instead of anchoring them in the largest tile.
    pub require_same_size: bool,
    /// Animation tags written as `frameTags`.
    pub tags: Vec<FrameTag>,
}

impl Default for SheetOptions {
    fn default() -> Self {
        Self {
            columns: None,
            padding: 0,
            margin: 0,
            extrude: false,
            anchor: Anchor::Center,
            require_same_size: false,
            tags: Vec::new(),
        }
    }
}

/// A rectangle in pixels; serialises as Aseprite's `{x, y, w, h}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FrameRect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl FrameRect {
    /// A rectangle from its corner and size.
    pub const fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Self { x, y, w, h }
    }
}

/// Where one frame lives in the sheet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetFrame {
    /// Unique frame name (the JSON `filename`).
    pub name: String,
    /// The frame's cell in the sheet: tile-sized, what a grid atlas samples.
    pub rect: FrameRect,
    /// Where the frame's own pixels sit inside the cell (Aseprite's `spriteSourceSize`).
    pub source: FrameRect,
    /// How long the frame shows, in milliseconds.
    pub duration_ms: u32,
}

impl SheetFrame {
    /// The frame's own pixels in sheet coordinates (Aseprite's `frame`).
    pub fn pixel_rect(&self) -> FrameRect {
        FrameRect::new(
            self.rect.x.saturating_add(self.source.x),
            self.rect.y.saturating_add(self.source.y),
            self.source.w,
            self.source.h,
        )
    }

    /// Whether the frame is smaller than its cell (Aseprite's `trimmed`).
    pub fn trimmed(&self) -> bool {
        self.source != FrameRect::new(0, 0, self.rect.w, self.rect.h)
    }
}

/// The grid a sheet uses and where each frame is: everything a game engine needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetLayout {
    /// Cell width in pixels (the widest frame).
    pub tile_width: u32,
    /// Cell height in pixels (the tallest frame).
    pub tile_height: u32,
    /// Cells per row.
    pub columns: u32,
    /// Rows of cells.
    pub rows: u32,
    /// Pixels between neighbouring cells (Bevy's `padding`).
    pub padding: u32,
    /// Pixels before the first cell, left and top (Bevy's `offset`).
    pub margin: u32,
    /// Whether cell edges were extruded 1 px into the padding.
    pub extrude: bool,
    /// Frames in animation order.
    pub frames: Vec<SheetFrame>,
    /// Animation tags.
    pub tags: Vec<FrameTag>,
}

/// A packed sheet: the image and its layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    /// The sheet pixels (transparent outside the frames and extrusion).
    pub image: RgbaImage,
    /// Grid and frame placement.
    pub layout: SheetLayout,
}

/// Which of Aseprite's two JSON shapes to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonForm {
    /// `--format json-array`: `frames` is an array of objects with a `filename`.
    Array,
    /// `--format json-hash` (Aseprite's default): `frames` is an object keyed by filename.
    #[default]
    Hash,
}

fn sheet_err(message: impl Into<String>) -> PixelError {
    PixelError::Sheet(message.into())
}

/// Smallest `c` with `c * c >= n`.
fn near_square_columns(n: u32) -> u32 {
    let mut c = (f64::from(n).sqrt()) as u32;
    while u64::from(c) * u64::from(c) < u64::from(n) {
        c += 1;
    }
    c.max(1)
}

/// Pixels needed for `count` cells of `tile` with `padding` between and `margin` around.
fn span(count: u32, tile: u32, padding: u32, margin: u32) -> u64 {
    (2 * u64::from(margin))
        .saturating_add(u64::from(count) * u64::from(tile))
        .saturating_add(u64::from(count.saturating_sub(1)) * u64::from(padding))
}

/// Packs `frames` row-major into a grid sheet.
///
/// The tile is the largest frame width x height; smaller frames sit per `opts.anchor`.
/// Errors: no frames, an empty frame, a zero duration, duplicate names, sizes that differ
/// under `require_same_size`, zero columns, a sheet side over [`MAX_SHEET_SIDE`], `extrude`
/// without room (padding < 2 or margin < 1), or a tag outside the frames.
pub fn pack(frames: &[Frame], opts: &SheetOptions) -> Result<Sheet> {
    if frames.is_empty() {
        return Err(sheet_err(
            "no frames to pack: give at least one frame image",
        ));
    }
    let n = u32::try_from(frames.len())
        .map_err(|_| sheet_err(format!("too many frames ({})", frames.len())))?;
    let first = &frames[0].image;
    for (i, f) in frames.iter().enumerate() {
        let (w, h) = f.image.dimensions();
        if w == 0 || h == 0 {
            return Err(sheet_err(format!(
                "frame {i} is empty ({w}x{h}): every frame needs at least one pixel"
            )));
        }
        if f.duration_ms == 0 {
            return Err(sheet_err(format!(
                "frame {i} has duration 0 ms: give at least 1 ms (the usual default is {DEFAULT_DURATION_MS})"
            )));
        }
        if opts.require_same_size && f.image.dimensions() != first.dimensions() {
            return Err(sheet_err(format!(
                "frame {i} is {w}x{h} but frame 0 is {}x{}: all frames must be the same size \
                 (or turn off require_same_size to anchor them in the largest tile)",
                first.width(),
                first.height()
            )));
        }
    }
    let tile_width = frames.iter().map(|f| f.image.width()).max().unwrap_or(1);
    let tile_height = frames.iter().map(|f| f.image.height()).max().unwrap_or(1);
    let mut layout = SheetLayout::grid(opts, n, (tile_width, tile_height))?;
    let (sheet_w, sheet_h) = layout.sheet_size();
    let columns = layout.columns;
    layout.frames.clear();
    for (i, f) in frames.iter().enumerate() {
        let (w, h) = f.image.dimensions();
        let (sx, sy) = opts.anchor.place((tile_width, tile_height), (w, h));
        let index = i as u32;
        layout.frames.push(SheetFrame {
            name: f.name.clone().unwrap_or_else(|| format!("frame {i}")),
            rect: layout.cell_rect(index % columns, index / columns),
            source: FrameRect::new(sx, sy, w, h),
            duration_ms: f.duration_ms,
        });
    }
    layout.validate()?;

    let mut buf = vec![0u8; sheet_w as usize * sheet_h as usize * 4];
    let stride = sheet_w as usize * 4;
    for (f, sf) in frames.iter().zip(&layout.frames) {
        let dst = sf.pixel_rect();
        let row_bytes = dst.w as usize * 4;
        for (y, src_row) in f.image.as_raw().chunks_exact(row_bytes).enumerate() {
            let start = (dst.y as usize + y) * stride + dst.x as usize * 4;
            buf[start..start + row_bytes].copy_from_slice(src_row);
        }
    }
    if opts.extrude {
        for sf in &layout.frames {
            extrude_cell(&mut buf, stride, sf.rect);
        }
    }
    let image = RgbaImage::from_raw(sheet_w, sheet_h, buf)
        .ok_or_else(|| sheet_err("internal error: sheet buffer size mismatch"))?;
    Ok(Sheet { image, layout })
}

/// Copies the cell's edge pixels one pixel outwards (corners included).
/// The caller guarantees a free 1-px ring around `cell` inside the buffer.
fn extrude_cell(buf: &mut [u8], stride: usize, cell: FrameRect) {
    let (x0, y0) = (cell.x as usize, cell.y as usize);
    let (w, h) = (cell.w as usize, cell.h as usize);
    let row_bytes = w * 4;
    // Top and bottom rows.
    let top = y0 * stride + x0 * 4;
    buf.copy_within(top..top + row_bytes, top - stride);
    let bottom = (y0 + h - 1) * stride + x0 * 4;
    buf.copy_within(bottom..bottom + row_bytes, bottom + stride);
    // Left and right columns over the extended rows, which fills the corners too.
    for y in y0 - 1..=y0 + h {
        let left = y * stride + x0 * 4;
        buf.copy_within(left..left + 4, left - 4);
        let right = y * stride + (x0 + w - 1) * 4;
        buf.copy_within(right..right + 4, right + 4);
    }
}

impl SheetLayout {
    /// The grid [`pack`] uses for `frame_count` frames of `tile` (width, height) size under
    /// `opts`, each frame filling its cell with the default duration: what a host shows (or
    /// checks) before any frame exists. Same errors as [`pack`] for the options: zero
    /// columns, `extrude` without room, a sheet side over [`MAX_SHEET_SIDE`].
    pub fn grid(opts: &SheetOptions, frame_count: u32, tile: (u32, u32)) -> Result<Self> {
        if frame_count == 0 {
            return Err(sheet_err(
                "no frames to pack: give at least one frame image",
            ));
        }
        if opts.extrude && (opts.padding < 2 || opts.margin < 1) {
            return Err(PixelError::InvalidOption {
                name: "extrude",
                message: format!(
                    "extrusion needs padding >= 2 and margin >= 1 to hold the 1-px copied edges \
                     (got padding {}, margin {})",
                    opts.padding, opts.margin
                ),
            });
        }
        let columns = match opts.columns {
            Some(0) => {
                return Err(PixelError::InvalidOption {
                    name: "columns",
                    message: "must be at least 1 (or unset for a near-square grid)".into(),
                });
            }
            Some(c) => c,
            None => near_square_columns(frame_count),
        };
        let rows = frame_count.div_ceil(columns);
        let (tile_width, tile_height) = tile;
        let sheet_w = span(columns, tile_width, opts.padding, opts.margin);
        let sheet_h = span(rows, tile_height, opts.padding, opts.margin);
        if sheet_w > u64::from(MAX_SHEET_SIDE) || sheet_h > u64::from(MAX_SHEET_SIDE) {
            return Err(sheet_err(format!(
                "the sheet would be {sheet_w}x{sheet_h} px ({columns} columns x {rows} rows of \
                 {tile_width}x{tile_height}), over the {MAX_SHEET_SIDE} px limit: use fewer \
                 columns, smaller frames or several sheets"
            )));
        }
        let mut layout = SheetLayout {
            tile_width,
            tile_height,
            columns,
            rows,
            padding: opts.padding,
            margin: opts.margin,
            extrude: opts.extrude,
            frames: Vec::with_capacity(frame_count as usize),
            tags: opts.tags.clone(),
        };
        for i in 0..frame_count {
            layout.frames.push(SheetFrame {
                name: format!("frame {i}"),
                rect: layout.cell_rect(i % columns, i / columns),
                source: FrameRect::new(0, 0, tile_width, tile_height),
                duration_ms: DEFAULT_DURATION_MS,
            });
        }
        Ok(layout)
    }

    /// The cell at grid column `col`, row `row`.
    pub fn cell_rect(&self, col: u32, row: u32) -> FrameRect {
        FrameRect::new(
            col.saturating_mul(self.tile_width.saturating_add(self.padding))
                .saturating_add(self.margin),
            row.saturating_mul(self.tile_height.saturating_add(self.padding))
                .saturating_add(self.margin),
            self.tile_width,
            self.tile_height,
        )
    }

    /// Sheet width and height this grid needs, margins on all sides included.
    pub fn sheet_size(&self) -> (u32, u32) {
        let w = span(self.columns, self.tile_width, self.padding, self.margin);
        let h = span(self.rows, self.tile_height, self.padding, self.margin);
        (
            u32::try_from(w).unwrap_or(u32::MAX),
            u32::try_from(h).unwrap_or(u32::MAX),
        )
    }

    /// Number of frames.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Frame durations in milliseconds, in frame order.
    pub fn durations(&self) -> Vec<u32> {
        self.frames.iter().map(|f| f.duration_ms).collect()
    }

    /// Row-major grid index (`row * columns + col`, Bevy's atlas index) of frame `frame`.
    /// `None` if there is no such frame or its cell is off the grid.
    pub fn grid_index(&self, frame: usize) -> Option<u32> {
        let rect = self.frames.get(frame)?.rect;
        let (col, row) = self.grid_position(rect)?;
        Some(row * self.columns + col)
    }

    /// Grid column and row of a cell rectangle, if it is exactly one of the grid's cells.
    fn grid_position(&self, rect: FrameRect) -> Option<(u32, u32)> {
        if rect.w != self.tile_width || rect.h != self.tile_height {
            return None;
        }
        let step_x = self.tile_width.checked_add(self.padding)?;
        let step_y = self.tile_height.checked_add(self.padding)?;
        let dx = rect.x.checked_sub(self.margin)?;
        let dy = rect.y.checked_sub(self.margin)?;
        let (col, row) = (dx / step_x, dy / step_y);
        (dx % step_x == 0 && dy % step_y == 0 && col < self.columns && row < self.rows)
            .then_some((col, row))
    }

    /// Checks the layout is consistent: frames on the grid, unique names, tags in range.
    fn validate(&self) -> Result<()> {
        if self.frames.is_empty() {
            return Err(sheet_err("the sheet has no frames"));
        }
        if self.tile_width == 0 || self.tile_height == 0 || self.columns == 0 || self.rows == 0 {
            return Err(sheet_err(format!(
                "degenerate grid: tile {}x{}, {} columns x {} rows",
                self.tile_width, self.tile_height, self.columns, self.rows
            )));
        }
        let mut names = std::collections::HashSet::with_capacity(self.frames.len());
        for (i, f) in self.frames.iter().enumerate() {
            if !names.insert(f.name.as_str()) {
                return Err(sheet_err(format!(
                    "frame {i} has the same name `{}` as an earlier frame: names must be unique \
                     (they are the keys of the json-hash form)",
                    f.name
                )));
            }
            if f.duration_ms == 0 {
                return Err(sheet_err(format!(
                    "frame {i} (`{}`) has duration 0 ms",
                    f.name
                )));
            }
            if self.grid_position(f.rect).is_none() {
                return Err(sheet_err(format!(
                    "frame {i} (`{}`) cell {:?} is not a cell of the {}x{} grid of {}x{} tiles \
                     (padding {}, margin {})",
                    f.name,
                    f.rect,
                    self.columns,
                    self.rows,
                    self.tile_width,
                    self.tile_height,
                    self.padding,
                    self.margin
                )));
            }
            let s = f.source;
            if s.w == 0
                || s.h == 0
                || u64::from(s.x) + u64::from(s.w) > u64::from(self.tile_width)
                || u64::from(s.y) + u64::from(s.h) > u64::from(self.tile_height)
            {
                return Err(sheet_err(format!(
                    "frame {i} (`{}`) source rect {s:?} does not fit its {}x{} cell",
                    f.name, self.tile_width, self.tile_height
                )));
            }
        }
        let n = self.frames.len() as u64;
        for t in &self.tags {
            if t.from > t.to || u64::from(t.to) >= n {
                return Err(sheet_err(format!(
                    "tag `{}` covers frames {}..={} but the sheet has frames 0..={}: \
                     a tag needs from <= to < frame count",
                    t.name,
                    t.from,
                    t.to,
                    n - 1
                )));
            }
        }
        Ok(())
    }

    /// Aseprite-compatible sprite-sheet JSON for this layout.
    ///
    /// `image_file` is the sheet PNG; only its file name is written (`meta.image`), as
    /// Aseprite does. The grid facts go under `meta.pixelgenGrid`, which other readers ignore.
    pub fn to_aseprite_json(&self, image_file: &str, form: JsonForm) -> String {
        let image = Path::new(image_file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| image_file.to_owned());
        let frames = self
            .frames
            .iter()
            .map(|f| {
                let ase = AseFrame {
                    filename: (form == JsonForm::Array).then(|| f.name.clone()),
                    frame: f.pixel_rect(),
                    rotated: false,
                    trimmed: f.trimmed(),
                    sprite_source_size: f.source,
                    source_size: AseSize {
                        w: f.rect.w,
                        h: f.rect.h,
                    },
                    duration: f.duration_ms,
                };
                (f.name.clone(), ase)
            })
            .collect();
        let (w, h) = self.sheet_size();
        let doc = AseDocOut {
            frames: AseFrames { form, frames },
            meta: AseMeta {
                app: APP_URL.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                image: Some(image),
                format: "RGBA8888".to_owned(),
                size: AseSize { w, h },
                scale: "1".to_owned(),
                frame_tags: self.tags.iter().map(AseTag::from).collect(),
                layers: Vec::new(),
                slices: Vec::new(),
                grid: Some(GridMeta {
                    tile_size: AseSize {
                        w: self.tile_width,
                        h: self.tile_height,
                    },
                    columns: self.columns,
                    rows: self.rows,
                    padding: self.padding,
                    margin: self.margin,
                    extrude: self.extrude,
                    frame_count: self.frames.len() as u32,
                    durations: self.durations(),
                }),
            },
        };
        let mut text = serde_json::to_string_pretty(&doc)
            .expect("plain structs with string keys always serialise to JSON");
        text.push('\n');
        text
    }

    /// Reads sprite-sheet JSON in either Aseprite form (`json-hash` or `json-array`).
    ///
    /// With `meta.pixelgenGrid` (written by [`Self::to_aseprite_json`]) the grid is taken from
    /// it; otherwise it is inferred from the frame positions, which works for Aseprite's
    /// `horizontal`, `vertical`, `rows` and `columns` sheet types without trimming. Packed or
    /// trimmed sheets whose cells do not form one uniform grid give a [`PixelError::Sheet`].
    /// Frame durations always come from the frames.
    pub fn from_aseprite_json(s: &str) -> Result<SheetLayout> {
        let doc: AseDocIn = serde_json::from_str(s).map_err(|e| {
            sheet_err(format!(
                "not a valid Aseprite sprite-sheet JSON ({e}); expected an object with `frames` \
                 (array or object) and `meta`, as Aseprite's --data writes"
            ))
        })?;
        if doc.frames.frames.is_empty() {
            return Err(sheet_err("the JSON has no frames"));
        }
        let mut frames = Vec::with_capacity(doc.frames.frames.len());
        for (i, (key, f)) in doc.frames.frames.iter().enumerate() {
            let name = key.clone().unwrap_or_else(|| format!("frame {i}"));
            if f.rotated {
                return Err(sheet_err(format!(
                    "frame {i} (`{name}`) is rotated; rotated frames are not supported"
                )));
            }
            let sss = f.sprite_source_size;
            if f.frame.w != sss.w || f.frame.h != sss.h {
                return Err(sheet_err(format!(
                    "frame {i} (`{name}`): `frame` is {}x{} but `spriteSourceSize` is {}x{}; \
                     they must match (scaled frames are not supported)",
                    f.frame.w, f.frame.h, sss.w, sss.h
                )));
            }
            let (Some(cx), Some(cy)) = (f.frame.x.checked_sub(sss.x), f.frame.y.checked_sub(sss.y))
            else {
                return Err(sheet_err(format!(
                    "frame {i} (`{name}`): `spriteSourceSize` offset ({}, {}) reaches outside the \
                     sheet from `frame` at ({}, {})",
                    sss.x, sss.y, f.frame.x, f.frame.y
                )));
            };
            frames.push(SheetFrame {
                name,
                rect: FrameRect::new(cx, cy, f.source_size.w, f.source_size.h),
                source: sss,
                duration_ms: f.duration,
            });
        }
        let mut layout = match &doc.meta.grid {
            Some(g) => {
                if g.frame_count as usize != frames.len() {
                    return Err(sheet_err(format!(
                        "`meta.{GRID_META_KEY}.frameCount` is {} but `frames` has {} entries",
                        g.frame_count,
                        frames.len()
                    )));
                }
                SheetLayout {
                    tile_width: g.tile_size.w,
                    tile_height: g.tile_size.h,
                    columns: g.columns,
                    rows: g.rows,
                    padding: g.padding,
                    margin: g.margin,
                    extrude: g.extrude,
                    frames,
                    tags: Vec::new(),
                }
            }
            None => infer_grid(frames)?,
        };
        layout.tags = doc
            .meta
            .frame_tags
            .into_iter()
            .map(FrameTag::from)
            .collect();
        layout.validate()?;
        let size = doc.meta.size;
        if size.w > 0 && size.h > 0 {
            for (i, f) in layout.frames.iter().enumerate() {
                let p = f.pixel_rect();
                if u64::from(p.x) + u64::from(p.w) > u64::from(size.w)
                    || u64::from(p.y) + u64::from(p.h) > u64::from(size.h)
                {
                    return Err(sheet_err(format!(
                        "frame {i} (`{}`) at {p:?} lies outside the {}x{} sheet in `meta.size`",
                        f.name, size.w, size.h
                    )));
                }
            }
        }
        Ok(layout)
    }
}

impl Sheet {
    /// Writes the sheet PNG to `png_path` and its JSON (naming that PNG) to `json_path`, each
    /// atomically ([`crate::write::write_atomic`]; the folders must exist). Both are encoded
    /// before either is written, the JSON is written first and the PNG last, so a PNG is never
    /// there without its layout. A failed write is [`PixelError::Write`] naming the file.
    pub fn save(&self, png_path: &Path, json_path: &Path, form: JsonForm) -> Result<()> {
        let png = crate::write::encode_png(&self.image).map_err(|source| PixelError::Image {
            path: png_path.to_path_buf(),
            source,
        })?;
        let json = self
            .layout
            .to_aseprite_json(&png_path.to_string_lossy(), form);
        for (path, bytes) in [(json_path, json.as_bytes()), (png_path, &png)] {
            crate::write::write_atomic(path, bytes).map_err(|source| PixelError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }
}

/// One axis of an inferred grid: (margin, cell count, padding if known).
fn infer_axis(origins: &mut Vec<u32>, tile: u32, axis: &str) -> Result<(u32, u32, Option<u32>)> {
    origins.sort_unstable();
    origins.dedup();
    let margin = origins.first().copied().unwrap_or(0);
    if origins.len() < 2 {
        return Ok((margin, 1, None));
    }
    let step = origins
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(tile);
    if step < tile {
        return Err(sheet_err(format!(
            "frames overlap along {axis} (cells {step} px apart, tiles {tile} px): \
             not a uniform grid (packed sheet?); export with a rows/columns/horizontal/vertical \
             sheet type and no trimming"
        )));
    }
    if let Some(bad) = origins.iter().find(|&&o| (o - margin) % step != 0) {
        return Err(sheet_err(format!(
            "a cell at {axis} = {bad} is off the {step}-px grid that starts at {margin}: \
             not a uniform grid (packed sheet?); export with a rows/columns/horizontal/vertical \
             sheet type and no trimming"
        )));
    }
    let count = (origins.last().copied().unwrap_or(margin) - margin) / step + 1;
    Ok((margin, count, Some(step - tile)))
}

/// Works out a uniform grid from frame cells (for sheets without `meta.pixelgenGrid`).
fn infer_grid(frames: Vec<SheetFrame>) -> Result<SheetLayout> {
    let first = frames
        .first()
        .map(|f| f.rect)
        .ok_or_else(|| sheet_err("the JSON has no frames"))?;
    if let Some((i, f)) = frames
        .iter()
        .enumerate()
        .find(|(_, f)| (f.rect.w, f.rect.h) != (first.w, first.h))
    {
        return Err(sheet_err(format!(
            "frame {i} (`{}`) has sourceSize {}x{} but frame 0 has {}x{}: only sheets whose \
             frames share one size form a grid",
            f.name, f.rect.w, f.rect.h, first.w, first.h
        )));
    }
    let (tile_width, tile_height) = (first.w, first.h);
    let mut xs: Vec<u32> = frames.iter().map(|f| f.rect.x).collect();
    let mut ys: Vec<u32> = frames.iter().map(|f| f.rect.y).collect();
    let (margin_x, columns, pad_x) = infer_axis(&mut xs, tile_width, "x")?;
    let (margin_y, rows, pad_y) = infer_axis(&mut ys, tile_height, "y")?;
    let padding = match (pad_x, pad_y) {
        (Some(a), Some(b)) if a != b => {
            return Err(sheet_err(format!(
                "cells are {a} px apart across but {b} px apart down: a grid needs one padding"
            )));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => 0,
    };
    if margin_x != margin_y {
        return Err(sheet_err(format!(
            "the grid starts at x = {margin_x} but y = {margin_y}: a grid needs one margin"
        )));
    }
    Ok(SheetLayout {
        tile_width,
        tile_height,
        columns,
        rows,
        padding,
        margin: margin_x,
        extrude: false,
        frames,
        tags: Vec::new(),
    })
}

// ---- Aseprite JSON shapes (field order = Aseprite's output order) ----

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct AseSize {
    w: u32,
    h: u32,
}

fn default_duration() -> u32 {
    DEFAULT_DURATION_MS
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AseFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    frame: FrameRect,
    #[serde(default)]
    rotated: bool,
    #[serde(default)]
    trimmed: bool,
    sprite_source_size: FrameRect,
    source_size: AseSize,
    #[serde(default = "default_duration")]
    duration: u32,
}

/// `frames` in either form, in file order: (filename, frame).
struct AseFrames {
    form: JsonForm,
    frames: Vec<(String, AseFrame)>,
}

impl Serialize for AseFrames {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.form {
            JsonForm::Array => {
                let mut seq = s.serialize_seq(Some(self.frames.len()))?;
                for (_, f) in &self.frames {
                    seq.serialize_element(f)?;
                }
                seq.end()
            }
            JsonForm::Hash => {
                // Written in frame order (a BTreeMap would sort `frame 10` before `frame 2`).
                let mut map = s.serialize_map(Some(self.frames.len()))?;
                for (name, f) in &self.frames {
                    map.serialize_entry(name, f)?;
                }
                map.end()
            }
        }
    }
}

/// `frames` as read: (filename if known, frame), in file order.
struct AseFramesIn {
    frames: Vec<(Option<String>, AseFrame)>,
}

impl<'de> Deserialize<'de> for AseFramesIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AseFramesIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`frames` as an array (json-array) or an object keyed by filename (json-hash)",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut frames = Vec::new();
                while let Some(f) = seq.next_element::<AseFrame>()? {
                    frames.push((f.filename.clone(), f));
                }
                Ok(AseFramesIn { frames })
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut frames = Vec::new();
                while let Some((k, f)) = map.next_entry::<String, AseFrame>()? {
                    frames.push((Some(k), f));
                }
                Ok(AseFramesIn { frames })
            }
        }
        d.deserialize_any(V)
    }
}

/// Aseprite writes `repeat` as a string; accept a number too.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    Num(u32),
    Str(String),
}

fn de_repeat<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    match Option::<NumOrString>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrString::Num(n)) => Ok(Some(n)),
        Some(NumOrString::Str(s)) => s.trim().parse().map(Some).map_err(|_| {
            de::Error::custom(format!("tag `repeat` must be a whole number, got `{s}`"))
        }),
    }
    .map(|r| r.filter(|&n| n > 0))
}

fn ser_repeat<S: Serializer>(r: &Option<u32>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match r {
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AseTag {
    name: String,
    from: u32,
    to: u32,
    #[serde(default)]
    direction: Direction,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_repeat",
        deserialize_with = "de_repeat"
    )]
    repeat: Option<u32>,
}

impl From<&FrameTag> for AseTag {
    fn from(t: &FrameTag) -> Self {
        Self {
            name: t.name.clone(),
            from: t.from,
            to: t.to,
            direction: t.direction,
            repeat: t.repeat,
        }
    }
}

impl From<AseTag> for FrameTag {
    fn from(t: AseTag) -> Self {
        Self {
            name: t.name,
            from: t.from,
            to: t.to,
            direction: t.direction,
            repeat: t.repeat,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GridMeta {
    tile_size: AseSize,
    columns: u32,
    rows: u32,
    #[serde(default)]
    padding: u32,
    #[serde(default)]
    margin: u32,
    #[serde(default)]
    extrude: bool,
    frame_count: u32,
    #[serde(default)]
    durations: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AseMeta {
    #[serde(default)]
    app: String,
    #[serde(default)]
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(default)]
    format: String,
    #[serde(default)]
    size: AseSize,
    #[serde(default)]
    scale: String,
    #[serde(default)]
    frame_tags: Vec<AseTag>,
    #[serde(default)]
    layers: Vec<serde_json::Value>,
    #[serde(default)]
    slices: Vec<serde_json::Value>,
    #[serde(
        default,
        rename = "pixelgenGrid",
        skip_serializing_if = "Option::is_none"
    )]
    grid: Option<GridMeta>,
}

#[derive(Serialize)]
struct AseDocOut {
    frames: AseFrames,
    meta: AseMeta,
}

#[derive(Deserialize)]
struct AseDocIn {
    frames: AseFramesIn,
    #[serde(default)]
    meta: AseMeta,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_square_columns_is_ceil_sqrt() {
        let cases = [
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 2),
            (5, 3),
            (9, 3),
            (10, 4),
            (17, 5),
        ];
        for (n, c) in cases {
            assert_eq!(near_square_columns(n), c, "n = {n}");
        }
    }

    #[test]
    fn tag_sequences_follow_direction() {
        let t = |d| FrameTag::new("t", 2, 5, d).frame_sequence();
        assert_eq!(t(Direction::Forward), vec![2, 3, 4, 5]);
        assert_eq!(t(Direction::Reverse), vec![5, 4, 3, 2]);
        assert_eq!(t(Direction::Pingpong), vec![2, 3, 4, 5, 4, 3]);
        assert_eq!(t(Direction::PingpongReverse), vec![5, 4, 3, 2, 3, 4]);
        let one = FrameTag::new("one", 3, 3, Direction::Pingpong);
        assert_eq!(one.frame_sequence(), vec![3]);
        let two = FrameTag::new("two", 0, 1, Direction::Pingpong);
        assert_eq!(two.frame_sequence(), vec![0, 1]);
    }

    #[test]
    fn direction_strings_match_aseprite() {
        for (d, s) in [
            (Direction::Forward, "forward"),
            (Direction::Reverse, "reverse"),
            (Direction::Pingpong, "pingpong"),
            (Direction::PingpongReverse, "pingpong_reverse"),
        ] {
            assert_eq!(serde_json::to_value(d).unwrap(), serde_json::json!(s));
        }
    }

    #[test]
    fn repeat_reads_string_or_number_and_writes_string() {
        let a: AseTag = serde_json::from_str(
            r#"{"name":"a","from":0,"to":1,"direction":"forward","repeat":"3"}"#,
        )
        .unwrap();
        assert_eq!(a.repeat, Some(3));
        let b: AseTag = serde_json::from_str(r#"{"name":"b","from":0,"to":1,"repeat":2}"#).unwrap();
        assert_eq!(b.repeat, Some(2));
        assert_eq!(b.direction, Direction::Forward);
        let out = serde_json::to_value(&a).unwrap();
        assert_eq!(out["repeat"], serde_json::json!("3"));
        let none: AseTag = serde_json::from_str(r#"{"name":"c","from":0,"to":0}"#).unwrap();
        assert!(serde_json::to_value(&none).unwrap().get("repeat").is_none());
        let bad = serde_json::from_str::<AseTag>(r#"{"name":"d","from":0,"to":0,"repeat":"x"}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn grid_position_rejects_off_grid_cells() {
        let layout = SheetLayout {
            tile_width: 8,
            tile_height: 4,
            columns: 3,
            rows: 2,
            padding: 2,
            margin: 1,
            extrude: false,
            frames: Vec::new(),
            tags: Vec::new(),
        };
        assert_eq!(layout.grid_position(layout.cell_rect(2, 1)), Some((2, 1)));
        assert_eq!(layout.grid_position(FrameRect::new(2, 1, 8, 4)), None);
        assert_eq!(layout.grid_position(FrameRect::new(0, 1, 8, 4)), None);
        assert_eq!(layout.grid_position(layout.cell_rect(3, 0)), None);
        assert_eq!(layout.grid_position(FrameRect::new(1, 1, 7, 4)), None);
        assert_eq!(layout.sheet_size(), (2 + 24 + 4, 2 + 8 + 2));
    }

    #[test]
    fn infer_axis_finds_margin_step_and_gaps() {
        // Cells at 3, 13, 33 (one empty column at 23): 10-px step, tile 8 -> padding 2.
        let mut xs = vec![33, 3, 13, 13];
        assert_eq!(infer_axis(&mut xs, 8, "x").unwrap(), (3, 4, Some(2)));
        let mut packed = vec![0, 8, 20];
        assert!(infer_axis(&mut packed, 8, "x").is_err());
        let mut overlap = vec![0, 5];
        assert!(infer_axis(&mut overlap, 8, "x").is_err());
        let mut single = vec![4];
        assert_eq!(infer_axis(&mut single, 8, "x").unwrap(), (4, 1, None));
    }
}
