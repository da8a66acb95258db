//! The egui side panel: draws the editor's resources and writes [`EditorAction`]s.

use bevy::app::App;
use bevy::ecs::error::Result;
use bevy::ecs::message::MessageWriter;
use bevy::ecs::system::{Res, ResMut};
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, EguiTextureHandle, egui};
use pixelgen::SchedulerKind;
use pixelgen_pixel::palette::Palette;
use pixelgen_pixel::quantize::Dither;

use super::{
    EditorAction, EditorLog, EditorQueue, EditorState, Gallery, MAX_EDITOR_SIDE, MIN_EDITOR_SIDE,
    Presets,
};
use crate::request::TicketStatus;

/// How many of the newest gallery items the panel shows.
const GALLERY_SHOWN: usize = 24;
/// Gallery thumbnails are scaled by a whole factor to about this many points.
const THUMB_POINTS: f32 = 96.0;

/// Adds egui (when missing) and the panel system.
pub(super) fn add_panel(app: &mut App) {
    if !app.is_plugin_added::<EguiPlugin>() {
        app.add_plugins(EguiPlugin::default());
    }
    app.add_systems(EguiPrimaryContextPass, draw_panel);
}

/// A whole-number zoom that brings `(w, h)` near [`THUMB_POINTS`] (nearest sampling keeps
/// pixels square).
fn thumb_size(w: u32, h: u32) -> egui::Vec2 {
    let side = w.max(h).max(1) as f32;
    let zoom = (THUMB_POINTS / side).floor().max(1.0);
    egui::vec2(w as f32 * zoom, h as f32 * zoom)
}

#[allow(clippy::too_many_arguments)]
fn draw_panel(
    mut contexts: EguiContexts,
    mut state: ResMut<EditorState>,
    presets: Res<Presets>,
    queue: Res<EditorQueue>,
    gallery: Res<Gallery>,
    log: Res<EditorLog>,
    mut actions: MessageWriter<EditorAction>,
) -> Result {
    if !state.visible {
        return Ok(());
    }
    let start = gallery.items.len().saturating_sub(GALLERY_SHOWN);
    let thumbs: Vec<egui::TextureId> = gallery.items[start..]
        .iter()
        .map(|item| contexts.add_image(EguiTextureHandle::Weak(item.image.id())))
        .collect();
    let ctx = contexts.ctx_mut()?;
    let mut viewport = egui::Ui::new(
        ctx.clone(),
        "pixelgen_editor_viewport".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    egui::Panel::left("pixelgen_editor")
        .default_size(340.0)
        .resizable(true)
        .show(&mut viewport, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.heading("PixelGen");
                for e in &log.errors {
                    ui.colored_label(egui::Color32::from_rgb(0xff, 0x70, 0x70), e);
                }
                prompt_side(ui, &mut state, &presets, &mut actions);
                ui.separator();
                queue_section(ui, &queue, &mut actions);
                ui.separator();
                gallery_section(ui, ctx, &gallery, start, &thumbs, &mut state);
            });
        });
    Ok(())
}

fn prompt_side(
    ui: &mut egui::Ui,
    state: &mut EditorState,
    presets: &Presets,
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
    });

    egui::CollapsingHeader::new("Pixel art")
        .default_open(true)
        .show(ui, |ui| {
            let px = &mut state.pixel;
            ui.horizontal(|ui| {
                let mut limit = px.colors.is_some();
                ui.checkbox(&mut limit, "Colours");
                let mut n = px.colors.unwrap_or(16);
                ui.add_enabled(limit, egui::DragValue::new(&mut n).range(2..=64));
                px.colors = limit.then_some(n);
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
                });
            if let Some(Ok(p)) = px.palette.as_deref().map(Palette::builtin) {
                swatches(ui, &p);
            }
            egui::ComboBox::from_label("Dither")
                .selected_text(px.dither.name())
                .show_ui(ui, |ui| {
                    for d in Dither::ALL {
                        ui.selectable_value(&mut px.dither, d, d.name());
                    }
                });
            ui.checkbox(&mut px.transparent, "Transparent background");
            ui.checkbox(&mut px.outline, "Outline");
        });

    egui::CollapsingHeader::new("Sampling")
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.checkbox(&mut state.seed_locked, "Lock seed");
                ui.add_enabled(state.seed_locked, egui::DragValue::new(&mut state.seed));
                if ui.button("Dice").on_hover_text("draw a new seed").clicked() {
                    actions.write(EditorAction::RollSeed);
                }
            });
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
    if ui
        .add_enabled(ready, egui::Button::new("Generate"))
        .clicked()
    {
        actions.write(EditorAction::Generate);
    }
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
    actions: &mut MessageWriter<EditorAction>,
) {
    ui.label(format!("Queue ({})", queue.tickets.len()));
    for t in &queue.tickets {
        ui.horizontal(|ui| {
            let (fraction, text) = match t.status() {
                TicketStatus::Queued => (0.0, "queued".to_owned()),
                TicketStatus::Running { step, total } => {
                    (step as f32 / total.max(1) as f32, format!("{step}/{total}"))
                }
                TicketStatus::Done { .. } => (1.0, "done".to_owned()),
                TicketStatus::Failed(e) => (0.0, e.to_string()),
            };
            ui.label(format!("{}", t.id()));
            ui.add(
                egui::ProgressBar::new(fraction)
                    .text(text)
                    .desired_width(160.0),
            );
            if ui.small_button("Cancel").clicked() {
                actions.write(EditorAction::Cancel(t.id()));
            }
        })
        .response
        .on_hover_text(&t.recipe().prompt);
    }
}

fn gallery_section(
    ui: &mut egui::Ui,
    ctx: &egui::Context,
    gallery: &Gallery,
    start: usize,
    thumbs: &[egui::TextureId],
    state: &mut EditorState,
) {
    ui.label(format!("Gallery ({})", gallery.items.len()));
    for (item, tex) in gallery.items[start..].iter().zip(thumbs).rev() {
        let size = thumb_size(item.recipe.size.width, item.recipe.size.height);
        ui.horizontal(|ui| {
            ui.add(egui::Image::new(egui::load::SizedTexture::new(*tex, size)))
                .on_hover_text(&item.recipe.prompt);
            ui.vertical(|ui| {
                ui.label(format!("{} {}", item.ticket, item.recipe.size));
                if let Some(seed) = item.recipe.seed.value() {
                    ui.label(format!("seed {seed}"));
                }
                if ui.small_button("Copy recipe").clicked()
                    && let Ok(text) = item.recipe.to_ron()
                {
                    ctx.copy_text(text);
                }
                if ui.small_button("Edit recipe").clicked() {
                    state.load_recipe(&item.recipe);
                }
            });
        });
    }
}
