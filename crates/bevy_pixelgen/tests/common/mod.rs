//! Helpers shared by the plugin's app tests.

#![allow(dead_code)]

use bevy::app::App;
use bevy::ecs::message::MessageReader;
use bevy::ecs::resource::Resource;
use bevy::ecs::system::{ResMut, RunSystemOnce};
use bevy_pixelgen::prelude::*;

/// Submits `request` the way a game system does, through the [`PixelGen`] parameter.
pub fn submit(app: &mut App, request: impl Into<SpriteRequest>) -> Ticket {
    let request = request.into();
    app.world_mut()
        .run_system_once(move |mut pg: PixelGen| pg.submit(request.clone()))
        .expect("PixelGen is ready (app.finish() was called)")
}

/// Every plugin message an app test saw, in order.
#[derive(Resource, Default)]
pub struct Log {
    pub progress: Vec<SpriteProgress>,
    pub finished: Vec<SpriteFinished>,
    pub failed: Vec<SpriteFailed>,
}

/// Copies the plugin's messages into [`Log`] (add it to `Update`).
pub fn collect(
    mut log: ResMut<Log>,
    mut p: MessageReader<SpriteProgress>,
    mut f: MessageReader<SpriteFinished>,
    mut e: MessageReader<SpriteFailed>,
) {
    log.progress.extend(p.read().cloned());
    log.finished.extend(f.read().cloned());
    log.failed.extend(e.read().cloned());
}
