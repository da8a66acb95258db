//! The panel's settings on disk: [`EditorState`] as RON, loaded at startup and saved (debounced)
//! when it changes and when the app exits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bevy::app::AppExit;
use bevy::ecs::message::MessageReader;
use bevy::ecs::resource::Resource;
use bevy::ecs::system::{Res, ResMut};
use bevy::time::{Real, Time};

use super::state::{EditorError, EditorLog, EditorState};

/// Where the settings live and how long a change waits before it is written.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct SettingsFile {
    /// The RON file.
    pub path: PathBuf,
    /// A change is written once the form has been left alone this long.
    pub debounce: Duration,
}

/// What was last written (or read), and since when the form differs from it.
#[derive(Resource, Debug, Clone, Default)]
pub(super) struct SettingsSaver {
    /// The state on disk (or the one whose write failed and was reported).
    written: Option<EditorState>,
    /// The state as last seen differing from `written`, and when it was first seen so.
    pending: Option<(EditorState, Duration)>,
}

impl SettingsSaver {
    pub(super) fn loaded(state: EditorState) -> Self {
        Self {
            written: Some(state),
            pending: None,
        }
    }
}

/// Reads the settings file: `Ok(None)` when there is none yet.
pub fn load_settings(path: &Path) -> Result<Option<EditorState>, EditorError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EditorError::Settings {
                path: path.to_owned(),
                message: e.to_string(),
            });
        }
    };
    ron::from_str::<EditorState>(&text)
        .map(|mut s| {
            s.sanitize();
            Some(s)
        })
        .map_err(|e| EditorError::Settings {
            path: path.to_owned(),
            message: format!("not valid editor settings ({e})"),
        })
}

/// Writes the settings file atomically (creating its folder).
pub fn save_settings(path: &Path, state: &EditorState) -> Result<(), EditorError> {
    let err = |message: String| EditorError::Write {
        path: path.to_owned(),
        message,
    };
    let text = ron::ser::to_string_pretty(state, ron::ser::PrettyConfig::default())
        .map_err(|e| err(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    pixelgen::write_atomic(path, text.as_bytes()).map_err(|e| err(e.to_string()))
}

/// The state at startup: the saved settings, or the defaults (and a logged reason) when the
/// file is missing or unreadable. An unparsable file is copied to `FILE.bad` first, so the
/// next save does not destroy what was in it.
pub(super) fn startup_state(path: &Path, log: &mut EditorLog) -> EditorState {
    match load_settings(path) {
        Ok(Some(s)) => s,
        Ok(None) => EditorState::default(),
        Err(e) => {
            let mut message = e.to_string();
            if path.is_file() {
                let backup = backup_path(path);
                match std::fs::copy(path, &backup) {
                    Ok(_) => message.push_str(&format!(" (kept a copy in {})", backup.display())),
                    Err(c) => message.push_str(&format!(" (no copy kept: {c})")),
                }
            }
            bevy::log::warn!("pixelgen editor: {message}");
            log.error(message);
            EditorState::default()
        }
    }
}

/// Where an unreadable settings file is copied: `FILE.bad` next to it.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bad");
    path.with_file_name(name)
}

/// Writes the form once it has been unchanged for the debounce time, and at exit.
pub(super) fn persist_settings(
    file: Option<Res<SettingsFile>>,
    mut saver: ResMut<SettingsSaver>,
    state: Res<EditorState>,
    time: Res<Time<Real>>,
    mut exit: MessageReader<AppExit>,
    mut log: ResMut<EditorLog>,
) {
    let Some(file) = file else {
        return;
    };
    let exiting = exit.read().count() > 0;
    if saver.written.as_ref() == Some(&*state) {
        saver.pending = None;
        return;
    }
    let now = time.elapsed();
    // Every edit restarts the wait, so a drag or typing is written once, after it ends.
    if saver.pending.as_ref().is_none_or(|(s, _)| s != &*state) {
        saver.pending = Some((state.clone(), now));
    }
    let since = saver.pending.as_ref().map_or(now, |(_, t)| *t);
    if exiting || now.saturating_sub(since) >= file.debounce {
        if let Err(e) = save_settings(&file.path, &state) {
            bevy::log::warn!("pixelgen editor: {e}");
            log.error(e.to_string());
        }
        // Written, or failed and reported once: wait for the next change either way.
        saver.written = Some(state.clone());
        saver.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("pixelgen-settings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested/editor.ron");
        assert_eq!(load_settings(&path).unwrap(), None, "no file yet");
        let state = EditorState {
            prompt: "ice wand".into(),
            zoom: 3,
            fps: 12.0,
            visible: false,
            ..EditorState::default()
        };
        save_settings(&path, &state).unwrap();
        assert_eq!(load_settings(&path).unwrap(), Some(state));
        std::fs::write(&path, "(prompt: 12,").unwrap();
        match load_settings(&path) {
            Err(EditorError::Settings { path: p, message }) => {
                assert_eq!(p, path);
                assert!(message.contains("not valid"), "{message}");
            }
            other => panic!("expected a settings error, got {other:?}"),
        }
        // Unknown fields (a newer version's) and missing ones (an older one's) load.
        std::fs::write(&path, "(prompt: \"a\", future_field: 3)").unwrap();
        let s = load_settings(&path).unwrap().unwrap();
        assert_eq!(s.prompt, "a");
        assert_eq!(s.fps, EditorState::default().fps);
        // Values out of the panel's ranges are brought back in.
        std::fs::write(
            &path,
            "(zoom: 1000, fps: -3.0, width: 9000, variations: 0, sheet: (count: 0), steps: 0)",
        )
        .unwrap();
        let s = load_settings(&path).unwrap().unwrap();
        assert_eq!((s.zoom, s.fps, s.width, s.variations), (16, 1.0, 256, 1));
        assert_eq!((s.sheet.count, s.steps), (1, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
