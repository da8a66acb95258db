//! Prompt-to-pixel-art sprites for Bevy: generated on a worker thread, delivered as ordinary
//! `Handle<Image>`s.
//!
//! [`PixelGen::sprite`] returns a handle at once, showing a checkerboard placeholder of the
//! requested size; a worker thread runs SDXL and the pixel-art pipeline ([`pixelgen`]) and
//! the finished sprite replaces the placeholder in `Assets<Image>`, so everything using the
//! handle updates in place. Progress, results and failures arrive as messages
//! ([`SpriteProgress`], [`SpriteFinished`], [`SpriteFailed`]); a failing or panicking
//! generation never stops the app. Nothing runs on the main schedule but a channel drain.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_pixelgen::prelude::*;
//!
//! fn main() {
//!     App::new()
//!         .add_plugins(DefaultPlugins)
//!         .add_plugins(PixelGenPlugin::new(ModelConfig::new(ModelSource::local(
//!             "models/stable-diffusion-xl-base-1.0",
//!         ))))
//!         .add_systems(Startup, request_potion)
//!         .add_systems(Update, report)
//!         .run();
//! }
//!
//! #[derive(Resource)]
//! struct Potion(Handle<Image>);
//!
//! fn request_potion(mut commands: Commands, mut pixelgen: ResMut<PixelGen>) {
//!     let handle = pixelgen.sprite(SpriteRequest::new("red potion, pixel art").size(32, 32));
//!     // Use it like any image, e.g. `commands.spawn(Sprite::from_image(handle.clone()))`.
//!     commands.insert_resource(Potion(handle));
//! }
//!
//! fn report(mut done: MessageReader<SpriteFinished>, mut failed: MessageReader<SpriteFailed>) {
//!     for m in done.read() {
//!         info!("sprite {} ready (seed {:?})", m.ticket, m.recipe.seed);
//!     }
//!     for m in failed.read() {
//!         warn!("sprite {} failed: {}", m.ticket, m.error);
//!     }
//! }
//! ```

#![forbid(unsafe_code)]

mod messages;
mod plugin;
mod request;
mod worker;

pub use messages::{SpriteFailed, SpriteFinished, SpriteProgress};
pub use plugin::{EngineFactory, PixelGen, PixelGenPlugin, PixelGenSystems, checkerboard};
pub use request::{SpriteError, SpriteRequest, Ticket, TicketId, TicketStatus};
pub use worker::to_bevy_image;

pub use pixelgen;

/// The types most games need, for `use bevy_pixelgen::prelude::*`.
pub mod prelude {
    #[doc(hidden)]
    pub use crate::{
        PixelGen, PixelGenPlugin, PixelGenSystems, SpriteError, SpriteFailed, SpriteFinished,
        SpriteProgress, SpriteRequest, Ticket, TicketId, TicketStatus,
    };
    #[doc(hidden)]
    pub use pixelgen::{DeviceChoice, ModelConfig, ModelSource, Precision, Priority, Recipe, Seed};
}
