//! Playing a sheet's animation clips: [`ClipPlayer`] keeps time on an entity, and with the
//! `sprite` feature the entity's `Sprite` atlas index follows it.
//!
//! A set's clips (`walk_south`, `walk_east`, ...) are known when it is requested
//! ([`Ticket::clips`](crate::Ticket::clips)), so a character can be spawned and walking on
//! its placeholder before the model has drawn a frame:
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_pixelgen::prelude::*;
//!
//! fn spawn_hero(mut commands: Commands, mut pixel_gen: PixelGen) {
//!     let hero = pixel_gen.submit(
//!         SpriteRequest::new("knight in silver armour")
//!             .animate(Action::Walk)
//!             .directions(4, true),
//!     );
//!     let mut player = ClipPlayer::new(hero.clips());
//!     player.play("walk_east");
//!     // With the `sprite` feature, the entity's `Sprite` follows the player: spawn it with
//!     // `Sprite::from_atlas_image(hero.handle().clone(), TextureAtlas { layout, index: 0 })`.
//!     let atlas = TextureAtlas { layout: hero.layout().cloned().unwrap(), index: 0 };
//!     commands.spawn(player);
//!     # let _ = atlas;
//! }
//! ```

use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use pixelgen::{Clip, Clips};

/// Plays one clip at a time of a sheet's [`Clips`]; the current sheet frame (the atlas index)
/// is [`ClipPlayer::frame`].
#[derive(Component, Debug, Clone)]
pub struct ClipPlayer {
    clips: Arc<Clips>,
    current: Option<usize>,
    elapsed: Duration,
    /// Playback speed: 1 as authored, 2 twice as fast.
    pub speed: f32,
    /// A paused player keeps its frame.
    pub paused: bool,
}

impl ClipPlayer {
    /// A player of `clips`, playing the first one (none if there are none).
    pub fn new(clips: impl Into<Arc<Clips>>) -> Self {
        let clips = clips.into();
        let current = (!clips.is_empty()).then_some(0);
        Self {
            clips,
            current,
            elapsed: Duration::ZERO,
            speed: 1.0,
            paused: false,
        }
    }

    /// Plays the clip called `name` from its start, unless it is already playing. An unknown
    /// name keeps the current clip and returns `false`.
    pub fn play(&mut self, name: &str) -> bool {
        let Some(i) = self.clips.clips.iter().position(|c| c.name == name) else {
            return false;
        };
        if self.current != Some(i) {
            self.current = Some(i);
            self.elapsed = Duration::ZERO;
        }
        true
    }

    /// Plays the current clip again from its start.
    pub fn restart(&mut self) {
        self.elapsed = Duration::ZERO;
    }

    /// The clips this player plays.
    pub fn clips(&self) -> &Clips {
        &self.clips
    }

    /// The clip playing now.
    pub fn clip(&self) -> Option<&Clip> {
        self.clips.clips.get(self.current?)
    }

    /// The sheet frame (atlas index) shown now.
    pub fn frame(&self) -> Option<usize> {
        self.clip()?.frame_at(self.elapsed.as_millis() as u64)
    }

    /// Whether a clip that plays a set number of times has played them all (never for a
    /// looping clip).
    pub fn is_finished(&self) -> bool {
        self.clip().is_some_and(|c| match c.repeat {
            Some(n) => self.elapsed.as_millis() as u64 >= c.length_ms() * u64::from(n.max(1)),
            None => false,
        })
    }

    /// Moves the clock on by `delta` (scaled by `speed`; nothing while paused).
    pub fn tick(&mut self, delta: Duration) {
        if !self.paused && self.speed.is_finite() && self.speed > 0.0 {
            self.elapsed += delta.mul_f32(self.speed);
        }
    }
}

/// Moves every [`ClipPlayer`] on by the frame's time.
pub fn advance_clip_players(time: Res<Time>, mut players: Query<&mut ClipPlayer>) {
    for mut player in &mut players {
        player.tick(time.delta());
    }
}

/// Shows each playing [`ClipPlayer`]'s frame on its entity's `Sprite` atlas.
#[cfg(feature = "sprite")]
pub fn show_clip_frames(mut sprites: Query<(&ClipPlayer, &mut Sprite)>) {
    for (player, mut sprite) in &mut sprites {
        let Some(frame) = player.frame() else {
            continue;
        };
        if let Some(atlas) = sprite.texture_atlas.as_mut()
            && atlas.index != frame
        {
            atlas.index = frame;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelgen::{Action, Plan, Recipe, SetRecipe};

    fn walk_and_death() -> Clips {
        let recipe = Recipe {
            set: Some(SetRecipe::animation(Action::Walk).with_directions(4, true)),
            ..Recipe::new("knight")
        };
        let plan = Plan::new(recipe).unwrap();
        let mut clips = Clips::from_layout(plan.sheet_layout().unwrap());
        let death = Plan::new(Recipe {
            set: Some(SetRecipe::animation(Action::Death)),
            ..Recipe::new("knight")
        })
        .unwrap();
        clips
            .clips
            .extend(Clips::from_layout(death.sheet_layout().unwrap()).clips);
        clips
    }

    #[test]
    fn a_player_walks_switches_clips_and_holds_the_end_of_a_death() {
        let mut p = ClipPlayer::new(walk_and_death());
        assert_eq!(p.clip().unwrap().name, "walk_south");
        assert_eq!(p.frame(), Some(0));
        p.tick(Duration::from_millis(250));
        assert_eq!(p.frame(), Some(2), "100 ms a frame");
        assert!(p.play("walk_east"));
        assert_eq!(p.frame(), Some(16), "a new clip starts at its first frame");
        p.tick(Duration::from_millis(850));
        assert_eq!(
            p.frame(),
            Some(16),
            "the walk loops: 850 ms is frame 0 of the next round"
        );
        assert!(!p.play("fly"), "unknown clips are refused");
        assert_eq!(p.clip().unwrap().name, "walk_east");
        p.paused = true;
        p.tick(Duration::from_secs(1));
        assert_eq!(p.frame(), Some(16));
        p.paused = false;
        assert!(p.play("death"));
        p.speed = 2.0;
        p.tick(Duration::from_millis(400));
        assert_eq!(
            p.frame(),
            Some(6),
            "death frames are 120 ms, played twice as fast"
        );
        assert!(!p.is_finished());
        p.tick(Duration::from_secs(10));
        assert!(p.is_finished());
        assert_eq!(p.frame(), Some(7), "a death holds its last frame");
    }
}
