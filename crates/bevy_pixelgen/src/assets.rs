//! Recipes as assets: the `.pixelgen.ron` loader and the system that generates cache misses.
//!
//! # Design
//!
//! `asset_server.load::<Image>("items/potion.pixelgen.ron")` returns the sprite's
//! `Handle<Image>` directly (the loader's root asset is the image itself, so it drops into
//! `Sprite::from_image` like any PNG). The loader never waits for the model:
//!
//! 1. It parses the recipe (a random seed becomes one derived from the recipe's content, so
//!    the file always names the same sprite) and applies the plugin's default pixel options.
//! 2. With a cache folder configured it computes the cache key (recipe + model identity; the
//!    identity is computed once, from the folder's configs and weight-file edges, without
//!    loading the model) and looks the key up on disk. A hit is the loaded image: the asset
//!    is final the moment it is `Loaded`, and the model never runs.
//! 3. A miss loads as a checkerboard placeholder of the sprite's size (for a multi-frame
//!    recipe: a sheet-sized placeholder plus a grid `TextureAtlasLayout` under the label
//!    `layout`) and tells the plugin the recipe through a channel.
//! 4. When the asset server reports the asset `LoadedWithDependencies` (so the placeholder
//!    is in `Assets<Image>` and cannot overwrite a result), a system submits the recipe to
//!    the worker, targeting the same handle; the finished sprite replaces the placeholder in
//!    place, with the usual [`SpriteProgress`](crate::SpriteProgress) /
//!    [`SpriteFinished`](crate::SpriteFinished) messages.
//!
//! Hot reload: when the game enables Bevy's `file_watcher` feature (or calls
//! `AssetServer::reload`), an edited recipe file re-runs the loader, which goes through the
//! same steps: a cached recipe shows at once, a new one shows its placeholder and is
//! regenerated. A generation still running for the file's previous text is superseded
//! (cancelled, and its result dropped if it finishes anyway), so the newest text always wins.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bevy::asset::io::Reader;
use bevy::asset::{AssetEvent, AssetLoader, AssetPath, AssetServer, Handle, LoadContext};
use bevy::ecs::message::MessageReader;
use bevy::ecs::system::{Res, ResMut};
use bevy::image::{Image, TextureAtlasLayout};
use bevy::reflect::TypePath;
use bevy::tasks::futures_lite::AsyncReadExt;
use crossbeam_channel::Sender;
use pixelgen::{DiskCache, ModelIdentity, PixelGenError, PixelOptions, Plan, Recipe};

use crate::plugin::{EngineFactory, PixelGenQueue, placeholder, with_default_pixel};
use crate::request::Ticket;
use crate::worker::{atlas_layout, grid_atlas, to_bevy_image};

/// The file extension of recipe assets.
pub const RECIPE_EXTENSION: &str = "pixelgen.ron";

/// The label of a multi-frame recipe's `TextureAtlasLayout` sub-asset
/// (`asset_server.load("walk.pixelgen.ron#layout")`).
pub const LAYOUT_LABEL: &str = "layout";

/// Why a recipe file did not load.
#[derive(Debug, thiserror::Error)]
pub enum RecipeAssetError {
    /// The file could not be read.
    #[error("cannot read recipe {path}: {source}")]
    Read {
        /// The asset path.
        path: String,
        /// The reader's error.
        source: std::io::Error,
    },
    /// The file is not a valid recipe (RON syntax, unknown field, out-of-range value).
    #[error("recipe {path}: {source}")]
    Recipe {
        /// The asset path.
        path: String,
        /// What is wrong, with the field or line.
        source: PixelGenError,
    },
}

/// What the loader tells the plugin about each load.
pub(crate) struct RecipeLoad {
    pub(crate) path: AssetPath<'static>,
    pub(crate) plan: Plan,
    /// The loaded image is the finished sprite (a cache hit): nothing to generate.
    pub(crate) cached: bool,
}

/// State shared by the loader (on the asset server's IO tasks) and the plugin.
pub(crate) struct LoaderShared {
    pub(crate) cache: Option<DiskCache>,
    pub(crate) default_pixel: Option<PixelOptions>,
    pub(crate) factory: EngineFactory,
    pub(crate) identity: OnceLock<ModelIdentity>,
    pub(crate) loads: Sender<RecipeLoad>,
}

impl LoaderShared {
    /// The model identity, computed once (from the model's files; the model is not loaded).
    fn identity(&self) -> pixelgen::Result<ModelIdentity> {
        if let Some(id) = self.identity.get() {
            return Ok(id.clone());
        }
        let id = self.factory.identity()?;
        Ok(self.identity.get_or_init(|| id).clone())
    }
}

/// Loads `*.pixelgen.ron` recipe files as the `Image` they generate (see the module docs);
/// `PixelGenPlugin` registers it.
///
/// ```no_run
/// use bevy::prelude::*;
/// use bevy_pixelgen::prelude::*;
///
/// // assets/enemies/bat.pixelgen.ron:
/// //   (prompt: "purple cave bat, pixel art game sprite", size: (width: 16, height: 16), steps: 8)
/// // assets/hero/walk.pixelgen.ron: a recipe with four `frames` (a sheet)
/// fn spawn(mut commands: Commands, server: Res<AssetServer>) {
///     // The sprite itself: a placeholder until generated (or the cached image at once).
///     commands.spawn(Sprite::from_image(server.load("enemies/bat.pixelgen.ron")));
///     // A sheet and its atlas layout (the `#layout` sub-asset).
///     let walk: Handle<Image> = server.load("hero/walk.pixelgen.ron");
///     let layout = server.load("hero/walk.pixelgen.ron#layout");
///     commands.spawn(Sprite::from_atlas_image(walk, TextureAtlas { layout, index: 0 }));
/// }
/// # fn main() {
/// #     App::new().add_systems(Startup, spawn);
/// # }
/// ```
#[derive(TypePath)]
pub struct PixelRecipeLoader {
    pub(crate) shared: Arc<LoaderShared>,
}

/// A recipe file's plan as the plugin runs it: the plugin's default pixel options filled in,
/// the seed fixed from the file's content (when it is random), checked as a whole.
pub(crate) fn plan_recipe(
    recipe: Recipe,
    default_pixel: &Option<PixelOptions>,
) -> pixelgen::Result<Plan> {
    Plan::with_content_seed(with_default_pixel(recipe, default_pixel))
}

impl AssetLoader for PixelRecipeLoader {
    type Asset = Image;
    type Settings = ();
    type Error = RecipeAssetError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        load_context: &mut LoadContext<'_>,
    ) -> Result<Image, RecipeAssetError> {
        let path = load_context.path().clone_owned();
        // One byte past the limit is enough to refuse an oversized file without reading it all.
        let mut bytes = Vec::new();
        let limit = Recipe::MAX_FILE_BYTES as u64 + 1;
        AsyncReadExt::take(reader, limit)
            .read_to_end(&mut bytes)
            .await
            .map_err(|source| RecipeAssetError::Read {
                path: path.to_string(),
                source,
            })?;
        let recipe_err = |source| RecipeAssetError::Recipe {
            path: path.to_string(),
            source,
        };
        let recipe = Recipe::from_ron_bytes(&bytes).map_err(recipe_err)?;
        let plan = plan_recipe(recipe, &self.shared.default_pixel).map_err(recipe_err)?;

        if let Some(image) = self.cached(&path, &plan, load_context) {
            let _ = self.shared.loads.send(RecipeLoad {
                path,
                plan,
                cached: true,
            });
            return Ok(image);
        }
        if let Some(grid) = plan.sheet_layout() {
            load_context.add_labeled_asset(LAYOUT_LABEL, grid_atlas(grid));
        }
        let placeholder = placeholder(plan.output_size());
        let _ = self.shared.loads.send(RecipeLoad {
            path,
            plan,
            cached: false,
        });
        Ok(placeholder)
    }

    fn extensions(&self) -> &[&str] {
        &[RECIPE_EXTENSION]
    }
}

impl PixelRecipeLoader {
    /// The finished image from the disk cache (and its layout sub-asset for sheets), if any.
    /// Every problem (no cache, unreadable model folder, corrupt entry) is a miss.
    fn cached(
        &self,
        path: &AssetPath<'static>,
        plan: &Plan,
        load_context: &mut LoadContext<'_>,
    ) -> Option<Image> {
        let cache = self.shared.cache.as_ref()?;
        let key = match self.shared.identity().and_then(|model| plan.key(&model)) {
            Ok(k) => k,
            Err(e) => {
                bevy::log::warn!("pixelgen: no cache lookup for {path}: {e}");
                return None;
            }
        };
        let warn = |e: PixelGenError| {
            bevy::log::warn!("pixelgen: ignoring the cache entry for {path}: {e}");
        };
        if plan.is_sheet() {
            let hit = cache.get_sheet(&key).map_err(warn).ok()??;
            let (w, h) = hit.image.dimensions();
            load_context.add_labeled_asset(LAYOUT_LABEL, atlas_layout(&hit.layout, w, h));
            Some(to_bevy_image(hit.image))
        } else {
            cache
                .get_sprite(&key)
                .map_err(warn)
                .ok()?
                .map(to_bevy_image)
        }
    }
}

/// What the plugin knows about one recipe asset.
pub(crate) struct RecipeAsset {
    latest: RecipeLoad,
    ticket: Option<Ticket>,
}

/// Recipe assets by path.
#[derive(Default)]
pub(crate) struct RecipeAssets {
    by_path: HashMap<AssetPath<'static>, RecipeAsset>,
}

impl RecipeAssets {
    pub(crate) fn ticket(&self, path: &AssetPath<'static>) -> Option<&Ticket> {
        self.by_path.get(path)?.ticket.as_ref()
    }

    /// How many recipe assets are tracked.
    pub(crate) fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Forgets the recipe assets the game no longer holds, so the table (and the images its
    /// tickets keep alive) does not grow for ever.
    ///
    /// An entry with a ticket holds the image's only strong handle besides the game's (the
    /// ticket's): when nothing else holds it, the entry goes, a generation still queued or
    /// running for it is cancelled and its result dropped, and the image is freed with the
    /// ticket. An entry without a ticket (a cache hit, or a load not finished yet) goes when
    /// the asset server no longer knows its path; `check_untracked` says whether to look
    /// (it takes the server's lock, so only on frames where an asset was dropped or loaded).
    fn forget_unused(&mut self, server: &AssetServer, check_untracked: bool) {
        self.by_path.retain(|path, asset| match &asset.ticket {
            Some(ticket) => {
                let held = held_elsewhere(ticket.handle());
                if !held {
                    ticket.supersede();
                }
                held
            }
            None => !check_untracked || server.get_path_id(path).is_some(),
        });
    }
}

/// Whether a strong handle other than `handle` itself points at its asset.
fn held_elsewhere(handle: &Handle<Image>) -> bool {
    match handle {
        Handle::Strong(arc) => Arc::strong_count(arc) > 1,
        Handle::Uuid(..) => true,
    }
}

/// `PreUpdate`: takes the loader's reports and, once a recipe asset's placeholder is in
/// `Assets<Image>`, starts its generation (superseding one still running for older text).
pub(crate) fn start_recipe_assets(
    server: Option<Res<AssetServer>>,
    pixel_gen: Option<ResMut<PixelGenQueue>>,
    mut events: MessageReader<AssetEvent<Image>>,
) {
    let (Some(server), Some(mut pixel_gen)) = (server, pixel_gen) else {
        return;
    };
    let pg = &mut *pixel_gen;
    let mut loaded_any = false;
    while let Ok(load) = pg.recipe_loads.try_recv() {
        loaded_any = true;
        match pg.recipe_assets.by_path.get_mut(&load.path) {
            Some(asset) => asset.latest = load,
            None => {
                pg.recipe_assets.by_path.insert(
                    load.path.clone(),
                    RecipeAsset {
                        latest: load,
                        ticket: None,
                    },
                );
            }
        }
    }
    if pg.recipe_assets.by_path.is_empty() {
        events.clear();
        return;
    }
    let events: Vec<AssetEvent<Image>> = events.read().copied().collect();
    let dropped_any = events
        .iter()
        .any(|e| matches!(e, AssetEvent::Unused { .. } | AssetEvent::Removed { .. }));
    pg.recipe_assets
        .forget_unused(&server, dropped_any || loaded_any);
    for event in &events {
        let AssetEvent::LoadedWithDependencies { id } = event else {
            continue;
        };
        let Some(path) = server.get_path(*id).map(|p| p.into_owned()) else {
            continue;
        };
        let Some(asset) = pg.recipe_assets.by_path.get_mut(&path) else {
            continue;
        };
        if let Some(old) = asset.ticket.take() {
            old.supersede();
        }
        if asset.latest.cached {
            continue;
        }
        let plan = asset.latest.plan.clone();
        let Some(handle) = server.get_id_handle(*id) else {
            continue; // nobody holds the image any more
        };
        let layout = if plan.is_sheet() {
            server.get_handle::<TextureAtlasLayout>(path.clone().with_label(LAYOUT_LABEL))
        } else {
            None
        };
        let ticket = pg.enqueue(plan, handle, layout);
        if let Some(asset) = pg.recipe_assets.by_path.get_mut(&path) {
            asset.ticket = Some(ticket);
        }
    }
}
