//! Animation clips: a sheet's frame tags as "clip name → frame indices and durations", the
//! small description a game plays (the Bevy plugin's clip player reads it; a CLI or a server
//! can write it next to the sheet).
//!
//! ```
//! use pixelgen_pixel::clip::Clips;
//! use pixelgen_pixel::sheet::{Direction, FrameTag, SheetLayout, SheetOptions};
//!
//! let opts = SheetOptions {
//!     columns: Some(4),
//!     tags: vec![FrameTag::new("walk_south", 0, 3, Direction::Pingpong)],
//!     ..SheetOptions::default()
//! };
//! let layout = SheetLayout::grid(&opts, 4, (32, 32))?;
//! let clips = Clips::from_layout(&layout);
//! let walk = clips.get("walk_south").unwrap();
//! assert_eq!(walk.frames, vec![0, 1, 2, 3, 2, 1]);
//! assert_eq!(walk.durations_ms, vec![100; 6]);
//! assert!(walk.looping());
//! # Ok::<(), pixelgen_pixel::PixelError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::sheet::SheetLayout;

/// One animation: the sheet frames it shows, in playing order, and how long each shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clip {
    /// The clip's name (the frame tag's), e.g. `walk_east`.
    pub name: String,
    /// Sheet frame indices in playing order (a ping-pong clip lists the way back too).
    pub frames: Vec<usize>,
    /// How long each entry of `frames` shows, in milliseconds.
    pub durations_ms: Vec<u32>,
    /// How many times the clip plays; `None` loops forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
}

impl Clip {
    /// Whether the clip loops forever.
    pub fn looping(&self) -> bool {
        self.repeat.is_none()
    }

    /// One play-through in milliseconds.
    pub fn length_ms(&self) -> u64 {
        self.durations_ms.iter().map(|&d| u64::from(d)).sum()
    }

    /// The position in `frames` shown `elapsed_ms` after the clip started: wraps for a
    /// looping clip, stays on the last entry once a clip with a repeat count is over.
    /// `None` for a clip without frames.
    pub fn step_at(&self, elapsed_ms: u64) -> Option<usize> {
        let len = self.length_ms();
        if self.frames.is_empty() || len == 0 {
            return None;
        }
        let plays = self.repeat.map(|r| u64::from(r.max(1)));
        let t = match plays {
            Some(n) if elapsed_ms >= len.saturating_mul(n) => return Some(self.frames.len() - 1),
            _ => elapsed_ms % len,
        };
        let mut end = 0u64;
        for (i, &d) in self.durations_ms.iter().enumerate() {
            end += u64::from(d);
            if t < end {
                return Some(i);
            }
        }
        Some(self.frames.len() - 1)
    }

    /// The sheet frame shown `elapsed_ms` after the clip started (see [`Clip::step_at`]).
    pub fn frame_at(&self, elapsed_ms: u64) -> Option<usize> {
        self.step_at(elapsed_ms).map(|i| self.frames[i])
    }
}

/// Every clip of a sheet, in tag order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Clips {
    /// The clips, in the order of the sheet's tags.
    pub clips: Vec<Clip>,
}

impl Clips {
    /// The clips of `layout`'s frame tags: each tag's frame sequence (its playing direction
    /// applied) with the frames' durations. Tags that point past the last frame are cut to
    /// the frames that exist.
    pub fn from_layout(layout: &SheetLayout) -> Self {
        let clips = layout
            .tags
            .iter()
            .map(|tag| {
                let frames: Vec<usize> = tag
                    .frame_sequence()
                    .into_iter()
                    .map(|i| i as usize)
                    .filter(|&i| i < layout.frames.len())
                    .collect();
                let durations_ms = frames
                    .iter()
                    .map(|&i| layout.frames[i].duration_ms)
                    .collect();
                Clip {
                    name: tag.name.clone(),
                    frames,
                    durations_ms,
                    repeat: tag.repeat,
                }
            })
            .collect();
        Self { clips }
    }

    /// The clip called `name`.
    pub fn get(&self, name: &str) -> Option<&Clip> {
        self.clips.iter().find(|c| c.name == name)
    }

    /// The clip names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.clips.iter().map(|c| c.name.as_str())
    }

    /// Whether there is no clip.
    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }

    /// A preview of the whole set: every clip played once in turn, then again from the
    /// first. The sheet frame shown `elapsed_ms` after the preview started; `None` without
    /// clips (or frames).
    pub fn preview_frame_at(&self, elapsed_ms: u64) -> Option<usize> {
        let total: u64 = self.clips.iter().map(Clip::length_ms).sum();
        if total == 0 {
            return None;
        }
        let mut t = elapsed_ms % total;
        for clip in &self.clips {
            let len = clip.length_ms();
            if t < len {
                let once = Clip {
                    repeat: None,
                    ..clip.clone()
                };
                return once.frame_at(t);
            }
            t -= len;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sheet::{Direction, FrameTag, SheetOptions};

    fn layout(tags: Vec<FrameTag>, durations: &[u32]) -> SheetLayout {
        let opts = SheetOptions {
            columns: Some(4),
            tags,
            ..SheetOptions::default()
        };
        let mut l = SheetLayout::grid(&opts, durations.len() as u32, (8, 8)).unwrap();
        for (f, &d) in l.frames.iter_mut().zip(durations) {
            f.duration_ms = d;
        }
        l
    }

    #[test]
    fn a_looping_clip_wraps_and_a_counted_one_holds_its_last_frame() {
        let mut once = FrameTag::new("death", 4, 7, Direction::Forward);
        once.repeat = Some(1);
        let l = layout(
            vec![FrameTag::new("walk", 0, 3, Direction::Forward), once],
            &[100, 100, 100, 100, 50, 50, 50, 200],
        );
        let clips = Clips::from_layout(&l);
        assert_eq!(clips.names().collect::<Vec<_>>(), ["walk", "death"]);
        let walk = clips.get("walk").unwrap();
        assert_eq!(walk.length_ms(), 400);
        assert_eq!(
            [0, 99, 100, 399, 400, 950].map(|t| walk.frame_at(t)),
            [0, 0, 1, 3, 0, 1].map(Some)
        );
        let death = clips.get("death").unwrap();
        assert!(!death.looping());
        assert_eq!(death.durations_ms, vec![50, 50, 50, 200]);
        assert_eq!(
            [0, 149, 150, 349, 350, 10_000].map(|t| death.frame_at(t)),
            [4, 6, 7, 7, 7, 7].map(Some)
        );
    }

    #[test]
    fn ping_pong_plays_back_without_repeating_the_ends_and_bad_tags_are_cut() {
        let l = layout(
            vec![
                FrameTag::new("idle", 0, 2, Direction::Pingpong),
                FrameTag::new("broken", 2, 9, Direction::Forward),
            ],
            &[100, 100, 100],
        );
        let clips = Clips::from_layout(&l);
        assert_eq!(clips.get("idle").unwrap().frames, vec![0, 1, 2, 1]);
        assert_eq!(clips.get("broken").unwrap().frames, vec![2]);
        assert_eq!(Clips::default().get("idle"), None);
        assert_eq!(Clips::default().preview_frame_at(5), None);
        // The preview plays idle (0 1 2 1, 400 ms) then broken (2, 100 ms), then idle again.
        let preview: Vec<Option<usize>> = [0, 350, 400, 450, 500]
            .map(|t| clips.preview_frame_at(t))
            .to_vec();
        assert_eq!(preview, [0, 1, 2, 2, 0].map(Some).to_vec());
        let empty = Clip {
            name: "none".into(),
            frames: vec![],
            durations_ms: vec![],
            repeat: None,
        };
        assert_eq!(empty.frame_at(5), None);
    }
}
