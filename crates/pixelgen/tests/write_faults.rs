//! Saving under faults, on the real filesystem: a full disk (a 64 KiB tmpfs; skipped with a
//! printed reason where mounting is not permitted), an injected failure mid-save, and
//! `kill -9` at random moments while a child process saves sprite pairs and cache entries.
//! Nothing may be left half-written: no temporary file after the next start, no PNG without
//! its recipe, every PNG and recipe readable.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::{Rgba, RgbaImage};
use pixelgen::{Artwork, CacheKey, DiskCache, ModelIdentity, PixelGenError, Recipe, Seed, save_as};
use pixelgen_pixel::write::temp_file_pid;

#[path = "../../../tests/common/files.rs"]
mod files;
use files::{SmallDisk, names};

/// Set in the child process of the kill test: the folder it saves into.
const WRITER_DIR: &str = "PIXELGEN_TEST_WRITER_LOOP_DIR";

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pixelgen-faults-{name}-{}-{}",
        std::process::id(),
        Seed::draw()
    ));
    fs::create_dir_all(&d).unwrap();
    d
}

/// An RGBA image of noise: its PNG is about as large as its pixels.
fn noise(side: u32, seed: u64) -> RgbaImage {
    let mut s = seed | 1;
    RgbaImage::from_fn(side, side, |_, _| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        Rgba((s as u32).to_le_bytes())
    })
}

fn recipe(i: u64) -> Recipe {
    let mut r = Recipe::new(format!("sprite number {i}"));
    r.seed = Seed::Fixed(i);
    r
}

fn art<'a>(image: &'a RgbaImage, recipe: &'a Recipe) -> Artwork<'a> {
    Artwork {
        image,
        recipe,
        layout: None,
    }
}

fn temps(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| temp_file_pid(&e.file_name()).is_some())
        })
        .count()
    })
}

/// A full disk: `save_as` and `DiskCache::put_sprite` report "cannot write PATH: ...", the
/// new pair is not there at all (the recipe it wrote first is removed again), an existing PNG
/// keeps its content, no temporary file is left.
#[test]
fn a_full_disk_fails_the_save_and_leaves_nothing() {
    let Some(disk) = SmallDisk::mount(temp_dir("full")) else {
        return;
    };
    let big = noise(256, 1);
    let r = recipe(1);
    let err = save_as(disk.path(), "big", art(&big, &r), true).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PixelGenError::Io { .. }), "{msg}");
    assert!(
        msg.starts_with(&format!(
            "cannot write {}",
            disk.path().join("big.png").display()
        )),
        "{msg}"
    );
    assert!(names(disk.path()).is_empty(), "{:?}", names(disk.path()));
    // A small pair fits; replacing its PNG by one too large keeps the old one.
    let small = noise(8, 2);
    let saved = save_as(disk.path(), "keep", art(&small, &r), true).unwrap();
    let before = fs::read(&saved.png).unwrap();
    save_as(disk.path(), "keep", art(&big, &r), true).unwrap_err();
    assert_eq!(fs::read(&saved.png).unwrap(), before, "old PNG unchanged");
    assert_eq!(names(disk.path()), ["keep.pixelgen.ron", "keep.png"]);
    // The disk cache: same story.
    let cache = DiskCache::new(disk.path().join("cache"));
    let key = CacheKey::new(&r, &ModelIdentity("m".into())).unwrap();
    let err = cache.put_sprite(&key, &big).unwrap_err().to_string();
    assert!(
        err.contains("cannot write") && err.contains(".png"),
        "{err}"
    );
    assert!(names(&disk.path().join("cache")).is_empty());
    assert_eq!(cache.get_sprite(&key).unwrap(), None);
}

/// An injected failure on the last file of a pair (its PNG path is taken by a folder, so the
/// rename fails after the PNG was written): an error, the recipe written first is removed
/// again, no temporary file. Works without root.
#[test]
fn a_failed_png_write_takes_its_new_recipe_back() {
    let dir = temp_dir("inject");
    fs::create_dir_all(dir.join("taken.png/inside")).unwrap();
    let img = noise(16, 3);
    let r = recipe(3);
    let err = save_as(&dir, "taken", art(&img, &r), true).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot write {}", dir.join("taken.png").display())),
        "{err}"
    );
    assert_eq!(names(&dir), ["taken.png"], "no recipe, no temp");
    // The folder of the pair is a file: an error naming it, nothing written.
    fs::write(dir.join("file"), b"x").unwrap();
    assert!(save_as(&dir.join("file"), "a", art(&img, &r), true).is_err());
    assert_eq!(names(&dir), ["file", "taken.png"]);
    fs::remove_dir_all(&dir).unwrap();
}

/// The first save (and the first cache write) of a process into a folder removes the
/// temporary files of writers that are gone, and nothing else.
#[test]
fn the_first_write_into_a_folder_removes_stale_temps() {
    let dir = temp_dir("stale");
    let cache_dir = dir.join("cache");
    fs::create_dir_all(&cache_dir).unwrap();
    // A pid above Linux's pid_max: its writer cannot be running.
    let dead = format!(".x.png.{}-3.tmp", u32::MAX - 1);
    for d in [&dir, &cache_dir] {
        fs::write(d.join(&dead), b"half a png").unwrap();
        fs::write(d.join(".notes.tmp"), b"the user's").unwrap();
    }
    let img = noise(4, 5);
    let r = recipe(5);
    save_as(&dir, "a", art(&img, &r), true).unwrap();
    DiskCache::new(&cache_dir)
        .put_sprite(
            &CacheKey::new(&r, &ModelIdentity("m".into())).unwrap(),
            &img,
        )
        .unwrap();
    if Path::new("/proc/self").exists() {
        assert!(!dir.join(&dead).exists() && !cache_dir.join(&dead).exists());
    }
    assert!(dir.join(".notes.tmp").exists() && cache_dir.join(".notes.tmp").exists());
    fs::remove_dir_all(&dir).unwrap();
}

/// Not a test on its own: the child process of [`kill_9_at_random_moments_tears_nothing`]
/// (this binary re-run with `WRITER_DIR` set) saves sprite pairs and cache entries until it
/// is killed. Without the variable it returns at once.
#[test]
fn writer_loop() {
    let Some(dir) = std::env::var_os(WRITER_DIR).map(PathBuf::from) else {
        return;
    };
    let out = dir.join("out");
    let cache = DiskCache::new(dir.join("cache"));
    let model = ModelIdentity("m".into());
    let pid = std::process::id() as u64;
    for i in 0.. {
        let image = noise(256, pid * 1000 + i);
        let r = recipe(pid * 1000 + i);
        save_as(&out, &format!("s{pid}-{i}"), art(&image, &r), true).unwrap();
        let key = CacheKey::new(&r, &model).unwrap();
        cache.put_sprite(&key, &image).unwrap();
    }
}

/// `kill -9` 25 times at random moments while a child saves (PNG + recipe pairs through
/// `save_as`, PNGs through `DiskCache`), then the next start (this process's first save and
/// cache write there) cleans up. Afterwards: no temporary file, every PNG beside its recipe,
/// every PNG decodes, every recipe parses.
#[test]
fn kill_9_at_random_moments_tears_nothing() {
    if std::env::var_os(WRITER_DIR).is_some() {
        return;
    }
    let dir = temp_dir("kill");
    let (out, cache_dir) = (dir.join("out"), dir.join("cache"));
    let exe = std::env::current_exe().unwrap();
    let mut rng = Seed::draw() | 1;
    let start = Instant::now();
    // Rounds after which a temporary file lay there, and how many were seen in all (each
    // child's first write removes those of the child killed before it).
    let (mut kills, mut mid_write, mut seen) = (0, 0, 0);
    // 25 kills; should none of them land mid-write (about 1 in 4 does), up to 25 more.
    while (kills < 25 || (mid_write == 0 && kills < 50))
        && start.elapsed() < Duration::from_secs(30)
    {
        let mut child = Command::new(&exe)
            .args(["writer_loop", "--exact", "--test-threads=1"])
            .env(WRITER_DIR, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(30 + rng % 120));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let n = temps(&out) + temps(&cache_dir);
        if n > 0 {
            mid_write += 1;
            seen += n;
        }
    }
    let left = temps(&out) + temps(&cache_dir);
    // The next start: its first save and its first cache write clean the folders.
    let img = noise(8, 9);
    let r = recipe(9);
    save_as(&out, "next-start", art(&img, &r), true).unwrap();
    DiskCache::new(&cache_dir)
        .put_sprite(
            &CacheKey::new(&r, &ModelIdentity("m".into())).unwrap(),
            &img,
        )
        .unwrap();
    assert_eq!(temps(&out) + temps(&cache_dir), 0, "temporary files left");
    let files = names(&out);
    let (mut pairs, mut lone_recipes) = (0, 0);
    for name in &files {
        let path = out.join(name);
        if let Some(stem) = name.strip_suffix(".png") {
            assert!(
                files.contains(&format!("{stem}.pixelgen.ron")),
                "torn pair: {name} without its recipe"
            );
            image::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            pairs += 1;
        } else if let Some(stem) = name.strip_suffix(".pixelgen.ron") {
            Recipe::from_ron(&fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if !files.contains(&format!("{stem}.png")) {
                lone_recipes += 1;
            }
        } else {
            panic!("unexpected file {name}");
        }
    }
    let mut entries = 0;
    for name in names(&cache_dir) {
        assert!(name.ends_with(".png"), "unexpected cache file {name}");
        image::open(cache_dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        entries += 1;
    }
    println!(
        "kill -9: {kills} kills in {:.1}s; after {mid_write} of them temporary files lay \
         there ({seen} seen, {left} at the end), all removed by the next start; {pairs} \
         complete pairs, {lone_recipes} recipes without PNG (regenerable), {entries} cache \
         entries, all readable",
        start.elapsed().as_secs_f64()
    );
    assert!(kills >= 25, "25 kills within the time bound");
    assert!(pairs > 1, "the child saved something");
    assert!(
        mid_write > 0,
        "no kill landed mid-write: the test proved nothing"
    );
    fs::remove_dir_all(&dir).unwrap();
}
