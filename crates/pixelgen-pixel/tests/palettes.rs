//! Palettes end to end: built-ins, real-world-shaped files, round trips through every format
//! on disk, PNG swatches, and corrupt input that must fail cleanly (never panic).

use std::path::{Path, PathBuf};

use image::{Rgba, RgbaImage};
use pixelgen_pixel::PixelError;
use pixelgen_pixel::palette::{MAX_COLORS, Palette, PaletteFormat};

const FORMATS: [PaletteFormat; 4] = [
    PaletteFormat::Gpl,
    PaletteFormat::Hex,
    PaletteFormat::Pal,
    PaletteFormat::Png,
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/palettes")
        .join(name)
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("palettes-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex, 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// The `(source_name, line, message)` of a `PaletteParse` error; panics on anything else.
fn parse_err(result: pixelgen_pixel::Result<Palette>) -> (String, usize, String) {
    match result {
        Err(PixelError::PaletteParse {
            source_name,
            line,
            message,
        }) => (source_name, line, message),
        other => panic!("expected PaletteParse, got {other:?}"),
    }
}

// ---------------------------------------------------------------- built-ins

#[test]
fn every_builtin_loads_with_expected_count_and_values() {
    // (name, colour count, spot checks by index) from the palettes' published lists.
    type Expected = (&'static str, usize, &'static [(usize, &'static str)]);
    let expected: &[Expected] = &[
        (
            "pico-8",
            16,
            &[(0, "000000"), (1, "1d2b53"), (8, "ff004d"), (15, "ffccaa")],
        ),
        (
            "nes",
            55,
            &[(0, "000000"), (1, "fcfcfc"), (8, "0000fc"), (54, "787878")],
        ),
        ("gameboy", 4, &[(0, "0f380f"), (1, "306230"), (3, "9bbc0f")]),
        (
            "endesga-32",
            32,
            &[
                (0, "be4a2f"),
                (19, "ffffff"),
                (26, "ff0044"),
                (31, "c28569"),
            ],
        ),
        (
            "sweetie-16",
            16,
            &[(0, "1a1c2c"), (4, "ffcd75"), (12, "f4f4f4"), (15, "333c57")],
        ),
        ("1bit", 2, &[(0, "000000"), (1, "ffffff")]),
        (
            "endesga-64",
            64,
            &[(0, "ff0040"), (8, "ffffff"), (63, "571c27")],
        ),
        (
            "aap-64",
            64,
            &[(0, "060608"), (22, "ffffff"), (63, "423934")],
        ),
        (
            "resurrect-64",
            64,
            &[(0, "2e222f"), (9, "ffffff"), (63, "fdcbb0")],
        ),
        (
            "pear36",
            36,
            &[(0, "5e315b"), (15, "ffffeb"), (35, "ffb5b5")],
        ),
    ];
    assert_eq!(
        Palette::builtin_names(),
        expected.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    for &(name, count, checks) in expected {
        let p = Palette::builtin(name).unwrap();
        assert_eq!(p.name, name);
        assert_eq!(p.len(), count, "{name}");
        for &(i, hex) in checks {
            assert_eq!(p.colors[i], rgb(hex), "{name} colour {i}");
        }
        let mut distinct = p.colors.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), count, "{name} has duplicate colours");
        assert_eq!(p.oklab().len(), count);
    }
}

#[test]
fn builtin_names_accept_aliases_and_report_unknown_names() {
    let pico = Palette::builtin("pico-8").unwrap();
    for alias in ["PICO-8", "pico8", "pico_8", "Pico 8"] {
        assert_eq!(Palette::builtin(alias).unwrap(), pico, "{alias}");
    }
    assert_eq!(Palette::builtin("DMG").unwrap().name, "gameboy");
    assert_eq!(Palette::builtin("edg32").unwrap().name, "endesga-32");
    match Palette::builtin("pico-9") {
        Err(e @ PixelError::UnknownPalette { .. }) => {
            let text = e.to_string();
            assert!(text.contains("`pico-9`"), "{text}");
            for name in Palette::builtin_names() {
                assert!(text.contains(name), "{text} lacks {name}");
            }
        }
        other => panic!("expected UnknownPalette, got {other:?}"),
    }
}

#[test]
fn darkest_and_lightest_builtin_colours() {
    let check = |name: &str, dark: &str, light: &str| {
        let p = Palette::builtin(name).unwrap();
        assert_eq!(p.darkest(), Some(rgb(dark)), "{name} darkest");
        assert_eq!(p.lightest(), Some(rgb(light)), "{name} lightest");
    };
    check("1bit", "000000", "ffffff");
    check("gameboy", "0f380f", "9bbc0f");
    check("pico-8", "000000", "fff1e8");
    check("sweetie-16", "1a1c2c", "f4f4f4");
    check("endesga-32", "181425", "ffffff");
}

// ---------------------------------------------------------------- real-world files

#[test]
fn gimp_file_with_comments_and_columns() {
    let p = Palette::load(fixture("gimp-with-comments.gpl")).unwrap();
    assert_eq!(p.name, "Sweetie 16 (GIMP)");
    assert_eq!(p.colors, Palette::builtin("sweetie-16").unwrap().colors);
}

#[test]
fn hex_file_with_crlf_and_mixed_hash() {
    let path = fixture("lospec-crlf.hex");
    let raw = std::fs::read_to_string(&path).unwrap();
    // Guard the fixture itself against line-ending conversion by git.
    assert!(raw.contains("\r\n"), "fixture lost its CRLF line endings");
    assert!(raw.lines().any(|l| l.starts_with('#')));
    assert!(raw.lines().any(|l| !l.is_empty() && !l.starts_with('#')));
    let p = Palette::load(&path).unwrap();
    assert_eq!(p.name, "lospec-crlf");
    assert_eq!(p.colors, Palette::builtin("pico8").unwrap().colors);
}

#[test]
fn jasc_file() {
    let path = fixture("jasc-gameboy.pal");
    assert!(std::fs::read_to_string(&path).unwrap().contains("\r\n"));
    let p = Palette::load(&path).unwrap();
    assert_eq!(p.name, "jasc-gameboy");
    assert_eq!(p.colors, Palette::builtin("gameboy").unwrap().colors);
}

#[test]
fn unknown_extension_is_sniffed_from_content() {
    let dir = scratch("sniff");
    let cases = [
        (
            "a.txt",
            std::fs::read(fixture("gimp-with-comments.gpl")).unwrap(),
        ),
        ("b", std::fs::read(fixture("jasc-gameboy.pal")).unwrap()),
        ("c.colors", b"ff004d\n00e436\n".to_vec()),
        (
            "d.img",
            Palette::builtin("nes")
                .unwrap()
                .to_bytes(PaletteFormat::Png)
                .unwrap(),
        ),
    ];
    let lens = [16, 4, 2, 55];
    for ((name, bytes), len) in cases.into_iter().zip(lens) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(Palette::load(&path).unwrap().len(), len, "{name}");
    }
}

// ---------------------------------------------------------------- round trips

#[test]
fn every_builtin_round_trips_through_every_format_on_disk() {
    let dir = scratch("round-trip");
    for name in Palette::builtin_names() {
        let p = Palette::builtin(name).unwrap();
        for format in FORMATS {
            let path = dir.join(format!("{name}-copy.{}", format.extension()));
            p.save(&path).unwrap();
            let back = Palette::load(&path).unwrap();
            assert_eq!(back.colors, p.colors, "{name} via {format:?}");
            // Only GIMP files carry a name; the others are named by their file.
            let expected_name = match format {
                PaletteFormat::Gpl => name.to_string(),
                _ => format!("{name}-copy"),
            };
            assert_eq!(back.name, expected_name, "{name} via {format:?}");
            // In memory too.
            let bytes = p.to_bytes(format).unwrap();
            let mem = Palette::from_bytes(&bytes, format, "<memory>").unwrap();
            assert_eq!(mem.colors, p.colors);
        }
    }
}

#[test]
fn text_writers_round_trip_a_full_256_colour_palette() {
    let colors: Vec<[u8; 3]> = (0..=255u8)
        .map(|i| [i, 255 - i, i.wrapping_mul(37)])
        .collect();
    let p = Palette::new("All 256", colors).unwrap();
    assert_eq!(p.len(), MAX_COLORS);
    assert_eq!(Palette::parse_gpl(&p.to_gpl(), "x").unwrap(), p);
    assert_eq!(Palette::parse_hex(&p.to_hex(), "All 256.hex").unwrap(), p);
    assert_eq!(Palette::parse_pal(&p.to_pal(), "All 256.pal").unwrap(), p);
    assert_eq!(Palette::from_swatch(&p.to_swatch(), "All 256").unwrap(), p);
}

#[test]
fn resolve_takes_builtin_names_then_paths() {
    assert_eq!(Palette::resolve("Sweetie-16").unwrap().name, "sweetie-16");
    let path = fixture("jasc-gameboy.pal");
    assert_eq!(
        Palette::resolve(path.to_str().unwrap()).unwrap().name,
        "jasc-gameboy"
    );
    // A path is always a path, even when its stem is a built-in name.
    let dir = scratch("resolve");
    let custom = Palette::new("nes", vec![[1, 2, 3]]).unwrap();
    let nes_file = dir.join("nes.hex");
    custom.save(&nes_file).unwrap();
    assert_eq!(
        Palette::resolve(nes_file.to_str().unwrap()).unwrap().colors,
        custom.colors
    );
    assert!(matches!(
        Palette::resolve("no-such-palette"),
        Err(PixelError::UnknownPalette { .. })
    ));
    match Palette::resolve("no/such/dir/palette.gpl") {
        Err(PixelError::Io { path, .. }) => {
            assert_eq!(path, Path::new("no/such/dir/palette.gpl"))
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

// ---------------------------------------------------------------- PNG swatches

#[test]
fn png_swatches_in_lospec_layouts() {
    let dir = scratch("swatch");
    let p = Palette::builtin("endesga-32").unwrap();

    // Lospec "1x": one row.
    let strip = p.to_swatch();
    assert_eq!(strip.dimensions(), (32, 1));
    strip.save(dir.join("strip.png")).unwrap();
    assert_eq!(
        Palette::load(dir.join("strip.png")).unwrap().colors,
        p.colors
    );

    // One column (N x 1 the other way).
    let column = RgbaImage::from_fn(1, 32, |_, y| {
        let [r, g, b] = p.colors[y as usize];
        Rgba([r, g, b, 255])
    });
    column.save(dir.join("column.png")).unwrap();
    assert_eq!(
        Palette::load(dir.join("column.png")).unwrap().colors,
        p.colors
    );

    // Blocky "8x" swatch, 6 blocks a row, the last row part-empty (transparent).
    let grid = p.to_swatch_grid(6, 8).unwrap();
    assert_eq!(grid.dimensions(), (48, 48));
    grid.save(dir.join("grid.png")).unwrap();
    let back = Palette::load(dir.join("grid.png")).unwrap();
    assert_eq!(back.name, "grid");
    assert_eq!(back.colors, p.colors);

    // Hand-drawn swatch: transparent gutters between 3x2 blocks, a repeated colour.
    let blocks = [rgb("ff004d"), rgb("29adff"), rgb("ff004d"), rgb("00e436")];
    let mut drawn = RgbaImage::new(4 * 4, 3);
    for (i, &[r, g, b]) in blocks.iter().enumerate() {
        for y in 0..2 {
            for x in 0..3 {
                drawn.put_pixel(i as u32 * 4 + x, y, Rgba([r, g, b, 255]));
            }
        }
    }
    let from_drawn = Palette::from_swatch(&drawn, "drawn").unwrap();
    assert_eq!(from_drawn.name, "drawn");
    assert_eq!(
        from_drawn.colors,
        vec![rgb("ff004d"), rgb("29adff"), rgb("00e436")]
    );
}

#[test]
fn bad_swatches_fail_cleanly() {
    assert!(matches!(
        Palette::from_swatch(&RgbaImage::new(8, 8), "clear"),
        Err(PixelError::PaletteParse { line: 0, .. })
    ));
    assert!(matches!(
        Palette::from_swatch(&RgbaImage::new(0, 0), "none"),
        Err(PixelError::EmptyImage { .. })
    ));
    let gradient = RgbaImage::from_fn(64, 64, |x, y| Rgba([x as u8 * 4, y as u8 * 4, 0, 255]));
    let (source, _, message) = parse_err(Palette::from_swatch(&gradient, "gradient.png"));
    assert_eq!(source, "gradient.png");
    assert!(message.contains("more than 256"), "{message}");

    match Palette::load(fixture("corrupt.png")) {
        Err(PixelError::Image { path, .. }) => assert!(path.ends_with("corrupt.png")),
        other => panic!("expected Image error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- corrupt files

#[test]
fn corrupt_files_name_the_file_and_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "bad-header.gpl",
            1,
            "expected the header `GIMP Palette`, found `GIMP Palete`",
        ),
        (
            "bad-number.gpl",
            7,
            "expected `R G B [name]` with values 0-255, found `12 300   4\\ttoo much green`",
        ),
        (
            "wrong-count.pal",
            3,
            "the count says 5 colours but the file has 4",
        ),
        (
            "truncated.pal",
            6,
            "expected `R G B` with values 0-255, found `139 17`",
        ),
        ("truncated.hex", 3, "found `7e25`"),
        ("garbage.hex", 1, "binary data"),
        ("garbage.gpl", 1, "binary data"),
        ("garbage-after-header.pal", 5, "binary data"),
        ("empty.hex", 0, "no colours"),
        ("empty.gpl", 1, "found an empty file"),
        (
            "empty.pal",
            1,
            "expected the header `JASC-PAL`, found the end of the file",
        ),
    ];
    for &(file, line, needle) in cases {
        let path = fixture(file);
        let err = Palette::load(&path).unwrap_err();
        let shown = err.to_string();
        let (source, got_line, message) = parse_err(Err(err));
        assert_eq!(source, path.display().to_string(), "{file}");
        assert_eq!(got_line, line, "{file}: {message}");
        assert!(
            message.contains(needle),
            "{file}: `{message}` lacks `{needle}`"
        );
        assert!(
            shown.starts_with(&format!("{}:{line}: ", path.display())),
            "{shown}"
        );
    }
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let path = fixture("does-not-exist.gpl");
    match Palette::load(&path) {
        Err(e @ PixelError::Io { .. }) => assert!(e.to_string().contains("does-not-exist.gpl")),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn more_than_256_colours_is_an_error() {
    let text: String = (0..300).map(|i| format!("{:06x}\n", i * 4099)).collect();
    let (_, line, message) = parse_err(Palette::parse_hex(&text, "big.hex"));
    assert_eq!(line, 257);
    assert!(message.contains("at most 256"), "{message}");
    let pal = format!("JASC-PAL\n0100\n300\n{}", "1 2 3\n".repeat(300));
    assert_eq!(parse_err(Palette::parse_pal(&pal, "big.pal")).1, 3);
}

#[test]
fn saving_needs_a_known_extension_and_a_writable_place() {
    let p = Palette::builtin("1bit").unwrap();
    let dir = scratch("save");
    assert!(matches!(
        p.save(dir.join("palette.txt")),
        Err(PixelError::InvalidOption { .. })
    ));
    assert!(matches!(
        p.save(dir.join("missing-dir/palette.gpl")),
        Err(PixelError::Write { .. })
    ));
}

/// xorshift64*: deterministic pseudo-random bytes for the no-panic sweep.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_and_truncated_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Alphabet biased towards bytes that matter to the parsers.
    let alphabet =
        b"0123456789abcdefABCDEF# \t\r\n-+GIMP Palette Name: Columns: JASC-PAL0100\x00\xff\xc3\xa9";
    let mut outcomes = [0usize; 2];
    for round in 0..3000 {
        let len = (rng.next() % 200) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                if round % 2 == 0 {
                    alphabet[(r % alphabet.len() as u64) as usize]
                } else {
                    r as u8
                }
            })
            .collect();
        for format in FORMATS {
            let result = Palette::from_bytes(&bytes, format, "fuzz");
            match (&result, format) {
                (Ok(p), _) => {
                    assert!(!p.is_empty() && p.len() <= MAX_COLORS);
                    outcomes[0] += 1;
                }
                (Err(PixelError::PaletteParse { .. }), _) => outcomes[1] += 1,
                (Err(PixelError::Image { .. }), PaletteFormat::Png) => outcomes[1] += 1,
                (Err(e), _) => panic!("unexpected error kind for {format:?}: {e:?}"),
            }
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");

    // Every prefix of every valid file, and single-byte corruptions of it.
    let p = Palette::builtin("sweetie-16").unwrap();
    for format in FORMATS {
        let full = p.to_bytes(format).unwrap();
        for cut in 0..full.len() {
            let _ = Palette::from_bytes(&full[..cut], format, "cut");
        }
        for _ in 0..300 {
            let mut bytes = full.clone();
            let at = (rng.next() % bytes.len() as u64) as usize;
            bytes[at] = rng.next() as u8;
            let _ = Palette::from_bytes(&bytes, format, "flip");
        }
    }
    // A JASC file cut anywhere before its last colour line is an error.
    let pal = p.to_pal();
    let last_line_start = pal.trim_end().rfind('\n').unwrap() + 1;
    for cut in 0..last_line_start {
        assert!(
            Palette::parse_pal(&pal[..cut], "cut.pal").is_err(),
            "cut at {cut} parsed"
        );
    }
}
