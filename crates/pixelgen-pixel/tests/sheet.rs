//! Sprite-sheet packing and Aseprite JSON: pixels land where the layout says, JSON matches
//! Aseprite's shape and round-trips, bad input gives clear errors.

use image::{Rgba, RgbaImage};
use pixelgen_pixel::PixelError;
use pixelgen_pixel::sheet::{
    Anchor, Direction, Frame, FrameRect, FrameTag, JsonForm, MAX_SHEET_SIDE, SheetLayout,
    SheetOptions, pack,
};
use serde_json::{Value, json};

const CLEAR: Rgba<u8> = Rgba([0, 0, 0, 0]);

/// A frame whose every pixel is unique to (frame, x, y) and opaque.
fn pattern(i: u32, w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        Rgba([
            (i * 37 + 11) as u8,
            (x * 13 + 1) as u8,
            (y * 29 + 3) as u8,
            255,
        ])
    })
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sheet/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sheet_message(r: Result<impl std::fmt::Debug, PixelError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// Checks every frame's pixels sit at its pixel rect and returns a mask of covered pixels.
fn assert_frames_placed(image: &RgbaImage, layout: &SheetLayout, frames: &[Frame]) -> Vec<bool> {
    let mut covered = vec![false; (image.width() * image.height()) as usize];
    for (i, (f, sf)) in frames.iter().zip(&layout.frames).enumerate() {
        let p = sf.pixel_rect();
        assert_eq!((p.w, p.h), f.image.dimensions(), "frame {i} size");
        for y in 0..p.h {
            for x in 0..p.w {
                assert_eq!(
                    image.get_pixel(p.x + x, p.y + y),
                    f.image.get_pixel(x, y),
                    "frame {i} pixel ({x},{y})"
                );
                covered[((p.y + y) * image.width() + p.x + x) as usize] = true;
            }
        }
    }
    covered
}

#[test]
fn frames_land_in_their_cells_and_gaps_stay_clear() {
    let frames: Vec<Frame> = (0..7)
        .map(|i| Frame::new(pattern(i, 5, 4)).with_duration(50 + i * 10))
        .collect();
    let opts = SheetOptions {
        columns: Some(3),
        padding: 2,
        margin: 3,
        ..SheetOptions::default()
    };
    let sheet = pack(&frames, &opts).unwrap();
    let l = &sheet.layout;
    assert_eq!(
        (l.tile_width, l.tile_height, l.columns, l.rows),
        (5, 4, 3, 3)
    );
    // margin*2 + cols*tile + (cols-1)*padding
    assert_eq!(
        sheet.image.dimensions(),
        (3 * 2 + 3 * 5 + 2 * 2, 3 * 2 + 3 * 4 + 2 * 2)
    );
    assert_eq!(sheet.image.dimensions(), l.sheet_size());
    assert_eq!(l.durations(), vec![50, 60, 70, 80, 90, 100, 110]);
    for (i, f) in l.frames.iter().enumerate() {
        let (col, row) = (i as u32 % 3, i as u32 / 3);
        assert_eq!(
            f.rect,
            FrameRect::new(3 + col * 7, 3 + row * 6, 5, 4),
            "frame {i}"
        );
        assert_eq!(f.source, FrameRect::new(0, 0, 5, 4));
        assert_eq!(f.name, format!("frame {i}"));
        assert_eq!(l.grid_index(i), Some(i as u32));
    }
    let covered = assert_frames_placed(&sheet.image, l, &frames);
    for (idx, px) in sheet.image.pixels().enumerate() {
        if !covered[idx] {
            assert_eq!(*px, CLEAR, "gap pixel {idx} must be transparent");
        }
    }
    assert_eq!(covered.iter().filter(|&&c| c).count(), 7 * 5 * 4);
    // Deterministic.
    assert_eq!(pack(&frames, &opts).unwrap(), sheet);
}

#[test]
fn default_columns_are_near_square() {
    let frames: Vec<Frame> = (0..5).map(|i| Frame::new(pattern(i, 3, 3))).collect();
    let sheet = pack(&frames, &SheetOptions::default()).unwrap();
    assert_eq!((sheet.layout.columns, sheet.layout.rows), (3, 2));
    assert_eq!(sheet.image.dimensions(), (9, 6));
    // The empty sixth cell stays transparent.
    for y in 3..6 {
        for x in 6..9 {
            assert_eq!(*sheet.image.get_pixel(x, y), CLEAR);
        }
    }
}

#[test]
fn extrusion_copies_edges_into_the_padding() {
    let frames: Vec<Frame> = (0..4).map(|i| Frame::new(pattern(i, 4, 3))).collect();
    let opts = SheetOptions {
        columns: Some(2),
        padding: 4,
        margin: 2,
        extrude: true,
        ..SheetOptions::default()
    };
    let sheet = pack(&frames, &opts).unwrap();
    let img = &sheet.image;
    assert_eq!(img.dimensions(), (2 * 2 + 2 * 4 + 4, 2 * 2 + 2 * 3 + 4));
    let mut covered = assert_frames_placed(img, &sheet.layout, &frames);
    for (i, sf) in sheet.layout.frames.iter().enumerate() {
        let r = sf.rect;
        // The 1-px ring around the cell repeats the nearest edge pixel (corners included).
        for y in r.y - 1..=r.y + r.h {
            for x in r.x - 1..=r.x + r.w {
                let sx = x.clamp(r.x, r.x + r.w - 1) - r.x;
                let sy = y.clamp(r.y, r.y + r.h - 1) - r.y;
                assert_eq!(
                    img.get_pixel(x, y),
                    frames[i].image.get_pixel(sx, sy),
                    "frame {i} ring ({x},{y})"
                );
                covered[(y * img.width() + x) as usize] = true;
            }
        }
    }
    // Everything beyond the rings is transparent (padding 4 leaves 2 clear columns between).
    for (idx, px) in img.pixels().enumerate() {
        if !covered[idx] {
            assert_eq!(*px, CLEAR, "pixel {idx}");
        }
    }
    assert!(covered.iter().any(|c| !c), "some padding must stay clear");
    assert!(sheet.layout.extrude);

    // Without room for the copied edges: a clear option error.
    for (padding, margin) in [(1, 1), (2, 0)] {
        let bad = SheetOptions {
            padding,
            margin,
            extrude: true,
            ..SheetOptions::default()
        };
        let msg = sheet_message(pack(&frames, &bad));
        assert!(
            msg.contains("extrude") && msg.contains("padding >= 2"),
            "{msg}"
        );
    }
}

#[test]
fn mixed_sizes_are_anchored_in_the_largest_tile() {
    let frames = vec![
        Frame::new(pattern(0, 4, 4)),
        Frame::new(pattern(1, 8, 6)),
        Frame::new(pattern(2, 3, 1)),
    ];
    let cases = [
        (Anchor::Center, [(2, 1), (0, 0), (2, 2)]),
        (Anchor::BottomCenter, [(2, 2), (0, 0), (2, 5)]),
        (Anchor::TopLeft, [(0, 0), (0, 0), (0, 0)]),
    ];
    for (anchor, offsets) in cases {
        let opts = SheetOptions {
            columns: Some(3),
            padding: 1,
            anchor,
            ..SheetOptions::default()
        };
        let sheet = pack(&frames, &opts).unwrap();
        let l = &sheet.layout;
        assert_eq!((l.tile_width, l.tile_height), (8, 6));
        assert_eq!(sheet.image.dimensions(), (3 * 8 + 2, 6));
        for (i, (sf, (ox, oy))) in l.frames.iter().zip(offsets).enumerate() {
            let (w, h) = frames[i].image.dimensions();
            assert_eq!(
                sf.source,
                FrameRect::new(ox, oy, w, h),
                "{anchor:?} frame {i}"
            );
            assert_eq!(sf.trimmed(), i != 1);
        }
        let covered = assert_frames_placed(&sheet.image, l, &frames);
        for (idx, px) in sheet.image.pixels().enumerate() {
            if !covered[idx] {
                assert_eq!(*px, CLEAR);
            }
        }
        // JSON records the anchoring the way Aseprite records trimming.
        let v: Value = serde_json::from_str(&l.to_aseprite_json("s.png", JsonForm::Array)).unwrap();
        let f0 = &v["frames"][0];
        assert_eq!(f0["trimmed"], json!(true));
        assert_eq!(
            f0["spriteSourceSize"],
            json!({"x": offsets[0].0, "y": offsets[0].1, "w": 4, "h": 4})
        );
        assert_eq!(f0["sourceSize"], json!({"w": 8, "h": 6}));
        assert_eq!(
            f0["frame"],
            json!({"x": offsets[0].0, "y": offsets[0].1, "w": 4, "h": 4})
        );
        assert_eq!(SheetLayout::from_aseprite_json(&v.to_string()).unwrap(), *l);
    }

    let strict = SheetOptions {
        require_same_size: true,
        ..SheetOptions::default()
    };
    let msg = sheet_message(pack(&frames, &strict));
    assert!(
        msg.contains("frame 1 is 8x6") && msg.contains("same size"),
        "{msg}"
    );
}

fn tagged_sheet() -> pixelgen_pixel::sheet::Sheet {
    let frames: Vec<Frame> = (0..12)
        .map(|i| {
            let f = Frame::new(pattern(i, 6, 5)).with_duration(100 + i);
            if i == 0 { f.with_name("idle \"A\"") } else { f }
        })
        .collect();
    let mut repeat = FrameTag::new("hit", 9, 11, Direction::PingpongReverse);
    repeat.repeat = Some(3);
    let opts = SheetOptions {
        columns: Some(5),
        padding: 1,
        margin: 2,
        tags: vec![
            FrameTag::new("walk", 0, 7, Direction::Forward),
            FrameTag::new("jump", 8, 8, Direction::Pingpong),
            repeat,
        ],
        ..SheetOptions::default()
    };
    pack(&frames, &opts).unwrap()
}

#[test]
fn json_array_form_has_aseprites_fields_values_and_order() {
    let sheet = tagged_sheet();
    let text = sheet
        .layout
        .to_aseprite_json("out/dir/hero.png", JsonForm::Array);
    let v: Value = serde_json::from_str(&text).unwrap();
    let frames = v["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 12);
    assert_eq!(
        frames[6],
        json!({
            "filename": "frame 6",
            "frame": {"x": 2 + 7, "y": 2 + 6, "w": 6, "h": 5},
            "rotated": false,
            "trimmed": false,
            "spriteSourceSize": {"x": 0, "y": 0, "w": 6, "h": 5},
            "sourceSize": {"w": 6, "h": 5},
            "duration": 106
        })
    );
    assert_eq!(frames[0]["filename"], json!("idle \"A\""));
    let meta = &v["meta"];
    assert_eq!(
        meta["app"],
        json!("https://github.com/dgx-pixels/dgx-pixels")
    );
    assert_eq!(meta["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(meta["image"], json!("hero.png"));
    assert_eq!(meta["format"], json!("RGBA8888"));
    assert_eq!(
        meta["size"],
        json!({"w": 4 + 5 * 6 + 4, "h": 4 + 3 * 5 + 2})
    );
    assert_eq!(meta["scale"], json!("1"));
    assert_eq!(
        meta["frameTags"],
        json!([
            {"name": "walk", "from": 0, "to": 7, "direction": "forward"},
            {"name": "jump", "from": 8, "to": 8, "direction": "pingpong"},
            {"name": "hit", "from": 9, "to": 11, "direction": "pingpong_reverse", "repeat": "3"}
        ])
    );
    assert_eq!(meta["layers"], json!([]));
    assert_eq!(meta["slices"], json!([]));
    assert_eq!(
        meta["pixelgenGrid"],
        json!({
            "tileSize": {"w": 6, "h": 5},
            "columns": 5, "rows": 3, "padding": 1, "margin": 2, "extrude": false,
            "frameCount": 12,
            "durations": [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111]
        })
    );
    // Key order as Aseprite writes it (serde_json::Value sorts keys, so check the text).
    let first_frame_end = text.find("\"duration\"").unwrap();
    let keys = [
        "\"filename\"",
        "\"frame\"",
        "\"rotated\"",
        "\"trimmed\"",
        "\"spriteSourceSize\"",
        "\"sourceSize\"",
        "\"duration\"",
    ];
    let pos: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "frame keys {pos:?}");
    assert!(pos[6] == first_frame_end);
    let meta_keys = [
        "\"frames\"",
        "\"meta\"",
        "\"app\"",
        "\"version\"",
        "\"image\"",
        "\"format\"",
        "\"size\"",
        "\"scale\"",
        "\"frameTags\"",
        "\"layers\"",
        "\"slices\"",
    ];
    let pos: Vec<usize> = meta_keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "top/meta keys {pos:?}");

    assert_eq!(
        SheetLayout::from_aseprite_json(&text).unwrap(),
        sheet.layout
    );
}

#[test]
fn json_hash_form_is_keyed_by_filename_in_frame_order() {
    let sheet = tagged_sheet();
    let text = sheet.layout.to_aseprite_json("hero.png", JsonForm::Hash);
    let v: Value = serde_json::from_str(&text).unwrap();
    let frames = v["frames"].as_object().unwrap();
    assert_eq!(frames.len(), 12);
    assert_eq!(
        frames["frame 11"],
        json!({
            "frame": {"x": 2 + 7, "y": 2 + 2 * 6, "w": 6, "h": 5},
            "rotated": false,
            "trimmed": false,
            "spriteSourceSize": {"x": 0, "y": 0, "w": 6, "h": 5},
            "sourceSize": {"w": 6, "h": 5},
            "duration": 111
        })
    );
    assert!(frames.values().all(|f| f.get("filename").is_none()));
    assert!(frames.contains_key("idle \"A\""));
    // Entries are written in frame order, not sorted ("frame 10" after "frame 9").
    let p9 = text.find("\"frame 9\"").unwrap();
    let p10 = text.find("\"frame 10\"").unwrap();
    let p2 = text.find("\"frame 2\"").unwrap();
    assert!(p2 < p9 && p9 < p10);

    let back = SheetLayout::from_aseprite_json(&text).unwrap();
    assert_eq!(back, sheet.layout);
    assert_eq!(back.frames[10].name, "frame 10");
}

#[test]
fn handwritten_aseprite_hash_fixture_parses_to_its_grid() {
    let l = SheetLayout::from_aseprite_json(&fixture("hero_walk_hash.json")).unwrap();
    assert_eq!((l.tile_width, l.tile_height), (16, 16));
    assert_eq!((l.columns, l.rows, l.padding, l.margin), (4, 1, 2, 1));
    assert_eq!(l.durations(), vec![100, 100, 150, 100]);
    let names: Vec<&str> = l.frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hero 0.aseprite",
            "hero 1.aseprite",
            "hero 2.aseprite",
            "hero 3.aseprite"
        ]
    );
    assert_eq!(l.frames[2].rect, FrameRect::new(37, 1, 16, 16));
    assert_eq!(l.sheet_size(), (72, 18));
    let mut blink = FrameTag::new("blink", 1, 2, Direction::Pingpong);
    blink.repeat = Some(2);
    assert_eq!(
        l.tags,
        vec![FrameTag::new("walk", 0, 3, Direction::Forward), blink]
    );
    assert!((0..4).all(|i| l.grid_index(i) == Some(i as u32)));
    // Re-exporting and reading back keeps everything.
    let again = l.to_aseprite_json("hero.png", JsonForm::Hash);
    assert_eq!(SheetLayout::from_aseprite_json(&again).unwrap(), l);
}

#[test]
fn handwritten_aseprite_array_fixture_with_extrusion_parses() {
    let l = SheetLayout::from_aseprite_json(&fixture("slime_rows_array.json")).unwrap();
    assert_eq!((l.tile_width, l.tile_height), (8, 12));
    // Aseprite's extruded cells: 1 px in from the edge, 2 px apart.
    assert_eq!((l.columns, l.rows, l.padding, l.margin), (3, 2, 2, 1));
    assert_eq!(l.frame_count(), 5);
    assert_eq!(l.frames[4].rect, FrameRect::new(11, 15, 8, 12));
    assert_eq!(l.grid_index(4), Some(4));
    assert_eq!(l.durations(), vec![80, 80, 120, 80, 200]);
    assert_eq!(
        l.tags,
        vec![FrameTag::new("attack", 0, 4, Direction::Reverse)]
    );
    assert_eq!(l.sheet_size(), (30, 28));
}

#[test]
fn bad_frames_and_options_give_clear_errors() {
    let msg = sheet_message(pack(&[], &SheetOptions::default()));
    assert!(msg.contains("no frames"), "{msg}");

    let zero = [
        Frame::new(pattern(0, 2, 2)),
        Frame::new(RgbaImage::new(0, 3)),
    ];
    let msg = sheet_message(pack(&zero, &SheetOptions::default()));
    assert!(msg.contains("frame 1 is empty (0x3)"), "{msg}");

    let one = [Frame::new(pattern(0, 16, 16))];
    let msg = sheet_message(pack(
        &one,
        &SheetOptions {
            columns: Some(0),
            ..SheetOptions::default()
        },
    ));
    assert!(
        msg.contains("columns") && msg.contains("at least 1"),
        "{msg}"
    );

    let msg = sheet_message(pack(
        &one,
        &SheetOptions {
            columns: Some(u32::MAX),
            padding: u32::MAX,
            ..SheetOptions::default()
        },
    ));
    assert!(msg.contains(&MAX_SHEET_SIDE.to_string()), "{msg}");
    let msg = sheet_message(pack(
        &one,
        &SheetOptions {
            columns: Some(2000),
            ..SheetOptions::default()
        },
    ));
    assert!(
        msg.contains("32000x16") && msg.contains("fewer columns"),
        "{msg}"
    );
    // Generous but sane column counts are fine: empty cells stay transparent.
    let wide = pack(
        &one,
        &SheetOptions {
            columns: Some(4),
            ..SheetOptions::default()
        },
    )
    .unwrap();
    assert_eq!(wide.image.dimensions(), (64, 16));

    let msg = sheet_message(pack(
        &[Frame::new(pattern(0, 2, 2)).with_duration(0)],
        &SheetOptions::default(),
    ));
    assert!(msg.contains("duration 0"), "{msg}");

    let dup = [
        Frame::new(pattern(0, 2, 2)).with_name("a"),
        Frame::new(pattern(1, 2, 2)).with_name("a"),
    ];
    let msg = sheet_message(pack(&dup, &SheetOptions::default()));
    assert!(msg.contains("same name `a`"), "{msg}");

    let two = [Frame::new(pattern(0, 2, 2)), Frame::new(pattern(1, 2, 2))];
    for tag in [
        FrameTag::new("far", 1, 2, Direction::Forward),
        FrameTag::new("backwards", 1, 0, Direction::Forward),
    ] {
        let opts = SheetOptions {
            tags: vec![tag],
            ..SheetOptions::default()
        };
        let msg = sheet_message(pack(&two, &opts));
        assert!(msg.contains("from <= to < frame count"), "{msg}");
    }
}

#[test]
fn bad_json_gives_clear_errors() {
    let malformed = sheet_message(SheetLayout::from_aseprite_json("{ \"frames\": [ "));
    assert!(malformed.contains("not a valid Aseprite"), "{malformed}");
    let no_frames = sheet_message(SheetLayout::from_aseprite_json(r#"{"meta": {}}"#));
    assert!(no_frames.contains("missing field `frames`"), "{no_frames}");
    let empty = sheet_message(SheetLayout::from_aseprite_json(
        r#"{"frames": [], "meta": {}}"#,
    ));
    assert!(empty.contains("no frames"), "{empty}");
    let wrong_type = sheet_message(SheetLayout::from_aseprite_json(
        r#"{"frames": 3, "meta": {}}"#,
    ));
    assert!(
        wrong_type.contains("array (json-array) or an object"),
        "{wrong_type}"
    );
    assert!(SheetLayout::from_aseprite_json("").is_err());
    // `meta` is optional (readers only need the frames).
    let no_meta = r#"{"frames": {"a": {"frame": {"x": 0, "y": 0, "w": 2, "h": 3}, "rotated": false,
        "trimmed": false, "spriteSourceSize": {"x": 0, "y": 0, "w": 2, "h": 3},
        "sourceSize": {"w": 2, "h": 3}, "duration": 40}}}"#;
    let l = SheetLayout::from_aseprite_json(no_meta).unwrap();
    assert_eq!(
        (l.tile_width, l.tile_height, l.columns, l.rows),
        (2, 3, 1, 1)
    );
    assert_eq!(
        (l.frames[0].name.as_str(), l.frames[0].duration_ms),
        ("a", 40)
    );
    assert!(SheetLayout::from_aseprite_json("[]").is_err());

    let frame = |x: u32, y: u32, w: u32, extra: &str| {
        format!(
            r#"{{"frame": {{"x": {x}, "y": {y}, "w": {w}, "h": 8}}, "rotated": false, "trimmed": false,
               "spriteSourceSize": {{"x": 0, "y": 0, "w": {w}, "h": 8}}, "sourceSize": {{"w": {w}, "h": 8}},
               "duration": 100 {extra}}}"#
        )
    };
    let doc = |frames: &[String]| format!(r#"{{"frames": [{}], "meta": {{}}}}"#, frames.join(","));

    // A packed sheet (frames of different sizes) is not a grid.
    let packed = doc(&[frame(0, 0, 8, ""), frame(8, 0, 5, "")]);
    let msg = sheet_message(SheetLayout::from_aseprite_json(&packed));
    assert!(msg.contains("share one size"), "{msg}");
    // Same size but off a regular step.
    let uneven = doc(&[frame(0, 0, 8, ""), frame(8, 0, 8, ""), frame(19, 0, 8, "")]);
    let msg = sheet_message(SheetLayout::from_aseprite_json(&uneven));
    assert!(msg.contains("not a uniform grid"), "{msg}");
    // Rotated frames are refused.
    let rotated = doc(&[frame(0, 0, 8, "").replace("\"rotated\": false", "\"rotated\": true")]);
    let msg = sheet_message(SheetLayout::from_aseprite_json(&rotated));
    assert!(msg.contains("rotated"), "{msg}");
    // Frames outside meta.size.
    let outside = format!(
        r#"{{"frames": [{}], "meta": {{"size": {{"w": 4, "h": 8}}}}}}"#,
        frame(0, 0, 8, "")
    );
    let msg = sheet_message(SheetLayout::from_aseprite_json(&outside));
    assert!(msg.contains("outside the 4x8 sheet"), "{msg}");
    // A tag past the last frame.
    let bad_tag = format!(
        r#"{{"frames": [{}], "meta": {{"frameTags": [{{"name": "x", "from": 0, "to": 5, "direction": "forward"}}]}}}}"#,
        frame(0, 0, 8, "")
    );
    let msg = sheet_message(SheetLayout::from_aseprite_json(&bad_tag));
    assert!(msg.contains("tag `x`"), "{msg}");
    // Unknown direction.
    let bad_dir = bad_tag
        .replace("\"to\": 5", "\"to\": 0")
        .replace("forward", "sideways");
    let msg = sheet_message(SheetLayout::from_aseprite_json(&bad_dir));
    assert!(msg.contains("sideways"), "{msg}");
    // Negative numbers.
    let negative = doc(&[frame(0, 0, 8, "").replace(
        "\"x\": 0, \"y\": 0, \"w\": 8",
        "\"x\": -1, \"y\": 0, \"w\": 8",
    )]);
    assert!(SheetLayout::from_aseprite_json(&negative).is_err());
    // A grid block that disagrees with the frames.
    let mut text = tagged_sheet()
        .layout
        .to_aseprite_json("a.png", JsonForm::Array);
    text = text.replace("\"frameCount\": 12", "\"frameCount\": 11");
    let msg = sheet_message(SheetLayout::from_aseprite_json(&text));
    assert!(msg.contains("frameCount"), "{msg}");
    let text = tagged_sheet()
        .layout
        .to_aseprite_json("a.png", JsonForm::Array)
        .replace("\"padding\": 1", "\"padding\": 3");
    let msg = sheet_message(SheetLayout::from_aseprite_json(&text));
    assert!(msg.contains("is not a cell of the 5x3 grid"), "{msg}");
}

#[test]
fn save_writes_png_and_json_that_read_back() {
    let sheet = tagged_sheet();
    let dir = std::env::temp_dir().join(format!("pixelgen-sheet-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("hero.png");
    let json_path = dir.join("hero.json");
    sheet.save(&png, &json_path, JsonForm::Hash).unwrap();
    let back = image::open(&png).unwrap().to_rgba8();
    assert_eq!(back, sheet.image);
    let text = std::fs::read_to_string(&json_path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["meta"]["image"], json!("hero.png"));
    assert_eq!(
        SheetLayout::from_aseprite_json(&text).unwrap(),
        sheet.layout
    );
    let missing = dir.join("no/such/dir/x.png");
    assert!(sheet.save(&missing, &json_path, JsonForm::Hash).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn options_are_plain_serde_data() {
    let opts: SheetOptions = serde_json::from_str(
        r#"{"columns": 4, "extrude": true, "padding": 2, "margin": 1, "anchor": "bottom_center",
            "tags": [{"name": "walk", "from": 0, "to": 3, "direction": "pingpong"}]}"#,
    )
    .unwrap();
    assert_eq!(opts.columns, Some(4));
    assert_eq!(opts.anchor, Anchor::BottomCenter);
    assert_eq!(opts.tags[0].direction, Direction::Pingpong);
    assert!(!opts.require_same_size);
    let empty: SheetOptions = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, SheetOptions::default());
}

#[test]
fn packs_a_big_sheet_quickly() {
    let frames: Vec<Frame> = (0..64).map(|i| Frame::new(pattern(i, 64, 64))).collect();
    let opts = SheetOptions {
        padding: 2,
        margin: 1,
        extrude: true,
        ..SheetOptions::default()
    };
    let start = std::time::Instant::now();
    let sheet = pack(&frames, &opts).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(
        sheet.image.dimensions(),
        (2 + 8 * 64 + 7 * 2, 2 + 8 * 64 + 7 * 2)
    );
    assert_frames_placed(&sheet.image, &sheet.layout, &frames);
    eprintln!("packed 64 frames of 64x64 (528x528 sheet, extruded) in {elapsed:?}");
}
