//! The egui side panel: draws the editor's resources and writes [`EditorAction`]s.

use std::collections::{HashMap, HashSet};

use bevy::app::App;
use bevy::asset::{AssetId, Assets};
use bevy::ecs::entity::Entity;
use bevy::ecs::error::Result;
use bevy::ecs::message::MessageWriter;
use bevy::ecs::name::Name;
use bevy::ecs::query::With;
use bevy::ecs::system::{Local, Query, Res, ResMut};
use bevy::image::{Image, TextureAtlasLayout};
use bevy::time::{Real, Time};
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, EguiTextureHandle, egui};
use pixelgen::SchedulerKind;
use pixelgen::TilesetKind;
use pixelgen_pixel::palette::Palette;
use pixelgen_pixel::quantize::Dither;
use pixelgen_pixel::tile::DEFAULT_SEAM_THRESHOLD;

use super::{
    CanvasGrowth, EditorAction, EditorLog, EditorQueue, EditorState, Gallery, GalleryItem,
    MAX_BRUSH_RADIUS, MAX_EDITOR_FRAMES, MAX_EDITOR_SIDE, MAX_EDITOR_TILE_VARIATIONS, MAX_GROW,
    MIN_EDITOR_SIDE, MaskCanvas, PaletteFile, PanelKeyboardFocus, PixelGenTarget, Presets,
    RepaintDialog, SaveDialog, TILE_SIZES, TilesetPreview, VariationSeeds, frame_uv,
    short_duration, suggested_name,
};
use crate::request::TicketStatus;

/// The egui id (`egui::Id::new(PROMPT_FIELD)`) of the panel's prompt field, e.g. to give it
/// the keyboard from a script.
pub const PROMPT_FIELD: &str = "pixelgen_editor_prompt";

/// How many of the newest gallery items the panel shows.
const GALLERY_SHOWN: usize = 48;
/// Gallery thumbnails are scaled by a whole factor to about this many points (zoom 0).
const THUMB_POINTS: f32 = 96.0;
/// Queue previews are drawn this many points wide.
const PREVIEW_POINTS: f32 = 48.0;
/// "Repaint…" shows the sprite scaled by a whole factor to about this many points.
const REPAINT_POINTS: f32 = 320.0;
/// A tileset's preview map draws each tile this many points wide.
const MAP_TILE_POINTS: f32 = 20.0;

/// Adds egui (when missing) and the panel system.
pub(super) fn add_panel(app: &mut App) {
    if !app.is_plugin_added::<EguiPlugin>() {
        app.add_plugins(EguiPlugin::default());
    }
    app.add_systems(EguiPrimaryContextPass, draw_panel);
}

/// The drawn size of a `w` x `h` sprite: `zoom` times its pixels, or (zoom 0) a whole-number
/// zoom that brings it near [`THUMB_POINTS`] (nearest sampling keeps pixels square).
fn thumb_size(w: u32, h: u32, zoom: u32) -> egui::Vec2 {
    let zoom = if zoom == 0 {
        let side = w.max(h).max(1) as f32;
        (THUMB_POINTS / side).floor().max(1.0)
    } else {
        zoom as f32
    };
    egui::vec2(w as f32 * zoom, h as f32 * zoom)
}

/// What the panel keeps between frames that is not editor state.
#[derive(Default)]
struct PanelLocal {
    /// The scene sprite "apply to selected" changes.
    target: Option<Entity>,
    /// The palette file path being typed.
    palette_path: String,
    /// Images registered as egui textures last frame.
    registered: HashSet<AssetId<Image>>,
    /// The mask pixel under the pointer at the last frame of a brush stroke.
    stroke: Option<(i64, i64)>,
}

/// Everything the gallery drawing needs besides the `Ui`.
struct GalleryView<'a> {
    ctx: &'a egui::Context,
    textures: &'a HashMap<AssetId<Image>, egui::TextureId>,
    layouts: Option<&'a Assets<TextureAtlasLayout>>,
    gallery: &'a Gallery,
    target: Option<Entity>,
}

#[allow(clippy::too_many_arguments)]
fn draw_panel(
    mut contexts: EguiContexts,
    mut state: ResMut<EditorState>,
    presets: Res<Presets>,
    queue: Res<EditorQueue>,
    gallery: Res<Gallery>,
    mut log: ResMut<EditorLog>,
    mut dialog: ResMut<SaveDialog>,
    mut repaint: ResMut<RepaintDialog>,
    palette_file: Res<PaletteFile>,
    mut focus: ResMut<PanelKeyboardFocus>,
    targets: Query<(Entity, Option<&Name>), With<PixelGenTarget>>,
    layouts: Option<Res<Assets<TextureAtlasLayout>>>,
    time: Res<Time<Real>>,
    mut actions: MessageWriter<EditorAction>,
    mut local: Local<PanelLocal>,
) -> Result {
    if !state.visible {
        if focus.0 {
            focus.0 = false;
        }
        return Ok(());
    }
    let start = gallery.items.len().saturating_sub(GALLERY_SHOWN);
    let mut textures = HashMap::new();
    let ids = gallery.items[start..]
        .iter()
        .map(|item| item.image.id())
        .chain(
            queue
                .entries
                .iter()
                .filter_map(|e| e.preview.as_ref().map(|h| h.id())),
        )
        .chain(
            repaint
                .item
                .and_then(|id| gallery.get(id))
                .map(|item| item.image.id()),
        );
    for id in ids {
        textures.insert(id, contexts.add_image(EguiTextureHandle::Weak(id)));
    }
    // Textures no longer shown (finished previews, items scrolled out) give back their ids.
    for gone in local
        .registered
        .iter()
        .filter(|id| !textures.contains_key(id))
    {
        contexts.remove_image(*gone);
    }
    local.registered = textures.keys().copied().collect();
    if local.target.is_some_and(|t| !targets.contains(t)) {
        local.target = None;
    }
    let ctx = contexts.ctx_mut()?.clone();
    let mut viewport = egui::Ui::new(
        ctx.clone(),
        "pixelgen_editor_viewport".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let now = time.elapsed();
    egui::Panel::left("pixelgen_editor")
        .default_size(360.0)
        .resizable(true)
        .show(&mut viewport, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.heading("PixelGen");
                for e in &log.errors {
                    ui.colored_label(egui::Color32::from_rgb(0xff, 0x70, 0x70), e);
                }
                if !log.errors.is_empty() || !log.notes.is_empty() {
                    ui.horizontal(|ui| {
                        if let Some(note) = log.notes.last() {
                            ui.colored_label(egui::Color32::from_rgb(0x90, 0xe0, 0x90), note);
                        }
                        if ui
                            .small_button("Clear")
                            .on_hover_text("clear messages")
                            .clicked()
                        {
                            log.errors.clear();
                            log.notes.clear();
                        }
                    });
                }
                prompt_side(
                    ui,
                    &mut state,
                    &presets,
                    &palette_file,
                    &mut local.palette_path,
                    &mut actions,
                );
                ui.separator();
                queue_section(ui, &queue, &textures, now, &mut actions);
                ui.separator();
                target_picker(ui, &targets, &mut local.target);
                let view = GalleryView {
                    ctx: &ctx,
                    textures: &textures,
                    layouts: layouts.as_deref(),
                    gallery: &gallery,
                    target: local.target,
                };
                gallery_section(
                    ui,
                    &view,
                    start,
                    &mut state,
                    &mut dialog,
                    &mut repaint,
                    &mut actions,
                );
            });
        });
    let view = GalleryView {
        ctx: &ctx,
        textures: &textures,
        layouts: layouts.as_deref(),
        gallery: &gallery,
        target: local.target,
    };
    repaint_window(
        &view,
        &mut repaint,
        &mut state,
        &mut local.stroke,
        &mut actions,
    );
    let wants = ctx.egui_wants_keyboard_input();
    if focus.0 != wants {
        focus.0 = wants;
    }
    Ok(())
}

fn prompt_side(
    ui: &mut egui::Ui,
    state: &mut EditorState,
    presets: &Presets,
    palette_file: &PaletteFile,
    palette_path: &mut String,
    actions: &mut MessageWriter<EditorAction>,
) {
    let current = state.preset.clone().unwrap_or_else(|| "(none)".into());
    egui::ComboBox::from_label("Style")
        .selected_text(current)
        .show_ui(ui, |ui| {
            for p in &presets.presets {
                if ui
                    .selectable_label(state.preset.as_deref() == Some(&p.name), &p.name)
                    .clicked()
                {
                    actions.write(EditorAction::ApplyPreset(p.name.clone()));
                }
            }
        });
    ui.label("Prompt");
    ui.add(
        egui::TextEdit::multiline(&mut state.prompt)
            .id(egui::Id::new(PROMPT_FIELD))
            .desired_rows(2)
            .hint_text("a red potion"),
    );
    ui.horizontal(|ui| {
        ui.label("Negative");
        ui.text_edit_singleline(&mut state.negative);
    });
    ui.horizontal(|ui| {
        ui.label("Size");
        let range = MIN_EDITOR_SIDE..=MAX_EDITOR_SIDE;
        ui.add(egui::DragValue::new(&mut state.width).range(range.clone()));
        ui.label("x");
        ui.add(egui::DragValue::new(&mut state.height).range(range));
        ui.checkbox(&mut state.tiling, "Tiling").on_hover_text(
            "generate seamless tiles (wrap padding in the model) and show results tiled \
                 3x3 with their seam score",
        );
    });

    let frames = match state.sheet.count {
        0 | 1 => "Frames: single sprite".to_owned(),
        n => format!("Frames: sheet of {n}"),
    };
    egui::CollapsingHeader::new(frames)
        .id_salt("pixelgen_frames")
        .default_open(state.sheet.count > 1)
        .show(ui, |ui| frames_form(ui, state));

    egui::CollapsingHeader::new("Pixel art")
        .default_open(true)
        .show(ui, |ui| {
            pixel_form(ui, state, palette_file, palette_path, actions);
        });

    ui.horizontal(|ui| {
        ui.checkbox(&mut state.seed_locked, "Lock seed");
        ui.add_enabled(state.seed_locked, egui::DragValue::new(&mut state.seed));
        if ui.button("Dice").on_hover_text("draw a new seed").clicked() {
            actions.write(EditorAction::RollSeed);
        }
    });
    egui::CollapsingHeader::new(format!("LoRAs ({})", state.loras.len()))
        .id_salt("pixelgen_loras")
        .show(ui, |ui| loras_form(ui, state));
    egui::CollapsingHeader::new(format!(
        "Sampling ({} steps, guidance {:.1})",
        state.steps, state.guidance
    ))
    .id_salt("pixelgen_sampling")
    .show(ui, |ui| {
        ui.add(egui::Slider::new(&mut state.steps, 1..=100).text("steps"));
        ui.add(egui::Slider::new(&mut state.guidance, 0.0..=15.0).text("guidance"));
        let sampler = state
            .sampler
            .map_or_else(|| "model default".to_owned(), |s| format!("{s:?}"));
        egui::ComboBox::from_label("Sampler")
            .selected_text(sampler)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut state.sampler, None, "model default");
                for s in SchedulerKind::ALL {
                    ui.selectable_value(&mut state.sampler, Some(s), format!("{s:?}"));
                }
            });
    });

    let ready = !state.prompt.trim().is_empty();
    let label = if state.sheet.count > 1 {
        format!("Generate sheet ({} frames)", state.sheet.count)
    } else {
        "Generate".to_owned()
    };
    if ui.add_enabled(ready, egui::Button::new(label)).clicked() {
        actions.write(EditorAction::Generate);
    }
    egui::CollapsingHeader::new("Tileset…")
        .id_salt("pixelgen_tileset")
        .show(ui, |ui| tileset_form(ui, state, actions));
}

/// "Tileset…": two terrains, the kind, tile size and variations; "Generate tileset" sends
/// [`EditorAction::GenerateTileset`] (seed, sampling, LoRAs and colours come from the panel).
fn tileset_form(
    ui: &mut egui::Ui,
    state: &mut EditorState,
    actions: &mut MessageWriter<EditorAction>,
) {
    let t = &mut state.tileset;
    egui::Grid::new("pixelgen_tileset_form").show(ui, |ui| {
        ui.label("Terrain A");
        ui.add(egui::TextEdit::singleline(&mut t.terrain_a).hint_text("grass"));
        ui.end_row();
        ui.label("Terrain B");
        ui.add(egui::TextEdit::singleline(&mut t.terrain_b).hint_text("water"))
            .on_hover_text("a blob set's blobs");
        ui.end_row();
        ui.label("Style");
        ui.add(egui::TextEdit::singleline(&mut t.prompt).hint_text("top-down pixel art game tile"));
        ui.end_row();
        ui.label("Kind");
        ui.horizontal(|ui| {
            ui.radio_value(&mut t.kind, TilesetKind::Wang, "Wang 16")
                .on_hover_text("2-corner set: 16 tiles, atlas index = corner code");
            ui.radio_value(&mut t.kind, TilesetKind::Blob, "Blob 47")
                .on_hover_text("47 tiles for B blobs on A, and the plain A tile");
        });
        ui.end_row();
        ui.label("Tile");
        ui.horizontal(|ui| {
            for side in TILE_SIZES {
                ui.radio_value(&mut t.tile_size, side, format!("{side}"));
            }
            ui.label("px");
        });
        ui.end_row();
        ui.label("Variations");
        ui.add(egui::Slider::new(
            &mut t.variations,
            0..=MAX_EDITOR_TILE_VARIATIONS,
        ))
        .on_hover_text("extra tiles of each terrain, their borders the base's");
        ui.end_row();
    });
    ui.small("Seed, sampling, LoRAs, colours and palette come from the panel above.");
    let ready = !t.terrain_a.trim().is_empty() && !t.terrain_b.trim().is_empty();
    if ui
        .add_enabled(ready, egui::Button::new("Generate tileset"))
        .clicked()
    {
        actions.write(EditorAction::GenerateTileset);
    }
}

fn loras_form(ui: &mut egui::Ui, state: &mut EditorState) {
    let mut remove = None;
    for (i, l) in state.loras.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            let mut path = l.path.display().to_string();
            let edit = ui.add(
                egui::TextEdit::singleline(&mut path)
                    .hint_text("file.safetensors")
                    .desired_width(120.0),
            );
            if edit.changed() {
                l.path = path.into();
            }
            ui.add(
                egui::DragValue::new(&mut l.unet_strength)
                    .range(-2.0..=2.0)
                    .speed(0.05)
                    .prefix("unet "),
            );
            ui.add(
                egui::DragValue::new(&mut l.text_strength)
                    .range(-2.0..=2.0)
                    .speed(0.05)
                    .prefix("text "),
            );
            if ui.small_button("x").on_hover_text("remove").clicked() {
                remove = Some(i);
            }
        });
    }
    if let Some(i) = remove {
        state.loras.remove(i);
    }
    if ui.small_button("Add LoRA").clicked() {
        state.loras.push(pixelgen::LoraRef::default());
    }
}

fn frames_form(ui: &mut egui::Ui, state: &mut EditorState) {
    let sheet = &mut state.sheet;
    ui.horizontal(|ui| {
        ui.label("Frames");
        ui.add(egui::DragValue::new(&mut sheet.count).range(1..=MAX_EDITOR_FRAMES));
        if sheet.count > 1 {
            ui.radio_value(&mut sheet.per_frame, false, "template");
            ui.radio_value(&mut sheet.per_frame, true, "per frame");
        }
    });
    if sheet.count <= 1 {
        ui.label("1 frame: a single sprite");
        return;
    }
    if sheet.per_frame {
        sheet.prompts.resize(sheet.count as usize, String::new());
        for (i, p) in sheet.prompts.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                ui.label(format!("{}", i + 1));
                ui.text_edit_singleline(p);
            });
        }
    } else {
        ui.text_edit_singleline(&mut sheet.template)
            .on_hover_text("{prompt}: the prompt, {frame}: 1-based frame number, {count}");
    }
}

fn pixel_form(
    ui: &mut egui::Ui,
    state: &mut EditorState,
    palette_file: &PaletteFile,
    palette_path: &mut String,
    actions: &mut MessageWriter<EditorAction>,
) {
    let px = &mut state.pixel;
    ui.horizontal(|ui| {
        let mut limit = px.colors.is_some();
        ui.add_enabled(!px.auto_colors, egui::Checkbox::new(&mut limit, "Colours"));
        let mut n = px.colors.unwrap_or(16);
        ui.add_enabled(
            limit && !px.auto_colors,
            egui::DragValue::new(&mut n).range(2..=64),
        );
        px.colors = limit.then_some(n);
        ui.checkbox(&mut px.auto_colors, "auto")
            .on_hover_text("let the quantizer pick the count from the image");
    });
    let palette_name = px.palette.clone().unwrap_or_else(|| "(none)".into());
    egui::ComboBox::from_label("Palette")
        .selected_text(palette_name)
        .show_ui(ui, |ui| {
            if ui
                .selectable_label(px.palette.is_none(), "(none)")
                .clicked()
            {
                px.palette = None;
            }
            for &name in Palette::builtin_names() {
                if ui
                    .selectable_label(px.palette.as_deref() == Some(name), name)
                    .clicked()
                {
                    px.palette = Some(name.to_owned());
                }
            }
            if let Some((path, _)) = &palette_file.loaded
                && ui
                    .selectable_label(px.palette.as_deref() == Some(path), path)
                    .clicked()
            {
                px.palette = Some(path.clone());
            }
        });
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(palette_path)
                .hint_text("palette file (.gpl .hex .pal .png)")
                .desired_width(190.0),
        );
        let ready = !palette_path.trim().is_empty();
        if ui.add_enabled(ready, egui::Button::new("Load")).clicked() {
            actions.write(EditorAction::LoadPalette(palette_path.trim().into()));
        }
    });
    match (&palette_file.loaded, px.palette.as_deref()) {
        (Some((path, p)), Some(name)) if path == name => swatches(ui, p),
        (_, Some(name)) => {
            if let Ok(p) = Palette::builtin(name) {
                swatches(ui, &p);
            }
        }
        _ => {}
    }
    egui::ComboBox::from_label("Dither")
        .selected_text(px.dither.name())
        .show_ui(ui, |ui| {
            for d in Dither::ALL {
                ui.selectable_value(&mut px.dither, d, d.name());
            }
        });
    ui.checkbox(&mut px.transparent, "Transparent background");
    ui.horizontal(|ui| {
        ui.checkbox(&mut px.outline, "Outline");
        ui.add_enabled_ui(px.outline, |ui| {
            ui.color_edit_button_srgba_unmultiplied(&mut px.outline_color);
        });
    });
}

fn swatches(ui: &mut egui::Ui, palette: &Palette) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(1.0, 1.0);
        for [r, g, b] in palette.colors.iter().copied() {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter()
                .rect_filled(rect, 0.0, egui::Color32::from_rgb(r, g, b));
        }
    });
}

fn queue_section(
    ui: &mut egui::Ui,
    queue: &EditorQueue,
    textures: &HashMap<AssetId<Image>, egui::TextureId>,
    now: std::time::Duration,
    actions: &mut MessageWriter<EditorAction>,
) {
    ui.label(format!("Queue ({})", queue.entries.len()));
    for e in &queue.entries {
        let t = &e.ticket;
        ui.horizontal(|ui| {
            match e.preview.as_ref().and_then(|h| textures.get(&h.id())) {
                Some(tex) => {
                    let r = t.recipe().generation_size;
                    let h = PREVIEW_POINTS * r.height as f32 / r.width.max(1) as f32;
                    ui.add(egui::Image::new(egui::load::SizedTexture::new(
                        *tex,
                        egui::vec2(PREVIEW_POINTS, h),
                    )));
                }
                None => {
                    ui.add_space(PREVIEW_POINTS);
                }
            }
            ui.vertical(|ui| {
                let (fraction, text) = match t.status() {
                    TicketStatus::Queued => (0.0, "queued".to_owned()),
                    TicketStatus::Running { step, total } => {
                        (e.fraction(), format!("{step}/{total}"))
                    }
                    TicketStatus::Done { .. } => (1.0, "done".to_owned()),
                    TicketStatus::Failed(err) => (0.0, err.to_string()),
                };
                ui.horizontal(|ui| {
                    ui.label(format!("{}", t.id()));
                    ui.add(
                        egui::ProgressBar::new(fraction)
                            .text(text)
                            .desired_width(150.0),
                    );
                    if ui.small_button("Cancel").clicked() {
                        actions.write(EditorAction::Cancel(t.id()));
                    }
                });
                let eta = e.eta(now).map_or_else(
                    || "ETA …".to_owned(),
                    |d| format!("ETA {}", short_duration(d)),
                );
                ui.small(format!("{} elapsed, {eta}", short_duration(e.elapsed(now))));
            });
        })
        .response
        .on_hover_text(&t.recipe().prompt);
    }
}

fn target_picker(
    ui: &mut egui::Ui,
    targets: &Query<(Entity, Option<&Name>), With<PixelGenTarget>>,
    selected: &mut Option<Entity>,
) {
    let label = |e: Entity, n: Option<&Name>| {
        n.map_or_else(|| format!("entity {e}"), |n| n.as_str().to_owned())
    };
    let text = selected
        .and_then(|e| targets.get(e).ok())
        .map_or_else(|| "(none)".to_owned(), |(e, n)| label(e, n));
    egui::ComboBox::from_label("Apply target")
        .selected_text(text)
        .show_ui(ui, |ui| {
            ui.selectable_value(selected, None, "(none)");
            for (e, n) in targets {
                ui.selectable_value(selected, Some(e), label(e, n));
            }
        })
        .response
        .on_hover_text("scene sprites marked PixelGenTarget");
}

fn gallery_section(
    ui: &mut egui::Ui,
    view: &GalleryView<'_>,
    start: usize,
    state: &mut EditorState,
    dialog: &mut SaveDialog,
    repaint: &mut RepaintDialog,
    actions: &mut MessageWriter<EditorAction>,
) {
    ui.horizontal(|ui| {
        ui.label(format!("Gallery ({})", view.gallery.items.len()));
        ui.add(
            egui::DragValue::new(&mut state.zoom)
                .range(0..=16)
                .prefix("zoom "),
        )
        .on_hover_text("0: fit");
        ui.add(
            egui::DragValue::new(&mut state.fps)
                .range(1.0..=30.0)
                .suffix(" fps"),
        );
        ui.menu_button(format!("{} variations", state.variations), |ui| {
            ui.add(
                egui::DragValue::new(&mut state.variations)
                    .range(1..=16)
                    .prefix("count "),
            );
            ui.radio_value(
                &mut state.variation_seeds,
                VariationSeeds::Consecutive,
                "consecutive seeds (seed + 1, + 2, ...)",
            );
            ui.radio_value(
                &mut state.variation_seeds,
                VariationSeeds::Random,
                "random seeds",
            );
        });
    });
    save_dialog(ui, dialog, actions);
    let shown = &view.gallery.items[start..];
    for item in shown.iter().rev().filter(|i| i.variation_of.is_none()) {
        ui.horizontal(|ui| {
            item_image(ui, view, item, state);
            if let Some(preview) = &item.tileset {
                tileset_map(ui, view, item, preview);
            }
            ui.vertical(|ui| {
                ui.label(format!("{} {}", item.ticket, item.recipe.size));
                if let Some(preview) = &item.tileset {
                    let colour = if preview.seams.passed() {
                        egui::Color32::from_rgb(0x90, 0xe0, 0x90)
                    } else {
                        egui::Color32::from_rgb(0xff, 0xb0, 0x60)
                    };
                    ui.colored_label(colour, preview.seams.line())
                        .on_hover_text(
                            "every edge two tiles of the set may share, scored on the atlas",
                        );
                }
                if let Some(seed) = item.recipe.seed.value() {
                    ui.label(format!("seed {seed}"));
                }
                if let Some(line) = item.consistency_line() {
                    let clips: Vec<&str> = item.clips.names().collect();
                    ui.small(line).on_hover_text(format!(
                        "measured on the finished frames against the first; the preview \
                         plays every clip in turn: {}",
                        clips.join(", ")
                    ));
                }
                item_actions(ui, view, item, state, dialog, repaint, actions);
            });
        });
        let variations: Vec<&GalleryItem> = shown
            .iter()
            .filter(|v| v.variation_of == Some(item.ticket))
            .collect();
        if !variations.is_empty() {
            ui.indent(("variations", item.ticket.0), |ui| {
                ui.horizontal_wrapped(|ui| {
                    for v in variations {
                        ui.vertical(|ui| {
                            item_image(ui, view, v, state);
                            ui.menu_button(
                                format!("seed {}", v.recipe.seed.value().unwrap_or_default()),
                                |ui| item_actions(ui, view, v, state, dialog, repaint, actions),
                            );
                        });
                    }
                });
            });
        }
    }
}

/// The item's picture: the current frame of a sheet, 3x3 tiled when tiling is on.
fn item_image(ui: &mut egui::Ui, view: &GalleryView<'_>, item: &GalleryItem, state: &EditorState) {
    let Some(tex) = view.textures.get(&item.image.id()) else {
        ui.label("(not shown)");
        return;
    };
    if let Some(preview) = &item.tileset {
        // A tileset: the whole atlas.
        let (w, h) = preview.atlas_size;
        let mut size = thumb_size(w, h, state.zoom);
        let longest = size.x.max(size.y);
        if state.zoom == 0 && longest > 2.0 * THUMB_POINTS {
            // A large atlas at zoom 0 is shrunk to fit the panel.
            size *= 2.0 * THUMB_POINTS / longest;
        }
        ui.add(egui::Image::new(egui::load::SizedTexture::new(*tex, size)))
            .on_hover_text(&item.recipe.prompt);
        return;
    }
    let size = thumb_size(item.recipe.size.width, item.recipe.size.height, state.zoom);
    let uv = item
        .layout
        .as_ref()
        .and_then(|h| view.layouts?.get(h))
        .and_then(|layout| frame_uv(layout, item.frame_at(view.gallery.clock, state.fps)))
        .map_or(
            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
            |r| {
                egui::Rect::from_min_max(egui::pos2(r.min.x, r.min.y), egui::pos2(r.max.x, r.max.y))
            },
        );
    let image =
        |scale: f32| egui::Image::new(egui::load::SizedTexture::new(*tex, size * scale)).uv(uv);
    if !state.tiling {
        ui.add(image(1.0)).on_hover_text(&item.recipe.prompt);
        return;
    }
    ui.vertical(|ui| {
        ui.spacing_mut().item_spacing = egui::Vec2::ZERO;
        for _ in 0..3 {
            ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing = egui::Vec2::ZERO;
                for _ in 0..3 {
                    ui.add(image(0.5));
                }
            });
        }
        if let Some(seam) = item.seam {
            let verdict = if seam <= DEFAULT_SEAM_THRESHOLD {
                "tiles"
            } else {
                "seam visible"
            };
            ui.small(format!("seam {seam:.2}: {verdict}"));
        }
    });
}

/// A tileset's preview map: each map tile painted from its atlas cell of the item's texture.
fn tileset_map(
    ui: &mut egui::Ui,
    view: &GalleryView<'_>,
    item: &GalleryItem,
    preview: &TilesetPreview,
) {
    let Some(tex) = view.textures.get(&item.image.id()).copied() else {
        return;
    };
    let (w, h) = (preview.width(), preview.height());
    let size = egui::vec2(w as f32, h as f32) * MAP_TILE_POINTS;
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    for (i, &index) in preview.map.iter().enumerate() {
        let Some(uv) = preview.uv(index) else {
            continue;
        };
        let (x, y) = ((i % w) as f32, (i / w) as f32);
        let cell = egui::Rect::from_min_size(
            rect.min + egui::vec2(x, y) * MAP_TILE_POINTS,
            egui::Vec2::splat(MAP_TILE_POINTS),
        );
        let uv = egui::Rect::from_min_max(
            egui::pos2(uv.min.x, uv.min.y),
            egui::pos2(uv.max.x, uv.max.y),
        );
        painter.image(tex, cell, uv, egui::Color32::WHITE);
    }
    response.on_hover_text(format!(
        "a {}x{h} map autotiled from the {} set",
        w,
        preview.kind.name()
    ));
}

fn item_actions(
    ui: &mut egui::Ui,
    view: &GalleryView<'_>,
    item: &GalleryItem,
    state: &mut EditorState,
    dialog: &mut SaveDialog,
    repaint: &mut RepaintDialog,
    actions: &mut MessageWriter<EditorAction>,
) {
    ui.horizontal_wrapped(|ui| {
        if ui.small_button("Regenerate").clicked() {
            actions.write(EditorAction::Regenerate(item.ticket));
        }
        if ui.small_button("Variations").clicked() {
            actions.write(EditorAction::Variations {
                of: item.ticket,
                count: state.variations,
                seeds: state.variation_seeds,
            });
        }
        set_menus(ui, item, state, actions);
        // Single sprites only: sheets and sets are not edited.
        if item.layout.is_none()
            && ui
                .small_button("Repaint…")
                .on_hover_text("paint a mask and redraw that part, keeping the rest")
                .clicked()
        {
            let size = item.recipe.size;
            *repaint =
                RepaintDialog::open(item.ticket, size.width, size.height, &item.recipe.prompt);
        }
        if ui.small_button("Save to assets…").clicked() {
            *dialog = SaveDialog {
                item: Some(item.ticket),
                name: suggested_name(&item.recipe),
                confirm_overwrite: false,
            };
        }
        let apply = ui.add_enabled(view.target.is_some(), egui::Button::new("Apply").small());
        if let Some(target) = view.target
            && apply
                .on_hover_text("show it on the selected target sprite")
                .clicked()
        {
            actions.write(EditorAction::ApplyToTarget {
                item: item.ticket,
                target,
            });
        }
        if ui.small_button("Copy recipe").clicked()
            && let Ok(text) = item.recipe.to_ron()
        {
            view.ctx.copy_text(text);
        }
        if ui.small_button("Edit recipe").clicked() {
            state.load_recipe(&item.recipe);
        }
        if ui
            .small_button("Remove")
            .on_hover_text("drop it from the gallery")
            .clicked()
        {
            actions.write(EditorAction::Remove(item.ticket));
        }
    });
    if let Some(path) = &item.saved_as {
        ui.small(format!("saved as {}", path.display()));
    }
}

/// "Animate…" and "Directions…": a set drawn after the item, with its settings.
fn set_menus(
    ui: &mut egui::Ui,
    item: &GalleryItem,
    state: &mut EditorState,
    actions: &mut MessageWriter<EditorAction>,
) {
    let strengths = |ui: &mut egui::Ui, state: &mut EditorState| {
        ui.add(egui::Slider::new(&mut state.set.strength, 0.0..=1.0).text("follow the sprite"))
            .on_hover_text("shared attention with the sprite: 0 off, 1 full");
        ui.add(egui::Slider::new(&mut state.set.start_strength, 0.05..=1.0).text("redraw"))
            .on_hover_text("how much of the sprite each frame redraws (image to image)");
    };
    ui.menu_button("Animate…", |ui| {
        for action in pixelgen::Action::ALL {
            let t = action.template();
            ui.radio_value(
                &mut state.set.action,
                action,
                format!("{} ({} frames, {} ms)", action.name(), t.frames, t.frame_ms),
            );
        }
        strengths(ui, state);
        if ui.button("Animate").clicked() {
            actions.write(EditorAction::Animate {
                of: item.ticket,
                action: state.set.action,
            });
            ui.close();
        }
    });
    ui.menu_button("Directions…", |ui| {
        ui.horizontal(|ui| {
            ui.radio_value(&mut state.set.directions, 4, "4 views");
            ui.radio_value(&mut state.set.directions, 8, "8 views");
        });
        ui.checkbox(&mut state.set.mirror, "mirror east into west");
        strengths(ui, state);
        if ui.button("Make the views").clicked() {
            actions.write(EditorAction::Directions {
                of: item.ticket,
                count: state.set.directions,
                mirror: state.set.mirror,
            });
            ui.close();
        }
    });
}

fn save_dialog(
    ui: &mut egui::Ui,
    dialog: &mut SaveDialog,
    actions: &mut MessageWriter<EditorAction>,
) {
    let Some(item) = dialog.item else {
        return;
    };
    ui.group(|ui| {
        ui.label(format!("Save {item} to assets as"));
        let edit = ui.text_edit_singleline(&mut dialog.name);
        if edit.changed() {
            dialog.confirm_overwrite = false;
        }
        ui.horizontal(|ui| {
            if dialog.confirm_overwrite {
                if ui.button("Overwrite").clicked() {
                    actions.write(EditorAction::SaveToAssets {
                        item,
                        name: dialog.name.clone(),
                        overwrite: true,
                    });
                }
            } else if ui.button("Save").clicked() {
                actions.write(EditorAction::SaveToAssets {
                    item,
                    name: dialog.name.clone(),
                    overwrite: false,
                });
            }
            if ui.button("Close").clicked() {
                *dialog = SaveDialog::default();
            }
        });
    });
}

/// "Repaint…": a window with the item enlarged under its mask, the brush, the prompt and the
/// inpaint options; "Repaint" sends [`EditorAction::Repaint`].
fn repaint_window(
    view: &GalleryView<'_>,
    repaint: &mut RepaintDialog,
    state: &mut EditorState,
    stroke: &mut Option<(i64, i64)>,
    actions: &mut MessageWriter<EditorAction>,
) {
    let Some(id) = repaint.item else {
        return;
    };
    let Some(item) = view.gallery.get(id) else {
        // The item was removed: nothing to repaint.
        *repaint = RepaintDialog::default();
        return;
    };
    let mut open = true;
    egui::Window::new(format!("Repaint {id}"))
        .id(egui::Id::new("pixelgen_repaint"))
        .open(&mut open)
        .resizable(false)
        .show(view.ctx, |ui| {
            ui.label("Left drag marks what to repaint, right drag erases; the rest is kept.");
            let texture = view.textures.get(&item.image.id()).copied();
            let brush = state.repaint.brush;
            mask_canvas(ui, texture, &mut repaint.mask, repaint.grow, brush, stroke);
            ui.add(
                egui::Slider::new(&mut state.repaint.brush, 0..=MAX_BRUSH_RADIUS)
                    .text("brush radius"),
            )
            .on_hover_text("in sprite pixels; 0 paints one pixel");
            ui.horizontal(|ui| {
                let mask = &mut repaint.mask;
                if ui
                    .button("Clear")
                    .on_hover_text("keep everything")
                    .clicked()
                {
                    mask.clear();
                }
                if ui.button("Invert").clicked() {
                    mask.invert();
                }
                if ui
                    .button("All")
                    .on_hover_text("repaint everything")
                    .clicked()
                {
                    mask.fill();
                }
                ui.label(format!(
                    "{} of {} pixels",
                    mask.count(),
                    u64::from(mask.width()) * u64::from(mask.height())
                ));
            });
            grow_form(ui, &mut repaint.grow, item.recipe.size);
            ui.label("Prompt");
            ui.add(egui::TextEdit::multiline(&mut repaint.prompt).desired_rows(2));
            ui.add(egui::Slider::new(&mut state.repaint.strength, 0.05..=1.0).text("strength"))
                .on_hover_text("how much of the masked part is redrawn: 1 from noise");
            ui.add(
                egui::Slider::new(&mut state.repaint.mask_blur, 0.0..=pixelgen::MAX_MASK_BLUR)
                    .logarithmic(true)
                    .text("mask blur"),
            )
            .on_hover_text(
                "blur radius in model pixels before the mask is made sharp again: rounds \
                 its corners and fills small holes",
            );
            let label = if repaint.grow.is_zero() {
                "Repaint"
            } else {
                "Grow and repaint"
            };
            if ui
                .button(label)
                .on_hover_text("a new gallery item, under this one")
                .clicked()
            {
                actions.write(EditorAction::Repaint {
                    item: id,
                    mask: repaint.mask.clone(),
                    prompt: repaint.prompt.clone(),
                    inpaint: state.repaint.inpaint(),
                    grow: repaint.grow,
                });
            }
        });
    if !open {
        *repaint = RepaintDialog::default();
        *stroke = None;
    }
}

/// "Grow canvas": pixels to add on each side, with presets; the preview shows the outline.
fn grow_form(ui: &mut egui::Ui, grow: &mut CanvasGrowth, size: pixelgen::Size) {
    let title = if grow.is_zero() {
        "Grow canvas (off)".to_owned()
    } else {
        match grow.canvas(size) {
            Ok(c) => format!("Grow canvas to {c}"),
            Err(_) => "Grow canvas (too large)".to_owned(),
        }
    };
    egui::CollapsingHeader::new(title)
        .id_salt("pixelgen_grow")
        .show(ui, |ui| {
            ui.label("Pixels the model draws around the sprite (the sprite is kept exactly).");
            egui::Grid::new("pixelgen_grow_sides").show(ui, |ui| {
                for (name, side) in [
                    ("left", &mut grow.left),
                    ("right", &mut grow.right),
                    ("top", &mut grow.top),
                    ("bottom", &mut grow.bottom),
                ] {
                    ui.label(name);
                    ui.add(egui::Slider::new(side, 0..=MAX_GROW).suffix(" px"));
                    ui.end_row();
                }
            });
            ui.horizontal_wrapped(|ui| {
                if ui.small_button("+50% wider").clicked() {
                    *grow = CanvasGrowth::wider(size.width, 50);
                }
                if ui.small_button("+50% taller").clicked() {
                    *grow = CanvasGrowth::taller(size.height, 50);
                }
                if ui.small_button("+8 all round").clicked() {
                    *grow = CanvasGrowth::all_round(8);
                }
                if ui.small_button("None").clicked() {
                    *grow = CanvasGrowth::default();
                }
            });
        });
}

/// The sprite enlarged with `mask` over it in translucent red, on the canvas `grow` makes
/// (outlined); left drag paints the mask, right drag erases, with a round brush of `brush`
/// pixels (outlined under the pointer).
fn mask_canvas(
    ui: &mut egui::Ui,
    texture: Option<egui::TextureId>,
    mask: &mut MaskCanvas,
    grow: CanvasGrowth,
    brush: u32,
    stroke: &mut Option<(i64, i64)>,
) {
    let (w, h) = mask.dimensions();
    let (cw, ch) = (
        w.saturating_add(grow.left).saturating_add(grow.right),
        h.saturating_add(grow.top).saturating_add(grow.bottom),
    );
    let scale = (REPAINT_POINTS / cw.max(ch).max(1) as f32).floor().max(1.0);
    let canvas_size = egui::vec2(cw as f32 * scale, ch as f32 * scale);
    let (canvas, response) = ui.allocate_exact_size(canvas_size, egui::Sense::drag());
    let rect = egui::Rect::from_min_size(
        canvas.min + egui::vec2(grow.left as f32, grow.top as f32) * scale,
        egui::vec2(w as f32 * scale, h as f32 * scale),
    );
    let cell = |pos: egui::Pos2| {
        let p = (pos - rect.min) / scale;
        (p.x.floor() as i64, p.y.floor() as i64)
    };
    let (primary, secondary) = ui.input(|i| (i.pointer.primary_down(), i.pointer.secondary_down()));
    let paint = match (primary, secondary) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    match (
        response.is_pointer_button_down_on(),
        paint,
        response.interact_pointer_pos(),
    ) {
        (true, Some(on), Some(pos)) => {
            let at = cell(pos);
            mask.paint_line(stroke.unwrap_or(at), at, brush, on);
            *stroke = Some(at);
        }
        _ => *stroke = None,
    }
    let painter = ui.painter_at(canvas);
    if !grow.is_zero() {
        // The new canvas the model draws: hatched grey, outlined.
        painter.rect_filled(canvas, 0.0, egui::Color32::from_gray(28));
        let step = 8.0;
        let mut x = canvas.min.x - canvas.height();
        while x < canvas.max.x {
            painter.line_segment(
                [
                    egui::pos2(x, canvas.max.y),
                    egui::pos2(x + canvas.height(), canvas.min.y),
                ],
                egui::Stroke::new(1.0, egui::Color32::from_gray(44)),
            );
            x += step;
        }
        painter.rect_stroke(
            canvas,
            0.0,
            egui::Stroke::new(1.0, egui::Color32::YELLOW),
            egui::StrokeKind::Inside,
        );
    }
    painter.rect_filled(rect, 0.0, egui::Color32::from_gray(48));
    match texture {
        Some(tex) => {
            let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            painter.image(tex, rect, uv, egui::Color32::WHITE);
        }
        None => {
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "(image not shown)",
                egui::FontId::default(),
                egui::Color32::LIGHT_GRAY,
            );
        }
    }
    // The mask in runs of marked pixels, one rectangle each.
    let red = egui::Color32::from_rgba_unmultiplied(255, 0, 0, 110);
    for y in 0..i64::from(h) {
        let mut x = 0;
        while x < i64::from(w) {
            if !mask.get(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < i64::from(w) && mask.get(x, y) {
                x += 1;
            }
            let min = rect.min + egui::vec2(start as f32, y as f32) * scale;
            let run = egui::vec2((x - start) as f32, 1.0) * scale;
            painter.rect_filled(egui::Rect::from_min_size(min, run), 0.0, red);
        }
    }
    if let Some(pos) = response.hover_pos() {
        let (x, y) = cell(pos);
        let centre = rect.min + egui::vec2(x as f32 + 0.5, y as f32 + 0.5) * scale;
        painter.circle_stroke(
            centre,
            (brush as f32 + 0.5) * scale,
            egui::Stroke::new(1.0, egui::Color32::WHITE),
        );
    }
}
