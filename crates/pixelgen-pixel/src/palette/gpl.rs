//! GIMP palette files (`.gpl`): read and write.
//!
//! Format: a `GIMP Palette` header line, then optional `Name: ...` and `Columns: N` lines,
//! `#` comments and blank lines anywhere, and one `R G B [colour name]` line per colour
//! (decimal 0-255, separated by spaces or tabs).

use super::{Palette, numbered_lines, parse_error, parse_rgb_prefix, push_color, quote, stem_name};
use crate::error::Result;

const HEADER: &str = "GIMP Palette";

/// Parses `.gpl` text; the palette is named by `Name:` or else by `source_name`'s stem.
pub(super) fn parse(text: &str, source_name: &str) -> Result<Palette> {
    let mut lines = numbered_lines(text);
    match lines.next() {
        Some((_, line)) if line.eq_ignore_ascii_case(HEADER) => {}
        Some((n, line)) => {
            return Err(parse_error(
                source_name,
                n,
                format!("expected the header `{HEADER}`, found {}", quote(line)),
            ));
        }
        None => {
            return Err(parse_error(
                source_name,
                1,
                format!("expected the header `{HEADER}`, found an empty file"),
            ));
        }
    }

    let mut name: Option<String> = None;
    let mut colors = Vec::new();
    for (n, line) in lines {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Header keys come before the first colour (GIMP writes them there).
        if colors.is_empty() {
            if let Some(value) = strip_key(line, "Name:") {
                name = Some(value.to_string());
                continue;
            }
            if let Some(value) = strip_key(line, "Columns:") {
                match value.parse::<u16>() {
                    Ok(c) if c <= 256 => continue,
                    _ => {
                        return Err(parse_error(
                            source_name,
                            n,
                            format!(
                                "expected `Columns: N` with N a whole number 0-256, found {}",
                                quote(line)
                            ),
                        ));
                    }
                }
            }
        }
        let Some((rgb, _colour_name)) = parse_rgb_prefix(line) else {
            return Err(parse_error(
                source_name,
                n,
                format!(
                    "expected `R G B [name]` with values 0-255, found {}",
                    quote(line)
                ),
            ));
        };
        push_color(&mut colors, rgb, source_name, n)?;
    }

    if colors.is_empty() {
        return Err(parse_error(
            source_name,
            0,
            format!("no colours: expected `R G B [name]` lines after the `{HEADER}` header"),
        ));
    }
    let name = name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| stem_name(source_name));
    Ok(Palette { name, colors })
}

/// The trimmed value after `key` when `line` starts with it (ASCII case-insensitive).
fn strip_key<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let head = line.get(..key.len())?;
    head.eq_ignore_ascii_case(key)
        .then(|| line.get(key.len()..).unwrap_or("").trim())
}

/// Writes `.gpl` text: header, `Name:`, `Columns:`, then `R G B<TAB>#rrggbb` lines.
pub(super) fn write(palette: &Palette) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 + palette.colors.len() * 20);
    out.push_str(HEADER);
    out.push('\n');
    let name = one_line(&palette.name);
    if !name.is_empty() {
        let _ = writeln!(out, "Name: {name}");
    }
    let _ = writeln!(out, "Columns: {}", palette.colors.len().clamp(1, 16));
    out.push_str("#\n");
    for &[r, g, b] in &palette.colors {
        let _ = writeln!(out, "{r:3} {g:3} {b:3}\t#{r:02x}{g:02x}{b:02x}");
    }
    out
}

/// The name with control characters (line breaks) turned into spaces, trimmed.
fn one_line(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::tests::err_line;

    #[test]
    fn parses_header_keys_comments_and_names() {
        let text = "GIMP Palette\r\nName: Test Pal\r\nColumns: 4\r\n# comment\r\n\r\n  0   0   0\tBlack\r\n255 255 255 Snow White\r\n#\r\n 12  34  56\r\n";
        let p = parse(text, "x.gpl").unwrap();
        assert_eq!(p.name, "Test Pal");
        assert_eq!(p.colors, vec![[0, 0, 0], [255, 255, 255], [12, 34, 56]]);
    }

    #[test]
    fn name_defaults_to_file_stem() {
        let p = parse("GIMP Palette\n1 2 3\n", "dir/cool.gpl").unwrap();
        assert_eq!(p.name, "cool");
        let p = parse("GIMP Palette\nName:\n1 2 3\n", "dir/cool.gpl").unwrap();
        assert_eq!(p.name, "cool");
    }

    #[test]
    fn errors_point_at_the_line() {
        let (line, msg) = err_line(parse("GIMP Palette\nName: a\n1 2 3\n12 300 4 big\n", "f"));
        assert_eq!(line, 4);
        assert_eq!(
            msg,
            "expected `R G B [name]` with values 0-255, found `12 300 4 big`"
        );
        let (line, msg) = err_line(parse("GIMP palette file\n1 2 3\n", "f"));
        assert_eq!(line, 1);
        assert!(msg.contains("expected the header `GIMP Palette`"), "{msg}");
        assert_eq!(err_line(parse("", "f")).0, 1);
        assert_eq!(err_line(parse("GIMP Palette\nColumns: many\n", "f")).0, 2);
        let (line, msg) = err_line(parse("GIMP Palette\nName: x\n# only comments\n", "f"));
        assert_eq!(line, 0);
        assert!(msg.starts_with("no colours"), "{msg}");
        // A header key after the colours is not a colour.
        assert_eq!(
            err_line(parse("GIMP Palette\n1 2 3\nName: late\n", "f")).0,
            3
        );
    }

    #[test]
    fn more_than_256_colours_fails_on_the_257th() {
        let mut text = String::from("GIMP Palette\n");
        for i in 0..257 {
            text.push_str(&format!("{} 0 0\n", i % 256));
        }
        let (line, msg) = err_line(parse(&text, "f"));
        assert_eq!(line, 258);
        assert!(msg.contains("at most 256"), "{msg}");
    }

    #[test]
    fn write_then_parse_round_trips() {
        let p = Palette {
            name: "Round\nTrip".into(),
            colors: vec![[0, 0, 0], [255, 128, 1], [7, 8, 9]],
        };
        let text = write(&p);
        assert!(text.starts_with("GIMP Palette\nName: Round Trip\nColumns: 3\n"));
        let back = parse(&text, "other.gpl").unwrap();
        assert_eq!(back.name, "Round Trip");
        assert_eq!(back.colors, p.colors);
    }
}
