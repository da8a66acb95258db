//! The one writer on a full disk (a 64 KiB tmpfs; skipped with the reason where mounting is
//! not permitted).

use std::fs;
use std::io;

use image::RgbaImage;
use pixelgen_pixel::write::{save_png, write_atomic};

#[path = "../../../tests/common/files.rs"]
mod files;
use files::{SmallDisk, names};

/// An RGBA image of noise: its PNG is about as large as its pixels (256 KiB here).
fn noise(side: u32) -> RgbaImage {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    RgbaImage::from_fn(side, side, |_, _| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        image::Rgba((s as u32).to_le_bytes())
    })
}

/// A full disk: the write fails with the OS's "no space" error, the old content stays, no
/// temporary file is left.
#[test]
fn a_full_disk_is_a_write_error_and_leaves_nothing() {
    let dir = std::env::temp_dir().join(format!("pixelgen-write-full-{}", std::process::id()));
    let Some(disk) = SmallDisk::mount(dir) else {
        return;
    };
    let old = disk.path().join("old.bin");
    fs::write(&old, b"old").unwrap();
    let err = write_atomic(&old, &vec![7u8; 200 * 1024]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
    assert_eq!(fs::read(&old).unwrap(), b"old");
    let png = disk.path().join("sprite.png");
    let err = save_png(&png, &noise(256)).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot write {}: ", png.display())),
        "{err}"
    );
    assert!(err.contains("space"), "{err}");
    assert_eq!(names(disk.path()), ["old.bin"], "no temp, no partial PNG");
    // The disk still takes what fits.
    save_png(&png, &noise(8)).unwrap();
    assert_eq!(names(disk.path()), ["old.bin", "sprite.png"]);
}
