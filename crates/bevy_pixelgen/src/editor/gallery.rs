//! The gallery: finished sprites and sheets, saving them into the game's assets, applying
//! them to scene sprites, and sheet playback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bevy::asset::{Assets, Handle};
use bevy::ecs::change_detection::DetectChangesMut;
use bevy::ecs::component::Component;
use bevy::ecs::entity::Entity;
use bevy::ecs::query::With;
use bevy::ecs::resource::Resource;
use bevy::ecs::system::{Query, Res, ResMut};
use bevy::image::{Image, TextureAtlas, TextureAtlasLayout};
use bevy::math::{Rect, URect};
use bevy::sprite::Sprite;
use bevy::time::{Real, Time};
use pixelgen::{Clips, Consistency, Recipe};
use pixelgen_pixel::sheet::{FrameRect, SheetFrame, SheetLayout};

use super::state::{EditorError, EditorState};
use super::tileset::{TilesetPreview, tileset_preview};
use crate::ClipPlayer;
use crate::request::TicketId;

/// Marks a scene sprite the editor may change: the panel lists these (by their `Name`) for
/// "apply to selected", which swaps the entity's `Sprite` image for a gallery item.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PixelGenTarget;

/// Plays an applied sheet on a scene sprite (cycles its atlas index at the editor's fps).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetPlayback {
    /// Frames in the sheet.
    pub frames: usize,
}

/// One finished sprite or sheet in the gallery.
#[derive(Debug, Clone)]
pub struct GalleryItem {
    /// The request that made it.
    pub ticket: TicketId,
    /// The sprite (or sheet image).
    pub image: Handle<Image>,
    /// For sheets: the atlas layout (one rect per frame).
    pub layout: Option<Handle<TextureAtlasLayout>>,
    /// The recipe that made it (seed fixed): regenerates it.
    pub recipe: Recipe,
    /// Where the worker saved the PNG, if it did.
    pub saved: Option<PathBuf>,
    /// Where "save to assets" put the PNG, if it did.
    pub saved_as: Option<PathBuf>,
    /// For "variations": the item it varies.
    pub variation_of: Option<TicketId>,
    /// The worse wrap-around seam score (0: tiles seamlessly, above ~1.5: a visible seam;
    /// see `pixelgen_pixel::tile`); `None` when it could not be measured.
    pub seam: Option<f32>,
    /// A set's animation clips (empty for a sprite or an untagged sheet).
    pub clips: Arc<Clips>,
    /// A set's consistency (palette sizes, silhouette IoU, anchor drift, histogram
    /// distance), as the engine measured it.
    pub consistency: Option<Consistency>,
    /// A tileset's preview map and seam scores, from its atlas pixels (`None` for other
    /// items, or when the atlas could not be read).
    pub tileset: Option<TilesetPreview>,
}

impl GalleryItem {
    /// Frames in the item (1 for a sprite).
    pub fn frame_count(&self) -> usize {
        if self.layout.is_none() {
            return 1;
        }
        match self.recipe.set_frames() {
            Ok(Some(set)) => set.frames.len(),
            _ => self.recipe.frame_count().max(1),
        }
    }

    /// The frame the gallery shows after `clock`: a set plays each of its clips in turn at
    /// their own timing; another sheet loops through its frames at `fps`.
    pub fn frame_at(&self, clock: Duration, fps: f32) -> usize {
        self.clips
            .preview_frame_at(clock.as_millis() as u64)
            .unwrap_or_else(|| frame_at(clock, fps, self.frame_count()))
    }

    /// One line on a set's consistency for the gallery, e.g.
    /// `set: 6 colours (frames <= 6), drift 0 px, IoU >= 0.82, colour distance <= 0.10`.
    pub fn consistency_line(&self) -> Option<String> {
        let c = self.consistency.as_ref()?;
        let most = c.frames.iter().map(|f| f.colors).max().unwrap_or(0);
        Some(format!(
            "set: {} colours (frames <= {most}), drift {} px, IoU >= {:.2}, colour distance <= {:.2}",
            c.set_colors, c.max_anchor_drift, c.min_silhouette_iou, c.max_histogram_distance
        ))
    }
}

/// The editor's finished sprites, newest last, and the clock sheets play by.
#[derive(Resource, Debug, Clone, Default)]
pub struct Gallery {
    /// The items, oldest first.
    pub items: Vec<GalleryItem>,
    /// Real time the gallery has been playing (advances every frame).
    pub clock: Duration,
}

impl Gallery {
    /// The item made by request `id`.
    pub fn get(&self, id: TicketId) -> Option<&GalleryItem> {
        self.items.iter().find(|i| i.ticket == id)
    }

    /// The frame a sheet of `frames` frames shows now at `fps`.
    pub fn frame_now(&self, frames: usize, fps: f32) -> usize {
        frame_at(self.clock, fps, frames)
    }
}

/// The frame shown after `clock` of playback at `fps` (looping over `frames`).
pub fn frame_at(clock: Duration, fps: f32, frames: usize) -> usize {
    if frames <= 1 || !fps.is_finite() || fps <= 0.0 {
        return 0;
    }
    // A tiny epsilon so 0.25 s at 4 fps is frame 1 despite float rounding.
    ((clock.as_secs_f64() * f64::from(fps) + 1e-9).floor() as usize) % frames
}

/// The normalised texture rect (0..1) of frame `index` in `layout`.
pub fn frame_uv(layout: &TextureAtlasLayout, index: usize) -> Option<Rect> {
    let r: URect = *layout.textures.get(index)?;
    let (w, h) = (layout.size.x.max(1) as f32, layout.size.y.max(1) as f32);
    Some(Rect::new(
        r.min.x as f32 / w,
        r.min.y as f32 / h,
        r.max.x as f32 / w,
        r.max.y as f32 / h,
    ))
}

/// The "save to assets" dialog: which item, the name typed, and whether an overwrite waits
/// for confirmation.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct SaveDialog {
    /// The item being saved (`None`: the dialog is closed).
    pub item: Option<TicketId>,
    /// The name typed (a file stem, optionally in sub-folders: `items/potion`).
    pub name: String,
    /// The last save was refused because the files exist: the panel asks to overwrite.
    pub confirm_overwrite: bool,
}

/// Where "save to assets" writes: a folder under the game's assets (e.g. `assets/generated`).
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub struct SaveFolder(pub PathBuf);

/// The paths "save to assets" wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedAsset {
    /// The PNG.
    pub png: PathBuf,
    /// The recipe next to it (`NAME.pixelgen.ron`).
    pub recipe: PathBuf,
    /// For sheets: Aseprite-compatible JSON (hash form) describing the frames.
    pub json: Option<PathBuf>,
    /// For a tileset: the Tiled tileset (`NAME.tsx`) and the index table
    /// (`NAME.tiles.json`).
    pub tileset: Option<(PathBuf, PathBuf)>,
}

/// A sheet's frames for "save to assets": its atlas layout and the playback speed, which
/// sets every frame's duration.
#[derive(Debug, Clone, Copy)]
pub struct SheetFrames<'a> {
    /// One rect per frame, in order.
    pub layout: &'a TextureAtlasLayout,
    /// Frames per second (each frame lasts `1000 / fps` ms).
    pub fps: f32,
}

impl SheetFrames<'_> {
    /// The layout as a [`SheetLayout`]: cells from the atlas rects (grid, padding and margin
    /// read off the first two cells), untrimmed frames named `frame N`, equal durations.
    pub fn sheet_layout(&self) -> SheetLayout {
        let rects = &self.layout.textures;
        let first = rects.first().copied().unwrap_or_default();
        let columns = rects
            .iter()
            .filter(|r| r.min.y == first.min.y)
            .count()
            .max(1) as u32;
        let padding = rects
            .get(1)
            .filter(|r| r.min.y == first.min.y)
            .map_or(0, |r| r.min.x.saturating_sub(first.max.x));
        let fps = if self.fps.is_finite() && self.fps > 0.0 {
            self.fps
        } else {
            8.0
        };
        let duration_ms = (1000.0 / fps).round().max(1.0) as u32;
        SheetLayout {
            tile_width: first.width(),
            tile_height: first.height(),
            columns,
            rows: (rects.len() as u32).div_ceil(columns),
            padding,
            margin: first.min.x,
            extrude: false,
            frames: rects
                .iter()
                .enumerate()
                .map(|(i, r)| SheetFrame {
                    name: format!("frame {i}"),
                    rect: FrameRect::new(r.min.x, r.min.y, r.width(), r.height()),
                    source: FrameRect::new(0, 0, r.width(), r.height()),
                    duration_ms,
                })
                .collect(),
            tags: Vec::new(),
        }
    }
}

/// Checks a name for "save to assets" and returns it without a `.png` ending: file stems of
/// letters, digits, `-`, `_` and `.` (not leading), optionally in sub-folders joined by `/`.
pub fn asset_name(name: &str) -> Result<String, EditorError> {
    let bad = |why: &str| EditorError::Name {
        name: name.to_owned(),
        why: why.to_owned(),
    };
    let trimmed = name.trim();
    let trimmed = trimmed.strip_suffix(".png").unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(bad("the name is empty"));
    }
    if trimmed.len() > 100 {
        return Err(bad("the name is longer than 100 characters"));
    }
    for part in trimmed.split('/') {
        if part.is_empty() {
            return Err(bad("empty folder name (a leading, trailing or double `/`)"));
        }
        if part.starts_with('.') {
            return Err(bad("a name or folder may not start with `.`"));
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(bad(&format!(
                "{c:?} is not allowed: use letters, digits, `-`, `_` and `/` for folders"
            )));
        }
    }
    Ok(trimmed.to_owned())
}

/// A name to offer for "save to assets": the prompt as a slug (at most 40 characters) and the
/// seed, e.g. `red-potion-1234`; always accepted by [`asset_name`].
pub fn suggested_name(recipe: &Recipe) -> String {
    let slug = pixelgen::prompt_slug(&recipe.prompt);
    match recipe.seed.value() {
        Some(seed) => format!("{slug}-{seed}"),
        None => slug,
    }
}

/// Writes `image` as `DIR/NAME.png` and `recipe` as `DIR/NAME.pixelgen.ron` (and for a
/// sheet its frames as `DIR/NAME.json`, Aseprite hash form; for a tileset also its Tiled
/// tileset `DIR/NAME.tsx` and index table `DIR/NAME.tiles.json`, frames named by tile
/// code), each through a temporary file and a rename. Existing files are refused unless
/// `overwrite`.
pub fn save_to_assets(
    dir: &Path,
    name: &str,
    image: &Image,
    recipe: &Recipe,
    sheet: Option<SheetFrames<'_>>,
    overwrite: bool,
) -> Result<SavedAsset, EditorError> {
    let stem = asset_name(name)?;
    let write_err = |path: &Path, message: String| EditorError::Write {
        path: path.to_owned(),
        message,
    };
    let png = dir.join(format!("{stem}.png"));
    let rgba = image
        .clone()
        .try_into_dynamic()
        .map_err(|e| write_err(&png, format!("the image cannot be converted: {e}")))?
        .into_rgba8();
    let mut layout = sheet.map(|s| s.sheet_layout());
    if let (Some(layout), Some(set)) = (layout.as_mut(), recipe.tileset.as_ref()) {
        for (frame, name) in layout.frames.iter_mut().zip(set.tile_names()) {
            frame.name = name;
        }
    }
    let art = pixelgen::Artwork {
        image: &rgba,
        recipe,
        layout: layout.as_ref(),
    };
    match pixelgen::save_as(dir, &stem, art, overwrite) {
        Ok(files) => Ok(SavedAsset {
            png: files.png,
            recipe: files.recipe,
            json: files.json,
            tileset: files.tileset,
        }),
        Err(pixelgen::PixelGenError::Exists(path)) => Err(EditorError::Exists(path)),
        Err(e) => Err(write_err(dir, e.to_string())),
    }
}

/// How an applied item plays on its scene sprite.
pub(super) enum Playback {
    /// A sprite: nothing plays.
    Still,
    /// An untagged sheet loops at the editor's fps.
    Sheet(SheetPlayback),
    /// A set plays its first clip.
    Clips(ClipPlayer),
}

/// Swaps the sprite of `target` (a [`PixelGenTarget`]) for `item`: its image, and for a
/// sheet its atlas (first frame) plus how it plays.
pub(super) fn apply_item(
    item: &GalleryItem,
    target: Entity,
    sprites: &mut Query<&mut Sprite, With<PixelGenTarget>>,
) -> Result<Playback, EditorError> {
    let Ok(mut sprite) = sprites.get_mut(target) else {
        return Err(EditorError::Missing(format!(
            "entity {target} is not a sprite marked PixelGenTarget (any more)"
        )));
    };
    sprite.image = item.image.clone();
    match &item.layout {
        Some(layout) => {
            sprite.texture_atlas = Some(TextureAtlas {
                layout: layout.clone(),
                index: 0,
            });
            if item.clips.is_empty() {
                Ok(Playback::Sheet(SheetPlayback {
                    frames: item.frame_count(),
                }))
            } else {
                Ok(Playback::Clips(ClipPlayer::new(item.clips.clone())))
            }
        }
        None => {
            sprite.texture_atlas = None;
            Ok(Playback::Still)
        }
    }
}

/// Advances the gallery clock and plays applied sheets on scene sprites.
pub(super) fn play_sheets(
    time: Res<Time<Real>>,
    state: Res<EditorState>,
    mut gallery: ResMut<Gallery>,
    mut sprites: Query<(&mut Sprite, &SheetPlayback)>,
) {
    // The clock ticks every frame; it does not count as a gallery change (systems watching
    // `Gallery` for new items should not run every frame).
    gallery.bypass_change_detection().clock += time.delta();
    for (mut sprite, playback) in &mut sprites {
        let frame = gallery.frame_now(playback.frames, state.fps);
        if let Some(atlas) = sprite.texture_atlas.as_mut()
            && atlas.index != frame
        {
            atlas.index = frame;
        }
    }
}

/// The seam score of a finished image (worse of the two wrap edges).
pub(super) fn seam_of(rgba: Option<&image::RgbaImage>) -> Option<f32> {
    pixelgen_pixel::tile::seam_score(rgba?)
        .ok()
        .map(|s| s.horizontal.max(s.vertical))
}

/// A finished image's pixels, if it is loaded and readable.
pub(super) fn pixels_of(
    images: Option<&Assets<Image>>,
    handle: &Handle<Image>,
) -> Option<image::RgbaImage> {
    let image = images?.get(handle)?;
    Some(image.clone().try_into_dynamic().ok()?.into_rgba8())
}

/// The preview of a finished tileset item (`Ok(None)` for another recipe), with the seam
/// report its result carries; the error says why it could not be made.
pub(super) fn preview_of(
    recipe: &Recipe,
    rgba: Option<&image::RgbaImage>,
    tileset: Option<&pixelgen::TilesetOutput>,
) -> Result<Option<TilesetPreview>, String> {
    if recipe.tileset.is_none() {
        return Ok(None);
    }
    let rgba = rgba.ok_or("its atlas is not loaded")?;
    let out = tileset.ok_or("the result carries no seam report")?;
    tileset_preview(recipe, rgba.dimensions(), &out.seams).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(asset_name(" potion ").unwrap(), "potion");
        assert_eq!(
            asset_name("items/red_potion-2.png").unwrap(),
            "items/red_potion-2"
        );
        for bad in [
            "", "  ", ".png", "../up", "a/../b", "/abs", "a//b", "trail/", "sp ace", "c:\\x",
            ".hidden", "é",
        ] {
            assert!(
                matches!(asset_name(bad), Err(EditorError::Name { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(asset_name(&"a".repeat(101)).is_err());
        let mut r = Recipe::new("Red Potion, glowing!!");
        r.seed = pixelgen::Seed::Fixed(7);
        assert_eq!(suggested_name(&r), "red-potion-glowing-7");
        r.prompt = "???".into();
        assert_eq!(asset_name(&suggested_name(&r)).unwrap(), "sprite-7");
    }

    #[test]
    fn atlas_layouts_become_sheet_layouts() {
        let mut atlas = TextureAtlasLayout::from_grid(
            bevy::math::UVec2::new(6, 4),
            3,
            2,
            Some(bevy::math::UVec2::splat(2)),
            Some(bevy::math::UVec2::splat(1)),
        );
        atlas.textures.truncate(5);
        let sheet = SheetFrames {
            layout: &atlas,
            fps: 12.0,
        }
        .sheet_layout();
        assert_eq!((sheet.tile_width, sheet.tile_height), (6, 4));
        assert_eq!((sheet.columns, sheet.rows), (3, 2));
        assert_eq!((sheet.padding, sheet.margin), (2, 1));
        assert_eq!(sheet.frames.len(), 5);
        let last = &sheet.frames[4];
        assert_eq!(last.rect, FrameRect::new(1 + 8, 1 + 6, 6, 4));
        assert_eq!(last.duration_ms, 83, "1000 / 12 fps, rounded");
        let json = sheet.to_aseprite_json("x.png", pixelgen_pixel::sheet::JsonForm::Hash);
        assert_eq!(
            SheetLayout::from_aseprite_json(&json).unwrap().frames,
            sheet.frames
        );
        let odd = SheetFrames {
            layout: &atlas,
            fps: f32::NAN,
        };
        assert_eq!(
            odd.sheet_layout().frames[0].duration_ms,
            125,
            "falls back to 8 fps"
        );
    }

    #[test]
    fn frames_loop_at_the_chosen_fps() {
        let t = Duration::from_millis;
        assert_eq!(frame_at(t(0), 4.0, 3), 0);
        assert_eq!(frame_at(t(249), 4.0, 3), 0);
        assert_eq!(frame_at(t(250), 4.0, 3), 1);
        assert_eq!(frame_at(t(500), 4.0, 3), 2);
        assert_eq!(frame_at(t(750), 4.0, 3), 0, "loops");
        assert_eq!(frame_at(t(750), 0.0, 3), 0, "fps 0 holds the first frame");
        assert_eq!(frame_at(t(750), f32::NAN, 3), 0);
        assert_eq!(frame_at(t(750), 4.0, 1), 0);
    }
}
