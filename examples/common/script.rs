//! Scripted runs of the examples (their window tests): screenshots, a manifest of what was
//! on screen, then exit.
//!
//! Include it with `#[path = "common/script.rs"] mod script;`.

#![allow(dead_code)]

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};

/// Frames after which a scripted run gives up (the test then sees a failure exit).
pub const GIVE_UP_FRAMES: u32 = 3000;

/// A scripted run: where screenshots go, the frame count, and `key value` manifest lines.
#[derive(Resource, Debug)]
pub struct Script {
    /// The screenshot and manifest folder.
    pub dir: PathBuf,
    /// Frames run so far (counted by [`tick`]).
    pub frame: u32,
    /// The script's current step (each example numbers its own).
    pub step: u32,
    /// The frame the current step began.
    pub step_frame: u32,
    shots: Vec<PathBuf>,
    lines: Vec<String>,
    done: bool,
}

impl Script {
    /// A script writing into `dir` (created).
    pub fn new(dir: PathBuf) -> Self {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            error!("scripted run: cannot create {}: {e}", dir.display());
        }
        Self {
            dir,
            frame: 0,
            step: 0,
            step_frame: 0,
            shots: Vec::new(),
            lines: Vec::new(),
            done: false,
        }
    }

    /// Goes to the next step.
    pub fn advance(&mut self) {
        self.step += 1;
        self.step_frame = self.frame;
    }

    /// Frames since the current step began.
    pub fn in_step(&self) -> u32 {
        self.frame - self.step_frame
    }

    /// Saves a screenshot of this frame as `DIR/NAME.png`.
    pub fn shoot(&mut self, commands: &mut Commands, name: &str) {
        let path = self.dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&path);
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to_disk(path.clone()));
        self.shots.push(path);
    }

    /// Adds a `key value` line to `DIR/manifest.txt`.
    pub fn note(&mut self, key: &str, value: impl std::fmt::Display) {
        self.lines.push(format!("{key} {value}"));
    }

    /// Ends the run once every screenshot is on disk: writes the manifest and exits.
    pub fn finish(&mut self) {
        self.done = true;
    }
}

/// Counts frames, exits when the script is done and its screenshots are written, and gives up
/// after [`GIVE_UP_FRAMES`].
pub fn tick(mut script: ResMut<Script>, mut exit: MessageWriter<AppExit>) {
    script.frame += 1;
    if script.done && script.shots.iter().all(|p| p.exists()) {
        let text = script.lines.join("\n") + "\n";
        if let Err(e) =
            pixelgen_pixel::write::write_atomic(&script.dir.join("manifest.txt"), text.as_bytes())
        {
            error!("scripted run: cannot write the manifest: {e}");
            exit.write(AppExit::error());
            return;
        }
        exit.write(AppExit::Success);
    }
    if script.frame > GIVE_UP_FRAMES {
        error!(
            "scripted run: stuck at step {} after {GIVE_UP_FRAMES} frames",
            script.step
        );
        exit.write(AppExit::error());
    }
}
