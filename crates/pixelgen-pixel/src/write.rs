//! Writing files so that nobody ever sees half of one: the one writer every crate of the
//! workspace uses ([`write_atomic`]), the clean-up of what a killed writer leaves behind
//! ([`remove_stale_temps`]), and PNG output checked before anything is written
//! ([`check_output`], [`save_png`]).
//!
//! A write goes to a temporary file next to the target, named `.NAME.PID-N.tmp` (`PID` the
//! writing process, `N` a per-process counter), which is flushed to the disk and renamed over
//! the target. A full disk, a missing folder or any other failure is an error naming the
//! target, the temporary file is removed and the target keeps its old content (or stays
//! absent). Only a process killed mid-write (`kill -9`, a power cut) leaves its temporary file:
//! [`remove_stale_temps`] deletes those, and only those, on the next start.
//!
//! ```
//! use pixelgen_pixel::write::{remove_stale_temps, write_atomic};
//!
//! let dir = std::env::temp_dir().join(format!("pixelgen-write-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! write_atomic(&dir.join("notes.txt"), b"hello")?;
//! assert_eq!(std::fs::read(dir.join("notes.txt"))?, b"hello");
//! assert_eq!(remove_stale_temps(&dir)?, 0); // nothing left behind
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use image::RgbaImage;

use crate::error::{PixelError, Result};

/// The image formats [`check_output`] and [`save_png`] write, as file extensions.
pub const OUTPUT_FORMATS: &[&str] = &["png"];

/// Where no process table can be read (`/proc`), a temporary file counts as stale once it
/// has not been touched for this long.
const STALE_AGE: Duration = Duration::from_secs(3600);

/// Writes `bytes` to `path` so that `path` holds either its old content or all of `bytes`:
/// a temporary file in the same folder (`.NAME.PID-N.tmp`) is written, flushed to the disk
/// (`fsync`) and renamed over `path`, then the folder is synced so the rename survives a power
/// cut. On any error (a full disk included, which shows at the write or the flush, never
/// later) the temporary file is removed and the error is returned; the folder must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = path.with_file_name(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable once the folder is synced (not possible everywhere: best effort).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The process id in a temporary file name of [`write_atomic`] (`.NAME.PID-N.tmp`), or
/// `None` when `name` is any other name (a user's file is never taken for ours).
pub fn temp_file_pid(name: &OsStr) -> Option<u32> {
    let name = name.to_str()?;
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (target, id) = inner.rsplit_once('.')?;
    let (pid, n) = id.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if target.is_empty() || !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Deletes the temporary files [`write_atomic`] left in `dir` when its process was killed
/// mid-write; returns how many. Only names of that exact shape are touched, and only when
/// their writer is gone: the process id in the name is not running (where `/proc` tells),
/// or else the file is over an hour old. So a writer still running (this process included)
/// keeps its file. A missing `dir` holds nothing: `Ok(0)`. Cheap: one `read_dir`.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let proc_table = Path::new("/proc/self").exists();
    let mut removed = 0;
    let mut first_error = None;
    for entry in entries {
        let entry = entry?;
        let Some(pid) = temp_file_pid(&entry.file_name()) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let stale = if pid == std::process::id() {
            false
        } else if proc_table {
            !Path::new(&format!("/proc/{pid}")).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_AGE)
        };
        if !stale {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// Checks, before anything is written, that `path` can take an image: its extension names a
/// format we write ([`OUTPUT_FORMATS`], any case), it is not a folder, and its folder exists
/// or can be created (the nearest existing ancestor is a folder). Writes nothing; a program
/// with several outputs checks them all first, so a bad second path never leaves the first
/// one written.
pub fn check_output(path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if !ext.as_deref().is_some_and(|e| OUTPUT_FORMATS.contains(&e)) {
        return Err(PixelError::UnsupportedFormat {
            path: path.to_path_buf(),
            supported: OUTPUT_FORMATS
                .iter()
                .map(|f| format!(".{f}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let fail = |kind, message: String| PixelError::Write {
        path: path.to_path_buf(),
        source: io::Error::new(kind, message),
    };
    if path.is_dir() {
        return Err(fail(io::ErrorKind::IsADirectory, "it is a folder".into()));
    }
    let parent = parent_of(path);
    if let Some(existing) = parent.ancestors().find(|a| a.exists())
        && !existing.is_dir()
    {
        return Err(fail(
            io::ErrorKind::NotADirectory,
            format!("{} is not a folder", existing.display()),
        ));
    }
    Ok(())
}

/// `image` encoded as PNG bytes (in memory: nothing is written).
pub fn encode_png(image: &RgbaImage) -> std::result::Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::new();
    image.write_to(&mut io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    Ok(bytes)
}

/// Writes `image` as a PNG at `path`: [`check_output`], encode in memory, create the folder,
/// then [`write_atomic`]. Errors name the file ([`PixelError::Write`]: "cannot write PATH:
/// ..."); on error `path` keeps its old content or stays absent and no temporary file is left.
pub fn save_png(path: &Path, image: &RgbaImage) -> Result<()> {
    check_output(path)?;
    let bytes = encode_png(image).map_err(|source| PixelError::Image {
        path: path.to_path_buf(),
        source,
    })?;
    let write_err = |source| PixelError::Write {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(parent_of(path)).map_err(write_err)?;
    write_atomic(path, &bytes).map_err(write_err)
}

/// The folder `path` is in (`.` for a bare file name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pixelgen-write-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn temp_names_are_recognised_exactly() {
        let pid = |s: &str| temp_file_pid(OsStr::new(s));
        assert_eq!(pid(".a.png.123-0.tmp"), Some(123));
        assert_eq!(pid(".x.pixelgen.ron.7-42.tmp"), Some(7));
        for other in [
            "a.png.123-0.tmp",
            ".a.png.tmp",
            ".a.png.12-.tmp",
            ".a.png.-3.tmp",
            ".a.png.1x-3.tmp",
            "..1-2.tmp",
            ".a.png.1-2.tmp.bak",
            "notes.tmp",
            ".hidden",
        ] {
            assert_eq!(pid(other), None, "{other}");
        }
    }

    #[test]
    fn writes_replace_and_leave_nothing_behind() {
        let dir = temp_dir("ok");
        let path = dir.join("a.bin");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two!").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two!");
        assert_eq!(names(&dir), ["a.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Injected failures: the rename fails after the temporary file was written (the target
    /// is a folder), the folder is a file, the folder is missing.
    #[test]
    fn failures_keep_the_target_and_remove_the_temp() {
        let dir = temp_dir("fail");
        let target = dir.join("taken.png");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        write_atomic(&target, b"data").unwrap_err();
        assert_eq!(
            names(&dir),
            ["taken.png"],
            "temp removed after a failed rename"
        );
        let file = dir.join("file");
        fs::write(&file, b"x").unwrap();
        write_atomic(&file.join("a.png"), b"data").unwrap_err();
        write_atomic(&dir.join("missing/a.png"), b"data").unwrap_err();
        assert_eq!(names(&dir), ["file", "taken.png"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temps_of_dead_writers_are_removed_and_nothing_else() {
        let dir = temp_dir("stale");
        // A pid that cannot be running (above Linux's pid_max) and our own (a live writer).
        let dead = format!(".a.png.{}-0.tmp", u32::MAX - 1);
        let live = format!(".b.png.{}-0.tmp", std::process::id());
        for n in [&dead, &live, "keep.png", ".keep.tmp", "c.png.1-1.tmp"] {
            fs::write(dir.join(n), b"x").unwrap();
        }
        fs::create_dir(dir.join(format!(".d.{}-1.tmp", u32::MAX - 1))).unwrap();
        if Path::new("/proc/self").exists() {
            assert_eq!(remove_stale_temps(&dir).unwrap(), 1);
            assert!(!dir.join(&dead).exists());
        }
        for n in [&live, "keep.png", ".keep.tmp", "c.png.1-1.tmp"] {
            assert!(dir.join(n).exists(), "{n} kept");
        }
        assert_eq!(remove_stale_temps(&dir.join("absent")).unwrap(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn outputs_are_checked_before_writing() {
        let dir = temp_dir("check");
        check_output(&dir.join("a.png")).unwrap();
        check_output(&dir.join("A.PNG")).unwrap();
        check_output(&dir.join("new/sub/a.png")).unwrap();
        check_output(Path::new("relative.png")).unwrap();
        let err = check_output(&dir.join("a.jpg")).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot write ") && err.contains(".png"),
            "{err}"
        );
        assert!(check_output(&dir.join("noext")).is_err());
        fs::create_dir(dir.join("d.png")).unwrap();
        let err = check_output(&dir.join("d.png")).unwrap_err().to_string();
        assert!(err.contains("is a folder"), "{err}");
        fs::write(dir.join("f"), b"x").unwrap();
        let err = check_output(&dir.join("f/g/a.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a folder"), "{err}");
        assert_eq!(names(&dir), ["d.png", "f"], "checking writes nothing");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_png_round_trips_and_creates_the_folder() {
        let dir = temp_dir("png");
        let img = RgbaImage::from_fn(5, 3, |x, y| image::Rgba([x as u8, y as u8, 9, 200]));
        let path = dir.join("sub/out.png");
        save_png(&path, &img).unwrap();
        assert_eq!(image::open(&path).unwrap().into_rgba8(), img);
        let err = save_png(&dir.join("x.jpeg"), &img).unwrap_err().to_string();
        assert!(err.contains("x.jpeg"), "{err}");
        assert_eq!(names(&dir), ["sub"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
