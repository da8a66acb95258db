//! [`PixelGenEditorPlugin`]: an egui panel that turns the plugin into a creative tool.
//!
//! The panel only draws plain resources ([`EditorState`], [`EditorQueue`], [`Gallery`],
//! [`EditorLog`], [`Presets`]) and writes [`EditorAction`] messages; ordinary systems act on
//! them, so everything but the drawing works (and is tested) without a window.

mod state;
mod ui;

use std::path::PathBuf;

use bevy::app::{App, Plugin, Update};
use bevy::ecs::message::{Message, MessageReader};
use bevy::ecs::resource::Resource;
use bevy::ecs::schedule::IntoScheduleConfigs;
use bevy::ecs::system::{Res, ResMut};
use bevy::input::ButtonInput;
use bevy::input::keyboard::KeyCode;

pub use state::{
    EditorError, EditorLog, EditorQueue, EditorState, Gallery, GalleryItem, MAX_EDITOR_SIDE,
    MIN_EDITOR_SIDE, PixelSettings, Presets, StylePreset,
};

use crate::messages::{SpriteFailed, SpriteFinished};
use crate::plugin::PixelGen;
use crate::request::TicketId;

/// Something a person asked for in the panel (or a script/test on their behalf).
#[derive(Message, Debug, Clone, PartialEq)]
pub enum EditorAction {
    /// Submit the recipe [`EditorState`] describes, with editor priority.
    Generate,
    /// Cancel a request in the queue.
    Cancel(TicketId),
    /// Apply the preset with this name to [`EditorState`].
    ApplyPreset(String),
    /// Draw a new seed (the dice button); locks it.
    RollSeed,
}

/// Adds the editor panel over [`PixelGen`](crate::PixelGen): prompt side, queue and gallery.
///
/// Needs [`PixelGenPlugin`](crate::PixelGenPlugin). With `panel` on it also needs a window
/// and a renderer (`DefaultPlugins`) and adds `bevy_egui`'s `EguiPlugin` when missing.
#[derive(Debug, Clone)]
pub struct PixelGenEditorPlugin {
    /// Folder of style presets (`*.ron`), read once at startup.
    pub presets_dir: PathBuf,
    /// Draw the egui panel (off: state and actions only, for headless apps or your own UI).
    pub panel: bool,
    /// The key that shows and hides the panel (`None`: no key).
    pub toggle_key: Option<KeyCode>,
}

impl Default for PixelGenEditorPlugin {
    fn default() -> Self {
        Self {
            presets_dir: PathBuf::from("assets/presets"),
            panel: true,
            toggle_key: Some(KeyCode::F2),
        }
    }
}

/// The editor's systems, for ordering your own around them.
#[derive(bevy::ecs::schedule::SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelGenEditorSystems {
    /// `Update`: the toggle key, [`EditorAction`]s, then finished requests to the gallery.
    Apply,
}

impl Plugin for PixelGenEditorPlugin {
    fn build(&self, app: &mut App) {
        let presets = Presets::load_dir(&self.presets_dir);
        let mut log = EditorLog::default();
        for e in &presets.errors {
            bevy::log::warn!("pixelgen editor: {e}");
            log.error(e.to_string());
        }
        app.add_message::<EditorAction>()
            .insert_resource(presets)
            .insert_resource(log)
            .init_resource::<EditorState>()
            .init_resource::<EditorQueue>()
            .init_resource::<Gallery>()
            .insert_resource(ToggleKey(self.toggle_key))
            .add_systems(
                Update,
                (toggle_panel, apply_actions, collect_results)
                    .chain()
                    .in_set(PixelGenEditorSystems::Apply),
            );
        if self.panel {
            ui::add_panel(app);
        }
    }
}

/// The key from [`PixelGenEditorPlugin::toggle_key`].
#[derive(Resource)]
struct ToggleKey(Option<KeyCode>);

fn toggle_panel(
    key: Res<ToggleKey>,
    keys: Option<Res<ButtonInput<KeyCode>>>,
    mut state: ResMut<EditorState>,
) {
    if let (Some(key), Some(keys)) = (key.0, keys)
        && keys.just_pressed(key)
    {
        state.visible = !state.visible;
    }
}

fn apply_actions(
    mut actions: MessageReader<EditorAction>,
    mut state: ResMut<EditorState>,
    presets: Res<Presets>,
    mut queue: ResMut<EditorQueue>,
    mut log: ResMut<EditorLog>,
    pixel_gen: Option<ResMut<PixelGen>>,
) {
    let mut pixel_gen = pixel_gen;
    for action in actions.read() {
        match action {
            EditorAction::Generate => match state.recipe() {
                Ok(recipe) => match pixel_gen.as_deref_mut() {
                    Some(pg) => queue.tickets.push(pg.submit(recipe)),
                    None => log.error("PixelGen is not ready: add PixelGenPlugin"),
                },
                Err(e) => log.error(e.to_string()),
            },
            EditorAction::Cancel(id) => {
                if let Some(t) = queue.tickets.iter().find(|t| t.id() == *id) {
                    t.cancel();
                }
            }
            EditorAction::ApplyPreset(name) => match presets.get(name) {
                Some(p) => p.apply(&mut state),
                None => log.error(format!("no preset called {name:?}")),
            },
            EditorAction::RollSeed => {
                state.seed = pixelgen::Seed::draw();
                state.seed_locked = true;
            }
        }
    }
}

fn collect_results(
    mut finished: MessageReader<SpriteFinished>,
    mut failed: MessageReader<SpriteFailed>,
    mut queue: ResMut<EditorQueue>,
    mut gallery: ResMut<Gallery>,
    mut log: ResMut<EditorLog>,
) {
    for m in finished.read() {
        let Some(pos) = queue.tickets.iter().position(|t| t.id() == m.ticket) else {
            continue;
        };
        queue.tickets.remove(pos);
        gallery.items.push(GalleryItem {
            ticket: m.ticket,
            image: m.image.clone(),
            recipe: m.recipe.clone(),
            saved: m.saved.clone(),
        });
    }
    for m in failed.read() {
        let Some(pos) = queue.tickets.iter().position(|t| t.id() == m.ticket) else {
            continue;
        };
        queue.tickets.remove(pos);
        if !matches!(m.error, crate::SpriteError::Cancelled) {
            log.error(format!("request {} failed: {}", m.ticket, m.error));
        }
    }
}
