//! [`PixelGenEditorPlugin`]: an egui panel that turns the plugin into a creative tool.
//!
//! The panel only draws plain resources ([`EditorState`], [`EditorQueue`], [`Gallery`],
//! [`EditorLog`], [`Presets`]) and writes [`EditorAction`] messages; ordinary systems act on
//! them, so everything but the drawing works (and is tested) without a window.
//!
//! - `state`: the form ([`EditorState`]), style presets, the message log.
//! - `queue`: requests in flight with live preview, elapsed time and ETA ([`QueueEntry`]).
//! - `gallery`: results, "save to assets", "apply to selected" ([`PixelGenTarget`]) and sheet
//!   playback.
//! - `mask`: "Repaint…" (inpainting) on a gallery sprite: the mask brush ([`MaskCanvas`]),
//!   the open view ([`RepaintDialog`]) and its options ([`RepaintSettings`]); the panel sends
//!   [`EditorAction::Repaint`], which submits the item's recipe as an edit of its pixels.
//! - `tileset`: the gallery's preview of a tileset ([`TilesetPreview`]: an autotiled island
//!   map and the seam line); the "Tileset…" form is [`TilesetSettings`] in [`EditorState`],
//!   submitted by [`EditorAction::GenerateTileset`].
//! - `settings`: the form as RON on disk, loaded at startup, saved after changes and at exit.
//! - `ui`: the egui drawing.

mod gallery;
mod mask;
mod queue;
mod settings;
mod state;
mod tileset;
mod ui;

use std::path::PathBuf;
use std::time::Duration;

use bevy::app::{App, Last, Plugin, Update};
use bevy::asset::Assets;
use bevy::ecs::entity::Entity;
use bevy::ecs::message::{Message, MessageReader};
use bevy::ecs::name::Name;
use bevy::ecs::query::With;
use bevy::ecs::resource::Resource;
use bevy::ecs::schedule::IntoScheduleConfigs;
use bevy::ecs::system::{Commands, Query, Res, ResMut};
use bevy::image::{Image, TextureAtlasLayout};
use bevy::input::ButtonInput;
use bevy::input::keyboard::KeyCode;
use bevy::sprite::Sprite;
use bevy::time::{Real, Time};
use pixelgen::{Priority, Recipe, Seed};
use pixelgen_pixel::palette::Palette;

pub use gallery::{
    Gallery, GalleryItem, PixelGenTarget, SaveDialog, SaveFolder, SavedAsset, SheetFrames,
    SheetPlayback, asset_name, frame_at, frame_uv, save_to_assets, suggested_name,
};
pub use mask::{
    CanvasGrowth, MAX_BRUSH_RADIUS, MAX_GROW, MaskCanvas, RepaintDialog, RepaintSettings,
};
pub use queue::{EditorQueue, QueueEntry, eta, short_duration, steps_per_second};
pub use settings::{SettingsFile, backup_path, load_settings, save_settings};
pub use state::{
    EditorError, EditorLog, EditorState, MAX_EDITOR_FRAMES, MAX_EDITOR_SIDE,
    MAX_EDITOR_TILE_VARIATIONS, MIN_EDITOR_SIDE, PixelSettings, Presets, SetSettings,
    SheetSettings, StylePreset, TILE_SIZES, TilesetSettings, VariationSeeds,
};
pub use tileset::{
    PREVIEW_MAP_HEIGHT, PREVIEW_MAP_WIDTH, SeamSummary, TilesetPreview, preview_map,
    tileset_preview,
};

pub use ui::PROMPT_FIELD;

use crate::ClipPlayer;
use crate::messages::{SpriteFailed, SpriteFinished};
use crate::plugin::PixelGen;
use crate::request::TicketId;
use gallery::Playback;

/// Something a person asked for in the panel (or a script/test on their behalf).
#[derive(Message, Debug, Clone, PartialEq)]
pub enum EditorAction {
    /// Submit the recipe [`EditorState`] describes, with editor priority (a sheet when it
    /// has several frames).
    Generate,
    /// "Generate tileset": submit the tileset the "Tileset…" form describes
    /// ([`EditorState::tileset_recipe`]), with editor priority; the atlas joins the gallery
    /// with its preview map and seam line ([`TilesetPreview`]).
    GenerateTileset,
    /// Cancel a request in the queue.
    Cancel(TicketId),
    /// Apply the preset with this name to [`EditorState`].
    ApplyPreset(String),
    /// Draw a new seed (the dice button); locks it.
    RollSeed,
    /// Load a palette file (GPL, HEX, JASC PAL or PNG swatch) and use it.
    LoadPalette(PathBuf),
    /// Submit a gallery item's recipe again (same seed: the same pixels).
    Regenerate(TicketId),
    /// Submit `count` copies of a gallery item's recipe with other seeds.
    Variations {
        /// The gallery item.
        of: TicketId,
        /// How many.
        count: u32,
        /// Consecutive or random seeds.
        seeds: VariationSeeds,
    },
    /// Write a gallery item as `NAME.png` + `NAME.pixelgen.ron` into the [`SaveFolder`].
    SaveToAssets {
        /// The gallery item.
        item: TicketId,
        /// The file stem (sub-folders with `/`).
        name: String,
        /// Replace existing files.
        overwrite: bool,
    },
    /// Show a gallery item on a scene sprite marked [`PixelGenTarget`].
    ApplyToTarget {
        /// The gallery item.
        item: TicketId,
        /// The sprite entity.
        target: Entity,
    },
    /// Drop a gallery item (its image is freed unless something else holds it; its
    /// variations stay, as items of their own).
    Remove(TicketId),
    /// "Animate…": a set of `action`'s frames drawn after a gallery item (its first frame
    /// for a sheet) by shared attention, each frame starting from it; the item's views
    /// (when it is a directions set) are kept. Strengths come from [`EditorState::set`].
    Animate {
        /// The gallery item.
        of: TicketId,
        /// The action.
        action: pixelgen::Action,
    },
    /// "Repaint…": the gallery item (a single sprite with its image loaded) redrawn where
    /// `mask` is marked and kept, exactly, everywhere else. Its pixels and the mask are
    /// written as content-named PNGs where [`PixelGen::reference_from`] writes (next to the
    /// cache), and its recipe is submitted as an edit of them (`Recipe::edit`) with `prompt`,
    /// `inpaint` and a fresh seed; the result joins the gallery under the item, like a
    /// variation.
    ///
    /// With a non-zero `grow` it is an outpaint: the recipe's `size` is the grown canvas
    /// (its `generation_size` grown in proportion, see [`CanvasGrowth::generation_size`]),
    /// the edit's `offset` is where the item goes on it, and its mask is `mask` placed there
    /// (`None` when nothing is marked); the model draws the new canvas around the item.
    ///
    /// An empty mask without growth, a full mask, too much growth, a sheet or a set is
    /// refused in the [`EditorLog`].
    Repaint {
        /// The gallery item.
        item: TicketId,
        /// What to repaint, the item's size.
        mask: MaskCanvas,
        /// What to draw in the masked part (and around the item when growing).
        prompt: String,
        /// How much is redrawn (strength) and the mask blur.
        inpaint: pixelgen::InpaintParams,
        /// Pixels added around the item (all zero: a plain repaint).
        grow: CanvasGrowth,
    },
    /// "Directions…": the gallery item seen from `count` (4 or 8) directions, drawn after
    /// it; the item's animation (when it is an animation set) is kept.
    Directions {
        /// The gallery item.
        of: TicketId,
        /// 4 or 8.
        count: u32,
        /// West-facing views are the east-facing ones mirrored.
        mirror: bool,
    },
}

/// Adds the editor panel over [`PixelGen`]: prompt side, queue and gallery.
///
/// Needs [`PixelGenPlugin`](crate::PixelGenPlugin). With `panel` on it also needs a window
/// and a renderer (`DefaultPlugins`) and adds `bevy_egui`'s `EguiPlugin` when missing.
#[derive(Debug, Clone)]
pub struct PixelGenEditorPlugin {
    /// Folder of style presets (`*.ron`), read once at startup.
    pub presets_dir: PathBuf,
    /// Draw the egui panel (off: state and actions only, for headless apps or your own UI).
    pub panel: bool,
    /// The key that shows and hides the panel (`None`: no key). Ignored while a text field
    /// of the panel has the keyboard.
    pub toggle_key: Option<KeyCode>,
    /// Where "save to assets" writes (a folder inside the game's `assets/`).
    pub save_dir: PathBuf,
    /// The panel's settings file (RON), read at startup and written after changes and at
    /// exit (`None`: settings are not kept).
    pub settings_path: Option<PathBuf>,
    /// How long the form must stay unchanged before a change is written.
    pub settings_debounce: Duration,
}

impl Default for PixelGenEditorPlugin {
    fn default() -> Self {
        Self {
            presets_dir: PathBuf::from("assets/presets"),
            panel: true,
            toggle_key: Some(KeyCode::F2),
            save_dir: PathBuf::from("assets/generated"),
            settings_path: Some(PathBuf::from(".pixelgen/editor.ron")),
            settings_debounce: Duration::from_secs(1),
        }
    }
}

/// The editor's systems, for ordering your own around them.
#[derive(bevy::ecs::schedule::SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelGenEditorSystems {
    /// `Update`: the toggle key, [`EditorAction`]s, progress, finished requests to the
    /// gallery, sheet playback.
    Apply,
    /// `Last`: writes changed settings.
    Persist,
}

/// Whether a text field of the panel has the keyboard (set by the panel every frame); the
/// toggle key is ignored while it does.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PanelKeyboardFocus(pub bool);

/// The palette file loaded with [`EditorAction::LoadPalette`] (for its swatches).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct PaletteFile {
    /// The path as given, and the palette read from it.
    pub loaded: Option<(String, Palette)>,
}

impl Plugin for PixelGenEditorPlugin {
    fn build(&self, app: &mut App) {
        let presets = Presets::load_dir(&self.presets_dir);
        let mut log = EditorLog::default();
        for e in &presets.errors {
            bevy::log::warn!("pixelgen editor: {e}");
            log.error(e.to_string());
        }
        let state = match &self.settings_path {
            Some(path) => {
                app.insert_resource(SettingsFile {
                    path: path.clone(),
                    debounce: self.settings_debounce,
                });
                settings::startup_state(path, &mut log)
            }
            None => EditorState::default(),
        };
        let palette_file = startup_palette(&state, &mut log);
        app.add_message::<EditorAction>()
            .insert_resource(presets)
            .insert_resource(palette_file)
            .insert_resource(log)
            .insert_resource(settings::SettingsSaver::loaded(state.clone()))
            .insert_resource(state)
            .init_resource::<EditorQueue>()
            .init_resource::<Gallery>()
            .init_resource::<SaveDialog>()
            .init_resource::<RepaintDialog>()
            .init_resource::<PanelKeyboardFocus>()
            .insert_resource(SaveFolder(self.save_dir.clone()))
            .insert_resource(ToggleKey(self.toggle_key))
            .add_systems(
                Update,
                (
                    toggle_panel,
                    apply_actions,
                    apply_gallery_actions,
                    queue::track_progress,
                    collect_results,
                    gallery::play_sheets,
                )
                    .chain()
                    .in_set(PixelGenEditorSystems::Apply),
            )
            .add_systems(
                Last,
                settings::persist_settings.in_set(PixelGenEditorSystems::Persist),
            );
        if self.panel {
            ui::add_panel(app);
        }
    }
}

/// The palette file the saved settings name (not a built-in name), read for its swatches.
fn startup_palette(state: &EditorState, log: &mut EditorLog) -> PaletteFile {
    let Some(name) = state.pixel.palette.as_deref().map(str::trim) else {
        return PaletteFile::default();
    };
    if name.is_empty() || Palette::builtin(name).is_ok() {
        return PaletteFile::default();
    }
    match Palette::resolve(name) {
        Ok(p) => PaletteFile {
            loaded: Some((name.to_owned(), p)),
        },
        Err(e) => {
            log.error(format!("palette {name}: {e}"));
            PaletteFile::default()
        }
    }
}

/// The key from [`PixelGenEditorPlugin::toggle_key`].
#[derive(Resource)]
struct ToggleKey(Option<KeyCode>);

fn toggle_panel(
    key: Res<ToggleKey>,
    keys: Option<Res<ButtonInput<KeyCode>>>,
    focus: Res<PanelKeyboardFocus>,
    mut state: ResMut<EditorState>,
) {
    if focus.0 {
        return;
    }
    if let (Some(key), Some(keys)) = (key.0, keys)
        && keys.just_pressed(key)
    {
        state.visible = !state.visible;
    }
}

/// Submits `recipe` (as a sheet when it has frames) and returns its queue entry.
fn submit(
    pg: &mut PixelGen,
    recipe: Recipe,
    now: Duration,
    variation_of: Option<TicketId>,
) -> QueueEntry {
    let ticket = pg.submit(recipe);
    QueueEntry {
        variation_of,
        ..QueueEntry::new(ticket, now)
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_actions(
    mut actions: MessageReader<EditorAction>,
    mut state: ResMut<EditorState>,
    presets: Res<Presets>,
    mut queue: ResMut<EditorQueue>,
    gallery: Res<Gallery>,
    mut log: ResMut<EditorLog>,
    mut palette_file: ResMut<PaletteFile>,
    time: Res<Time<Real>>,
    pixel_gen: Option<PixelGen>,
) {
    let mut pixel_gen = pixel_gen;
    let now = time.elapsed();
    let missing_item = |id: &TicketId| format!("gallery item {id} is gone: pick one that is shown");
    for action in actions.read() {
        // The recipes this action submits (with the variation they belong to).
        let mut recipes: Vec<(Recipe, Option<TicketId>)> = Vec::new();
        match action {
            EditorAction::Generate => match state.recipe() {
                Ok(recipe) => recipes.push((recipe, None)),
                Err(e) => log.error(e.to_string()),
            },
            EditorAction::GenerateTileset => match state.tileset_recipe() {
                Ok(recipe) => recipes.push((recipe, None)),
                Err(e) => log.error(format!("cannot make the tileset: {e}")),
            },
            EditorAction::Cancel(id) => {
                if let Some(e) = queue.get(*id) {
                    e.ticket.cancel();
                }
            }
            EditorAction::ApplyPreset(name) => match presets.get(name) {
                Some(p) => p.apply(&mut state),
                None => log.error(format!("no preset called {name:?}")),
            },
            EditorAction::RollSeed => {
                state.seed = Seed::draw();
                state.seed_locked = true;
            }
            EditorAction::LoadPalette(path) => match Palette::load(path) {
                Ok(p) => {
                    let name = path.display().to_string();
                    log.note(format!("palette {name}: {} colours", p.len()));
                    state.pixel.palette = Some(name.clone());
                    palette_file.loaded = Some((name, p));
                }
                Err(e) => log.error(format!("palette {}: {e}", path.display())),
            },
            EditorAction::Regenerate(id) => match gallery.get(*id) {
                Some(item) => recipes.push((editor_recipe(&item.recipe), None)),
                None => log.error(missing_item(id)),
            },
            EditorAction::Variations { of, count, seeds } => match gallery.get(*of) {
                Some(item) => {
                    let base = item.recipe.seed.value().unwrap_or_else(Seed::draw);
                    for i in 1..=u64::from((*count).clamp(1, 64)) {
                        let mut r = editor_recipe(&item.recipe);
                        r.seed = Seed::Fixed(match seeds {
                            VariationSeeds::Consecutive => base.wrapping_add(i),
                            VariationSeeds::Random => Seed::draw(),
                        });
                        recipes.push((r, Some(*of)));
                    }
                }
                None => log.error(missing_item(of)),
            },
            EditorAction::Animate { of, action } => {
                match set_from_item(pixel_gen.as_mut(), gallery.get(*of), &state, |set| {
                    set.animation = Some(pixelgen::Animation::new(*action));
                }) {
                    Ok(recipe) => recipes.push((recipe, None)),
                    Err(e) => log.error(format!("cannot animate {of}: {e}")),
                }
            }
            EditorAction::Directions { of, count, mirror } => {
                match set_from_item(pixel_gen.as_mut(), gallery.get(*of), &state, |set| {
                    set.directions = Some(pixelgen::Directions {
                        count: *count,
                        mirror: *mirror,
                    });
                }) {
                    Ok(recipe) => recipes.push((recipe, None)),
                    Err(e) => log.error(format!("cannot turn {of}: {e}")),
                }
            }
            EditorAction::Repaint {
                item,
                mask,
                prompt,
                inpaint,
                grow,
            } => match repaint_recipe(
                pixel_gen.as_mut(),
                gallery.get(*item),
                mask,
                prompt,
                inpaint,
                grow,
            ) {
                Ok(recipe) => recipes.push((recipe, Some(*item))),
                Err(e) => log.error(format!("cannot repaint {item}: {e}")),
            },
            EditorAction::SaveToAssets { .. }
            | EditorAction::ApplyToTarget { .. }
            | EditorAction::Remove(_) => {}
        }
        if recipes.is_empty() {
            continue;
        }
        let Some(pg) = pixel_gen.as_mut() else {
            log.error("PixelGen is not ready: add PixelGenPlugin");
            continue;
        };
        for (recipe, variation_of) in recipes {
            queue.entries.push(submit(pg, recipe, now, variation_of));
        }
    }
}

/// The recipe of a set drawn after gallery `item`: its recipe as one sprite, with the item's
/// set (if any) changed by `change`, and the item's picture (a sheet's first frame) as the
/// reference every frame shares attention with and starts from.
fn set_from_item(
    pg: Option<&mut PixelGen>,
    item: Option<&GalleryItem>,
    state: &EditorState,
    change: impl FnOnce(&mut pixelgen::SetRecipe),
) -> Result<Recipe, String> {
    let item = item.ok_or("the gallery item is gone: pick one that is shown")?;
    let pg = pg.ok_or("PixelGen is not ready: add PixelGenPlugin")?;
    let image = item_pixels(pg, item)?;
    // A sheet's first frame is the reference.
    let first = item
        .layout
        .as_ref()
        .and_then(|h| pg.layouts().get(h))
        .and_then(|l| l.textures.first().copied());
    let image = match first {
        Some(r) => {
            image::imageops::crop_imm(&image, r.min.x, r.min.y, r.width(), r.height()).to_image()
        }
        None => image,
    };
    let path = pg
        .reference_from_pixels(&image)
        .map_err(|e| e.to_string())?;
    let mut set = item.recipe.set.clone().unwrap_or_default();
    change(&mut set);
    set.strength = state.set.strength;
    let set = set.with_reference_image(path, Some(state.set.start_strength));
    Ok(Recipe {
        frames: pixelgen::Frames::Single,
        sheet: None,
        set: Some(set),
        ..editor_recipe(&item.recipe)
    })
}

/// The pixels of gallery `item` (the whole sheet for a sheet).
fn item_pixels(pg: &mut PixelGen, item: &GalleryItem) -> Result<image::RgbaImage, String> {
    Ok(pg
        .images()
        .get(&item.image)
        .ok_or("its image is not loaded (yet)")?
        .clone()
        .try_into_dynamic()
        .map_err(|e| format!("its image cannot be read: {e}"))?
        .into_rgba8())
}

/// The recipe of "Repaint…" on gallery `item`: its recipe as an edit of its own pixels (and
/// `mask`), with `prompt`, `inpaint` and a fresh seed; with a non-zero `grow`, an outpaint on
/// the grown canvas. Checks the request before writing the source and mask files.
fn repaint_recipe(
    pg: Option<&mut PixelGen>,
    item: Option<&GalleryItem>,
    mask: &MaskCanvas,
    prompt: &str,
    inpaint: &pixelgen::InpaintParams,
    grow: &CanvasGrowth,
) -> Result<Recipe, String> {
    let item = item.ok_or("the gallery item is gone: pick one that is shown")?;
    let r = &item.recipe;
    if item.layout.is_some()
        || r.frames != pixelgen::Frames::Single
        || r.set.is_some()
        || r.tileset.is_some()
    {
        return Err("it is a sheet, a set or a tileset: Repaint edits single sprites".into());
    }
    let size = r.size;
    if mask.dimensions() != (size.width, size.height) {
        return Err(format!(
            "the mask is {}x{}, the sprite {size}: paint the mask on the sprite",
            mask.width(),
            mask.height()
        ));
    }
    let outpaint = !grow.is_zero();
    if mask.is_empty() && !outpaint {
        return Err("the mask is empty: paint the part to repaint first".into());
    }
    if mask.is_full() {
        return Err(
            "the mask covers the whole sprite: use Regenerate or Variations instead".into(),
        );
    }
    let canvas = grow.canvas(size)?;
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return Err("the prompt is empty: say what to draw in the masked part".into());
    }
    let pg = pg.ok_or("PixelGen is not ready: add PixelGenPlugin")?;
    let source = item_pixels(pg, item)?;
    if source.dimensions() != (size.width, size.height) {
        return Err(format!(
            "its image is {}x{}, not its recipe's size {size}",
            source.width(),
            source.height()
        ));
    }
    let base = editor_recipe(r);
    let (generation_size, pixel) = if outpaint {
        (
            CanvasGrowth::generation_size(size, r.generation_size, canvas),
            base.pixel.clone().map(|p| pixel_for_canvas(p, canvas)),
        )
    } else {
        (base.generation_size, base.pixel.clone())
    };
    let mut recipe = Recipe {
        prompt: prompt.to_owned(),
        seed: Seed::Fixed(Seed::draw()),
        size: canvas,
        generation_size,
        pixel,
        frames: pixelgen::Frames::Single,
        sheet: None,
        set: None,
        edit: Some(pixelgen::EditRecipe {
            // Placeholders while the options are checked: nothing is written before.
            source: "source.png".into(),
            mask: (!mask.is_empty()).then(|| pixelgen::edit::Mask::File("mask.png".into())),
            offset: outpaint.then(|| grow.offset()),
            inpaint: inpaint.clone(),
        }),
        ..base
    };
    recipe.validate().map_err(|e| e.to_string())?;
    if let Some(edit) = recipe.edit.as_mut() {
        let write = |pg: &mut PixelGen, image: &image::RgbaImage| {
            pg.reference_from_pixels(image).map_err(|e| e.to_string())
        };
        edit.source = write(pg, &source)?;
        if edit.mask.is_some() {
            let on_canvas = mask_on_canvas(mask, canvas, grow.offset());
            edit.mask = Some(pixelgen::edit::Mask::File(write(pg, &on_canvas)?));
        }
    }
    Ok(recipe)
}

/// `mask` (the sprite's size) placed at `offset` on a `canvas` that keeps everything else.
fn mask_on_canvas(
    mask: &MaskCanvas,
    canvas: pixelgen::Size,
    offset: (u32, u32),
) -> image::RgbaImage {
    let mut out =
        image::RgbaImage::from_pixel(canvas.width, canvas.height, image::Rgba([0, 0, 0, 255]));
    image::imageops::replace(
        &mut out,
        &mask.to_rgba(),
        i64::from(offset.0),
        i64::from(offset.1),
    );
    out
}

/// Pixel options made for a sprite, retargeted to a grown `canvas` (its canvas and the grid
/// detection's fallback size).
fn pixel_for_canvas(
    mut pixel: pixelgen::PixelOptions,
    canvas: pixelgen::Size,
) -> pixelgen::PixelOptions {
    if let Some(c) = pixel.canvas.as_mut() {
        c.width = canvas.width;
        c.height = canvas.height;
    }
    if pixel.grid.fallback_size.is_some() {
        pixel.grid.fallback_size = Some((canvas.width, canvas.height));
    }
    pixel
}

/// A gallery recipe resubmitted from the editor: same everything, editor priority.
fn editor_recipe(recipe: &Recipe) -> Recipe {
    Recipe {
        priority: Priority::Editor,
        ..recipe.clone()
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_gallery_actions(
    mut actions: MessageReader<EditorAction>,
    mut gallery: ResMut<Gallery>,
    mut dialog: ResMut<SaveDialog>,
    mut repaint: ResMut<RepaintDialog>,
    folder: Res<SaveFolder>,
    images: Option<Res<Assets<Image>>>,
    layouts: Option<Res<Assets<TextureAtlasLayout>>>,
    state: Res<EditorState>,
    mut sprites: Query<&mut Sprite, With<PixelGenTarget>>,
    names: Query<&Name>,
    mut commands: Commands,
    mut log: ResMut<EditorLog>,
) {
    for action in actions.read() {
        match action {
            EditorAction::SaveToAssets {
                item,
                name,
                overwrite,
            } => {
                let Some(entry) = gallery.items.iter_mut().find(|i| i.ticket == *item) else {
                    log.error(format!("gallery item {item} is gone: nothing to save"));
                    continue;
                };
                let Some(image) = images.as_deref().and_then(|i| i.get(&entry.image)) else {
                    log.error(format!(
                        "the image of {item} is not loaded: nothing to save"
                    ));
                    continue;
                };
                let atlas = entry
                    .layout
                    .as_ref()
                    .and_then(|h| layouts.as_deref()?.get(h));
                let sheet = atlas.map(|layout| SheetFrames {
                    layout,
                    fps: state.fps,
                });
                match save_to_assets(&folder.0, name, image, &entry.recipe, sheet, *overwrite) {
                    Ok(saved) => {
                        match &saved.tileset {
                            Some((tsx, index)) => log.note(format!(
                                "saved {}, {} and {}",
                                saved.png.display(),
                                tsx.display(),
                                index.display()
                            )),
                            None => log.note(format!("saved {}", saved.png.display())),
                        }
                        entry.saved_as = Some(saved.png);
                        *dialog = SaveDialog::default();
                    }
                    Err(e @ EditorError::Exists(_)) => {
                        dialog.item = Some(*item);
                        dialog.name.clone_from(name);
                        dialog.confirm_overwrite = true;
                        log.error(e.to_string());
                    }
                    Err(e) => log.error(e.to_string()),
                }
            }
            EditorAction::ApplyToTarget { item, target } => {
                let Some(entry) = gallery.items.iter().find(|i| i.ticket == *item) else {
                    log.error(format!("gallery item {item} is gone: nothing to apply"));
                    continue;
                };
                match gallery::apply_item(entry, *target, &mut sprites) {
                    Ok(playback) => {
                        let mut e = commands.entity(*target);
                        match playback {
                            Playback::Still => e.remove::<(SheetPlayback, ClipPlayer)>(),
                            Playback::Sheet(p) => e.remove::<ClipPlayer>().insert(p),
                            Playback::Clips(p) => e.remove::<SheetPlayback>().insert(p),
                        };
                        let who = names
                            .get(*target)
                            .map_or_else(|_| format!("entity {target}"), |n| n.to_string());
                        log.note(format!("{item} applied to {who}"));
                    }
                    Err(e) => log.error(e.to_string()),
                }
            }
            EditorAction::Remove(id) => {
                let before = gallery.items.len();
                gallery.items.retain(|i| i.ticket != *id);
                if gallery.items.len() == before {
                    continue;
                }
                for v in &mut gallery.items {
                    if v.variation_of == Some(*id) {
                        v.variation_of = None;
                    }
                }
                if dialog.item == Some(*id) {
                    *dialog = SaveDialog::default();
                }
                if repaint.item == Some(*id) {
                    *repaint = RepaintDialog::default();
                }
            }
            _ => {}
        }
    }
}

fn collect_results(
    mut finished: MessageReader<SpriteFinished>,
    mut failed: MessageReader<SpriteFailed>,
    mut queue: ResMut<EditorQueue>,
    mut gallery: ResMut<Gallery>,
    images: Option<Res<Assets<Image>>>,
    mut log: ResMut<EditorLog>,
) {
    for m in finished.read() {
        let Some(entry) = queue.take(m.ticket) else {
            continue;
        };
        let rgba = gallery::pixels_of(images.as_deref(), &m.image);
        let tileset = gallery::preview_of(&m.recipe, rgba.as_ref(), m.tileset.as_ref())
            .unwrap_or_else(|e| {
                log.error(format!("tileset {}: no preview: {e}", m.ticket));
                None
            });
        gallery.items.push(GalleryItem {
            ticket: m.ticket,
            image: m.image.clone(),
            layout: m.layout.clone(),
            recipe: m.recipe.clone(),
            saved: m.saved.clone(),
            saved_as: None,
            variation_of: entry.variation_of,
            seam: gallery::seam_of(rgba.as_ref()),
            clips: entry.ticket.clips(),
            consistency: m.consistency.clone(),
            tileset,
        });
    }
    for m in failed.read() {
        if queue.take(m.ticket).is_none() {
            continue;
        }
        match &m.error {
            crate::SpriteError::Cancelled => {}
            crate::SpriteError::EngineStart(_) => log.error(format!(
                "request {} failed: {}. No model yet? docs/models.md says which weights to \
                 get and where to put them",
                m.ticket, m.error
            )),
            e => log.error(format!("request {} failed: {e}", m.ticket)),
        }
    }
}
