//! Consistent sets: a recipe's frames made together (an animation, the directions of a
//! character, a family of items) so they show one character in one palette.
//!
//! A [`SetRecipe`] on a [`Recipe`](crate::Recipe) says what the set holds:
//!
//! - an [`Animation`]: an [`Action`] template (idle, walk, run, attack, jump, hurt, death)
//!   with its frame count, playback (loop, ping-pong, once) and frame time;
//! - [`Directions`]: 4 or 8 [`View`]s, a row each, east-facing views optionally mirrored into
//!   west-facing ones as pixel artists do;
//! - or neither: the recipe's own `frames` prompts (e.g. items that must share a palette);
//! - the [`Reference`] every frame shares attention with (the first frame, or a sprite of
//!   the user's, which frames may also start from), its strength, and the [`SetAnchor`] that
//!   stays put from frame to frame.
//!
//! [`SetFrames`] is the set expanded: the prompts the model draws (mirrored views are not
//! drawn), and how the finished frames, their names, durations and the sheet's clips come
//! from them.
//!
//! ```
//! use pixelgen::{Action, Plan, Recipe, SetRecipe, Size};
//!
//! let recipe = Recipe::from_ron(r#"(
//!     prompt: "knight in silver armour, pixel art game sprite",
//!     size: (width: 32, height: 32),
//!     set: (animation: (action: walk), directions: (count: 4, mirror: true)),
//! )"#)?;
//! let plan = Plan::new(recipe)?;
//! let set = plan.set_frames().unwrap();
//! // 4 rows (south, west, east, north) of the 8 walk frames; west is east mirrored.
//! assert_eq!(set.frames.len(), 32);
//! assert_eq!(set.prompts.len(), 24);
//! assert_eq!(set.columns, Some(8));
//! assert_eq!(set.tags[1].name, "walk_west");
//! assert_eq!(plan.output_size(), Size::new(8 * 32, 4 * 32));
//! // The same from code:
//! let same = Recipe {
//!     set: Some(SetRecipe::animation(Action::Walk).with_directions(4, true)),
//!     ..Recipe::new("knight in silver armour, pixel art game sprite")
//! };
//! assert_eq!(same.set, plan.recipe().set);
//! # Ok::<(), pixelgen::PixelGenError>(())
//! ```

use std::path::PathBuf;

use pixelgen_pixel::set::SetAnchor;
use pixelgen_pixel::sheet::{Direction, FrameTag};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::recipe::{Size, nearest};

/// Largest reference image file read, in bytes.
pub const MAX_REFERENCE_BYTES: u64 = 64 << 20;

/// Most frames an animation may have.
pub const MAX_ANIMATION_FRAMES: u32 = 16;

/// How a recipe's frames are made as one consistent set (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SetRecipe {
    /// An animation from an action template; `None`: one pose per frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub animation: Option<Animation>,
    /// The views of a character, a row each; `None`: one view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directions: Option<Directions>,
    /// What every frame shares attention with.
    pub reference: Reference,
    /// How strongly frames follow the reference (0: not at all, frames drawn independently;
    /// 1: full shared attention).
    pub strength: f64,
    /// The point of each frame that stays put when the set is played.
    pub anchor: SetAnchor,
}

impl Default for SetRecipe {
    fn default() -> Self {
        Self {
            animation: None,
            directions: None,
            reference: Reference::FirstFrame,
            strength: 1.0,
            anchor: SetAnchor::Baseline,
        }
    }
}

impl SetRecipe {
    /// A set of `action`'s template frames (its own frame count, playback and timing).
    pub fn animation(action: Action) -> Self {
        Self {
            animation: Some(Animation::new(action)),
            ..Self::default()
        }
    }

    /// A set of the `count` (4 or 8) views of a character, east mirrored into west when
    /// `mirror`.
    pub fn directions(count: u32, mirror: bool) -> Self {
        Self::default().with_directions(count, mirror)
    }

    /// This set seen from `count` (4 or 8) directions, a row each.
    pub fn with_directions(mut self, count: u32, mirror: bool) -> Self {
        self.directions = Some(Directions { count, mirror });
        self
    }

    /// This set drawn after the sprite at `path` (shared attention), starting from it when
    /// `start_strength` is given (image to image: 0 keeps it, 1 ignores it).
    pub fn with_reference_image(
        mut self,
        path: impl Into<PathBuf>,
        start_strength: Option<f64>,
    ) -> Self {
        self.reference = Reference::Image(ReferenceImage {
            path: path.into(),
            start_strength,
        });
        self
    }

    /// The reference image, when the set has one.
    pub fn reference_image(&self) -> Option<&ReferenceImage> {
        match &self.reference {
            Reference::Image(r) => Some(r),
            Reference::FirstFrame => None,
        }
    }

    /// Checks every field; the error names the field (`set`) and the accepted range.
    pub fn validate(&self) -> Result<()> {
        if !self.strength.is_finite() || !(0.0..=1.0).contains(&self.strength) {
            return Err(invalid(
                "set",
                format!("strength {} is outside 0..=1", self.strength),
            ));
        }
        if let Some(a) = &self.animation {
            a.validate()?;
        }
        if let Some(d) = &self.directions {
            d.views()?;
        }
        if let Reference::Image(r) = &self.reference {
            if r.path.as_os_str().is_empty() {
                return Err(invalid("set", "the reference image has no path"));
            }
            if let Some(s) = r.start_strength
                && (!s.is_finite() || s <= 0.0 || s > 1.0)
            {
                return Err(invalid(
                    "set",
                    format!(
                        "start_strength {s} is outside 0 (exclusive) to 1: how much of the \
                         reference is redrawn"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What the frames of a set share attention with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The set's first frame (the first view's first pose).
    #[default]
    FirstFrame,
    /// A sprite or picture of the user's.
    Image(ReferenceImage),
}

/// A user's sprite that a set is drawn after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceImage {
    /// A PNG (or any image the `image` crate reads) with the sprite's shape; it is scaled to
    /// the generation size. Its content is part of the cache key.
    pub path: PathBuf,
    /// Start every frame from the reference (image to image) with this strength: how much
    /// of it is redrawn (0 exclusive to 1). `None`: only shared attention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_strength: Option<f64>,
}

impl ReferenceImage {
    /// Reads the reference for sprites of `size`: a readable image of at most
    /// [`MAX_REFERENCE_BYTES`] and [`MAX_SIDE`](crate::MAX_SIDE) px a side, with the sprite's
    /// shape (aspect ratio within 5%), since it is scaled to the generation size. The error
    /// names the file and says what is wrong.
    pub fn read(&self, size: Size) -> Result<image::RgbaImage> {
        read_image_file(&self.path, "set", "reference image", |w, h| {
            let (sw, sh) = (f64::from(size.width), f64::from(size.height));
            let ratio = (f64::from(w) / f64::from(h)) / (sw / sh);
            (!(0.95..=1.05).contains(&ratio)).then(|| {
                format!(
                    "{w}x{h} px does not have the shape of the set's {size} sprites: crop or pad \
                     it to that shape"
                )
            })
        })
    }
}

/// Reads an image file a user named in a recipe (a set's reference, an edit's source or mask):
/// a regular file of at most [`MAX_REFERENCE_BYTES`], an image of 1 to
/// [`MAX_SIDE`](crate::MAX_SIDE) px a side (checked from its header, before decoding), and
/// whatever `check` says of its width and height. Errors name the recipe `field`, the file as
/// `label` and what is wrong.
pub(crate) fn read_image_file(
    path: &std::path::Path,
    field: &'static str,
    label: &str,
    check: impl FnOnce(u32, u32) -> Option<String>,
) -> Result<image::RgbaImage> {
    let bad = |why: String| invalid(field, format!("{label} {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(bad("is not a file".into()));
    }
    if meta.len() > MAX_REFERENCE_BYTES {
        return Err(bad(format!(
            "{} bytes, over the {MAX_REFERENCE_BYTES}-byte limit",
            meta.len()
        )));
    }
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| bad(format!("not an image this tool reads: {e}")))?;
    if w == 0 || h == 0 || w > crate::MAX_SIDE || h > crate::MAX_SIDE {
        return Err(bad(format!(
            "{w}x{h} px: an image here is 1 to {} px a side",
            crate::MAX_SIDE
        )));
    }
    if let Some(why) = check(w, h) {
        return Err(bad(why));
    }
    let image = image::open(path).map_err(|e| bad(format!("cannot decode it: {e}")))?;
    Ok(image.to_rgba8())
}

/// Saves `image` as a set reference in `dir`, named by its content (`ref-<16 hex>.png`), so
/// the same pixels always get the same path and cache key; a file already there is kept.
/// For hosts that hold a sprite in memory (a Bevy handle, an upload) rather than a file.
pub fn save_reference(dir: &std::path::Path, image: &image::RgbaImage) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(image.width().to_le_bytes())
        .chain_update(image.height().to_le_bytes())
        .chain_update(image.as_raw())
        .finalize();
    let path = dir.join(format!("ref-{}.png", crate::model::hex(&digest[..8])));
    if !path.is_file() {
        crate::output::prepare_dir(dir)?;
        pixelgen_pixel::write::save_png(&path, image)?;
    }
    Ok(path)
}

/// An animation from an action template, optionally retimed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Animation {
    /// The action.
    pub action: Action,
    /// Frames (1 to [`MAX_ANIMATION_FRAMES`]); `None`: the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// How the clip plays; `None`: the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback: Option<Playback>,
    /// How long each frame shows, in milliseconds; `None`: the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_ms: Option<u32>,
}

impl Animation {
    /// `action` as its template has it.
    pub fn new(action: Action) -> Self {
        Self {
            action,
            frames: None,
            playback: None,
            frame_ms: None,
        }
    }

    /// Frames of the animation.
    pub fn frame_count(&self) -> u32 {
        self.frames.unwrap_or(self.action.template().frames)
    }

    /// Playback of the animation.
    pub fn playback(&self) -> Playback {
        self.playback.unwrap_or(self.action.template().playback)
    }

    /// Frame time of the animation, in milliseconds.
    pub fn frame_ms(&self) -> u32 {
        self.frame_ms.unwrap_or(self.action.template().frame_ms)
    }

    /// The pose phrase of frame `i` (0-based) of this animation: the template's poses spread
    /// over the frame count.
    pub fn pose(&self, i: u32) -> &'static str {
        let poses = self.action.template().poses;
        let n = self.frame_count().max(1) as usize;
        poses[(i as usize * poses.len() / n).min(poses.len() - 1)]
    }

    fn validate(&self) -> Result<()> {
        let n = self.frame_count();
        if n == 0 || n > MAX_ANIMATION_FRAMES {
            return Err(invalid(
                "set",
                format!(
                    "{n} animation frames: an animation has 1 to {MAX_ANIMATION_FRAMES} frames"
                ),
            ));
        }
        if self.frame_ms == Some(0) {
            return Err(invalid("set", "frame_ms 0: a frame shows at least 1 ms"));
        }
        Ok(())
    }
}

/// How an animation clip plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Playback {
    /// First to last, again and again.
    Loop,
    /// First to last and back, again and again.
    PingPong,
    /// First to last, then holds the last frame.
    Once,
}

impl Playback {
    /// The sheet tag for frames `from..=to` played this way.
    pub fn tag(self, name: String, from: u32, to: u32) -> FrameTag {
        let direction = match self {
            Playback::PingPong => Direction::Pingpong,
            Playback::Loop | Playback::Once => Direction::Forward,
        };
        let mut tag = FrameTag::new(name, from, to, direction);
        if self == Playback::Once {
            tag.repeat = Some(1);
        }
        tag
    }
}

/// An animation template: what an action looks like frame by frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionTemplate {
    /// Frames by default.
    pub frames: u32,
    /// Playback by default.
    pub playback: Playback,
    /// Frame time by default, in milliseconds.
    pub frame_ms: u32,
    /// The words added to every frame's prompt.
    pub phrase: &'static str,
    /// One pose per default frame, in order.
    pub poses: &'static [&'static str],
}

/// The animation templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Standing and breathing (4 frames, ping-pong).
    Idle,
    /// A walk cycle (8 frames, loop).
    Walk,
    /// A run cycle (6 frames, loop).
    Run,
    /// A melee attack (6 frames, once).
    Attack,
    /// A jump from crouch to landing (6 frames, once).
    Jump,
    /// Taking a hit (3 frames, once).
    Hurt,
    /// Falling down defeated (8 frames, once).
    Death,
}

impl Action {
    /// Every action, in menu order.
    pub const ALL: [Action; 7] = [
        Action::Idle,
        Action::Walk,
        Action::Run,
        Action::Attack,
        Action::Jump,
        Action::Hurt,
        Action::Death,
    ];

    /// The action's name in recipes and clip names (`walk`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Idle => "idle",
            Action::Walk => "walk",
            Action::Run => "run",
            Action::Attack => "attack",
            Action::Jump => "jump",
            Action::Hurt => "hurt",
            Action::Death => "death",
        }
    }

    /// The action called `name` (any case); an unknown name is an error naming the nearest
    /// action and listing them all.
    pub fn parse(name: &str) -> Result<Self> {
        let found = name.trim().to_ascii_lowercase();
        if let Some(a) = Self::ALL.into_iter().find(|a| a.name() == found) {
            return Ok(a);
        }
        let names: Vec<&str> = Self::ALL.iter().map(|a| a.name()).collect();
        let mut message = format!("unknown action `{name}`");
        if let Some(near) = nearest(&found, &names) {
            message.push_str(&format!(": did you mean `{near}`?"));
        }
        message.push_str(&format!(" (actions: {})", names.join(", ")));
        Err(invalid("set", message))
    }

    /// The action's template.
    pub fn template(self) -> ActionTemplate {
        let t = |frames, playback, frame_ms, phrase, poses| ActionTemplate {
            frames,
            playback,
            frame_ms,
            phrase,
            poses,
        };
        match self {
            Action::Idle => t(
                4,
                Playback::PingPong,
                200,
                "idle stance, breathing",
                &[
                    "standing still, arms relaxed",
                    "chest slightly raised, breathing in",
                    "shoulders up, full breath",
                    "chest lowering, breathing out",
                ],
            ),
            Action::Walk => t(
                8,
                Playback::Loop,
                100,
                "walking",
                &[
                    "contact pose, left foot forward",
                    "down pose, weight on the left foot",
                    "passing pose, right leg swinging through",
                    "up pose, pushing off the left foot",
                    "contact pose, right foot forward",
                    "down pose, weight on the right foot",
                    "passing pose, left leg swinging through",
                    "up pose, pushing off the right foot",
                ],
            ),
            Action::Run => t(
                6,
                Playback::Loop,
                80,
                "running",
                &[
                    "left foot striking the ground",
                    "left knee bent, body low",
                    "both feet off the ground, arms pumping",
                    "right foot striking the ground",
                    "right knee bent, body low",
                    "both feet off the ground, leaning forward",
                ],
            ),
            Action::Attack => t(
                6,
                Playback::Once,
                80,
                "melee attack",
                &[
                    "ready stance, weapon held",
                    "wind-up, weapon raised back",
                    "body coiled, about to strike",
                    "strike, weapon swung forward",
                    "follow-through, weapon low",
                    "recovering to the ready stance",
                ],
            ),
            Action::Jump => t(
                6,
                Playback::Once,
                100,
                "jumping",
                &[
                    "crouching, knees bent",
                    "take-off, legs extending",
                    "rising, arms up",
                    "at the top, legs tucked",
                    "falling, legs reaching down",
                    "landing, knees bent",
                ],
            ),
            Action::Hurt => t(
                3,
                Playback::Once,
                100,
                "getting hit",
                &[
                    "flinching from a hit",
                    "knocked back, leaning away",
                    "regaining balance",
                ],
            ),
            Action::Death => t(
                8,
                Playback::Once,
                120,
                "dying",
                &[
                    "hit hard, staggering",
                    "knees buckling",
                    "falling to the knees",
                    "kneeling, slumping",
                    "falling forward",
                    "hitting the ground",
                    "lying on the ground",
                    "lying still, defeated",
                ],
            ),
        }
    }
}

/// The views of a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directions {
    /// 4 (south, west, east, north) or 8 (with the diagonals).
    pub count: u32,
    /// Make west-facing views by mirroring the east-facing ones (not drawn by the model).
    #[serde(default)]
    pub mirror: bool,
}

impl Directions {
    /// The views in row order: 4 as RPG sheets have them (south, west, east, north), 8
    /// clockwise from south.
    pub fn views(&self) -> Result<&'static [View]> {
        match self.count {
            4 => Ok(&[View::South, View::West, View::East, View::North]),
            8 => Ok(&[
                View::South,
                View::SouthWest,
                View::West,
                View::NorthWest,
                View::North,
                View::NorthEast,
                View::East,
                View::SouthEast,
            ]),
            n => Err(invalid(
                "set",
                format!("{n} directions: a character has 4 or 8"),
            )),
        }
    }
}

/// Where a character faces. South faces the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Facing the viewer.
    South,
    /// Facing down and to the left.
    SouthWest,
    /// Facing left.
    West,
    /// Facing up and to the left.
    NorthWest,
    /// Facing away.
    North,
    /// Facing up and to the right.
    NorthEast,
    /// Facing right.
    East,
    /// Facing down and to the right.
    SouthEast,
}

impl View {
    /// The view's name in clip names (`south_west`).
    pub fn name(self) -> &'static str {
        match self {
            View::South => "south",
            View::SouthWest => "south_west",
            View::West => "west",
            View::NorthWest => "north_west",
            View::North => "north",
            View::NorthEast => "north_east",
            View::East => "east",
            View::SouthEast => "south_east",
        }
    }

    /// The words added to the prompt of this view's frames.
    pub fn phrase(self) -> &'static str {
        match self {
            View::South => "front view, facing the viewer",
            View::SouthWest => "three-quarter front view, facing down and to the left",
            View::West => "side view, facing left",
            View::NorthWest => "three-quarter back view, facing up and to the left",
            View::North => "back view, facing away from the viewer",
            View::NorthEast => "three-quarter back view, facing up and to the right",
            View::East => "side view, facing right",
            View::SouthEast => "three-quarter front view, facing down and to the right",
        }
    }

    /// For a west-facing view, the east-facing view it mirrors.
    pub fn mirror_of(self) -> Option<View> {
        match self {
            View::West => Some(View::East),
            View::SouthWest => Some(View::SouthEast),
            View::NorthWest => Some(View::NorthEast),
            _ => None,
        }
    }
}

/// One finished frame of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetFrame {
    /// The drawn frame it comes from (an index into [`SetFrames::prompts`]).
    pub source: usize,
    /// Mirrored left to right (a west view made from an east one).
    pub mirrored: bool,
    /// The frame's name in the sheet, e.g. `walk_east 3`.
    pub name: String,
    /// How long it shows, in milliseconds.
    pub duration_ms: u32,
}

/// A set expanded: what the model draws and how the finished frames come from it.
#[derive(Debug, Clone, PartialEq)]
pub struct SetFrames {
    /// The prompt of each frame the model draws, in order; the first is the reference
    /// frame when the set shares attention with its first frame.
    pub prompts: Vec<String>,
    /// The finished frames in sheet order (row by row).
    pub frames: Vec<SetFrame>,
    /// Frames per sheet row (an animation's length, or the number of views without one);
    /// `None`: the recipe's sheet options decide.
    pub columns: Option<u32>,
    /// One clip per row for an animation (`walk_east`), one per view for directions alone
    /// (`east`); empty otherwise.
    pub tags: Vec<FrameTag>,
}

impl SetFrames {
    /// Expands `set` over the recipe's `prompt` (`frame_prompts` when the set has neither an
    /// animation nor directions).
    pub fn expand(set: &SetRecipe, prompt: &str, frame_prompts: Vec<String>) -> Result<Self> {
        set.validate()?;
        let views: Vec<Option<View>> = match &set.directions {
            Some(d) => d.views()?.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        let Some(animation) = &set.animation else {
            if set.directions.is_none() {
                return Ok(Self::plain(frame_prompts));
            }
            // One pose per view, in one row, each view a one-frame clip.
            let mut out = Self::plain(Vec::new());
            out.columns = Some(views.len() as u32);
            let poses: Vec<(Option<View>, Option<u32>)> =
                views.iter().map(|v| (*v, None)).collect();
            out.push_views(&poses, set, prompt, None);
            out.tags = views
                .iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i as u32, v.as_ref()?)))
                .map(|(i, v)| Playback::Loop.tag(v.name().to_owned(), i, i))
                .collect();
            return Ok(out);
        };
        let n = animation.frame_count();
        let mut out = Self::plain(Vec::new());
        out.columns = Some(n);
        for view in &views {
            let row = out.frames.len() as u32;
            let poses: Vec<(Option<View>, Option<u32>)> =
                (0..n).map(|i| (*view, Some(i))).collect();
            out.push_views(&poses, set, prompt, Some(animation));
            let name = match view {
                Some(v) => format!("{}_{}", animation.action.name(), v.name()),
                None => animation.action.name().to_owned(),
            };
            out.tags
                .push(animation.playback().tag(name, row, row + n - 1));
        }
        Ok(out)
    }

    /// A set of plain frames, one per prompt, drawn in order.
    fn plain(prompts: Vec<String>) -> Self {
        let frames = (0..prompts.len())
            .map(|i| SetFrame {
                source: i,
                mirrored: false,
                name: format!("frame {i}"),
                duration_ms: pixelgen_pixel::sheet::DEFAULT_DURATION_MS,
            })
            .collect();
        Self {
            prompts,
            frames,
            columns: None,
            tags: Vec::new(),
        }
    }

    /// Adds one finished frame per (view, pose): drawn, or mirrored from the frame of the
    /// same pose in the view it mirrors. Each prompt is drawn once: a mirrored frame and its
    /// source share one drawn frame, whichever row comes first.
    fn push_views(
        &mut self,
        poses: &[(Option<View>, Option<u32>)],
        set: &SetRecipe,
        prompt: &str,
        animation: Option<&Animation>,
    ) {
        let mirror = set.directions.is_some_and(|d| d.mirror);
        for &(view, pose) in poses {
            let label = match (animation, view) {
                (Some(a), Some(v)) => format!("{}_{}", a.action.name(), v.name()),
                (Some(a), None) => a.action.name().to_owned(),
                (None, Some(v)) => v.name().to_owned(),
                (None, None) => "frame".to_owned(),
            };
            let name = match pose {
                Some(i) => format!("{label} {i}"),
                None => label,
            };
            let duration_ms =
                animation.map_or(pixelgen_pixel::sheet::DEFAULT_DURATION_MS, |a| a.frame_ms());
            let mirrored_from = view.and_then(View::mirror_of).filter(|_| mirror);
            let drawn_view = mirrored_from.or(view);
            let text = frame_prompt(prompt, drawn_view, animation, pose);
            let source = match self.prompts.iter().position(|p| *p == text) {
                Some(i) => i,
                None => {
                    self.prompts.push(text);
                    self.prompts.len() - 1
                }
            };
            self.frames.push(SetFrame {
                source,
                mirrored: mirrored_from.is_some(),
                name,
                duration_ms,
            });
        }
    }
}

/// The prompt of one drawn frame: the recipe's prompt, the view, the action and the pose.
fn frame_prompt(
    prompt: &str,
    view: Option<View>,
    animation: Option<&Animation>,
    pose: Option<u32>,
) -> String {
    let mut text = prompt.trim().to_owned();
    if let Some(v) = view {
        text.push_str(", ");
        text.push_str(v.phrase());
    }
    if let Some(a) = animation {
        let t = a.action.template();
        text.push_str(", ");
        text.push_str(t.phrase);
        if let Some(i) = pose {
            text.push_str(&format!(
                ", {}, frame {} of {}",
                a.pose(i),
                i + 1,
                a.frame_count()
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_message(r: Result<SetFrames>) -> String {
        match r {
            Err(crate::PixelGenError::InvalidRecipe { field, message }) => {
                assert_eq!(field, "set");
                message
            }
            Err(other) => panic!("expected an invalid set, got {other}"),
            Ok(s) => panic!("expected an invalid set, got {} frames", s.frames.len()),
        }
    }

    #[test]
    fn eight_mirrored_directions_draw_five_views_and_tag_every_row() {
        let set = SetRecipe::animation(Action::Idle).with_directions(8, true);
        let out = SetFrames::expand(&set, "wizard", vec![]).unwrap();
        assert_eq!(out.columns, Some(4));
        assert_eq!(out.frames.len(), 32);
        // West, south-west and north-west are mirrored: 5 views of 4 poses are drawn.
        assert_eq!(out.prompts.len(), 20);
        let names: Vec<&str> = out.tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names[..3], ["idle_south", "idle_south_west", "idle_west"]);
        let west = &out.tags[2];
        assert_eq!((west.from, west.to), (8, 11));
        assert_eq!(west.direction, Direction::Pingpong);
        // West pose 1 is east pose 1, mirrored.
        let w1 = &out.frames[9];
        assert!(w1.mirrored);
        assert_eq!(w1.name, "idle_west 1");
        let e1 = out.frames.iter().find(|f| f.name == "idle_east 1").unwrap();
        assert_eq!((w1.source, e1.mirrored), (e1.source, false));
        assert!(out.prompts[e1.source].contains("facing right"));
        assert!(
            out.prompts[0].starts_with("wizard, front view")
                && out.prompts[0].ends_with("frame 1 of 4")
        );
        assert!(out.frames.iter().all(|f| f.duration_ms == 200));
    }

    #[test]
    fn retimed_animations_and_plain_sets() {
        let set = SetRecipe {
            animation: Some(Animation {
                frames: Some(3),
                playback: Some(Playback::Once),
                frame_ms: Some(50),
                ..Animation::new(Action::Walk)
            }),
            ..SetRecipe::default()
        };
        let out = SetFrames::expand(&set, "cat", vec![]).unwrap();
        assert_eq!(out.prompts.len(), 3);
        assert_eq!(out.tags[0].name, "walk");
        assert_eq!(out.tags[0].repeat, Some(1));
        assert!(out.prompts[2].contains("frame 3 of 3"));
        // Neither animation nor directions: the recipe's frames, as they are.
        let plain = SetFrames::expand(
            &SetRecipe::default(),
            "potion",
            vec!["red potion".into(), "blue potion".into()],
        )
        .unwrap();
        assert_eq!(plain.prompts, ["red potion", "blue potion"]);
        assert!(plain.tags.is_empty() && plain.columns.is_none());
        // Directions only: one row of views.
        let views = SetFrames::expand(&SetRecipe::directions(4, false), "orc", vec![]).unwrap();
        assert_eq!(views.columns, Some(4));
        assert_eq!(views.prompts.len(), 4);
        assert_eq!(views.frames[3].name, "north");
        let clips: Vec<(&str, u32, u32)> = views
            .tags
            .iter()
            .map(|t| (t.name.as_str(), t.from, t.to))
            .collect();
        assert_eq!(clips[3], ("north", 3, 3));
    }

    #[test]
    fn bad_sets_are_refused_with_the_reason() {
        let frames = |n| SetRecipe {
            animation: Some(Animation {
                frames: Some(n),
                ..Animation::new(Action::Run)
            }),
            ..SetRecipe::default()
        };
        assert!(field_message(SetFrames::expand(&frames(0), "x", vec![])).contains("0 animation"));
        assert!(
            field_message(SetFrames::expand(&frames(1000), "x", vec![])).contains("1 to 16 frames")
        );
        let three = SetRecipe::directions(3, false);
        assert!(field_message(SetFrames::expand(&three, "x", vec![])).contains("4 or 8"));
        let strong = SetRecipe {
            strength: 1.5,
            ..SetRecipe::default()
        };
        assert!(field_message(SetFrames::expand(&strong, "x", vec![])).contains("strength"));
        let start = SetRecipe::default().with_reference_image("hero.png", Some(0.0));
        assert!(field_message(SetFrames::expand(&start, "x", vec![])).contains("start_strength"));
        let err = Action::parse("wlak").unwrap_err().to_string();
        assert!(err.contains("did you mean `walk`?"), "{err}");
        assert!(
            err.contains("idle, walk, run, attack, jump, hurt, death"),
            "{err}"
        );
        assert_eq!(Action::parse(" Death ").unwrap(), Action::Death);
    }
}
