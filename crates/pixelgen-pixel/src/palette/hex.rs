//! Lospec hex lists (`.hex`): one `RRGGBB` colour per line, `#` optional; read and write.

use super::{Palette, numbered_lines, parse_error, push_color, quote, stem_name};
use crate::error::Result;

/// Parses `.hex` text; blank lines are skipped and the palette is named by `source_name`'s stem.
pub(super) fn parse(text: &str, source_name: &str) -> Result<Palette> {
    let mut colors = Vec::new();
    for (n, line) in numbered_lines(text) {
        if line.is_empty() {
            continue;
        }
        let digits = line.strip_prefix('#').unwrap_or(line);
        let Some(rgb) = parse_rrggbb(digits) else {
            return Err(parse_error(
                source_name,
                n,
                format!(
                    "expected a colour `RRGGBB` (6 hex digits, `#` optional), found {}",
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
            "no colours: expected one `RRGGBB` colour per line",
        ));
    }
    Ok(Palette {
        name: stem_name(source_name),
        colors,
    })
}

/// Six hex digits to a colour.
fn parse_rrggbb(digits: &str) -> Option<[u8; 3]> {
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// Writes `.hex` text: lowercase `rrggbb`, one per line.
pub(super) fn write(palette: &Palette) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(palette.colors.len() * 7);
    for &[r, g, b] in &palette.colors {
        let _ = writeln!(out, "{r:02x}{g:02x}{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::tests::err_line;

    #[test]
    fn parses_with_and_without_hash_and_crlf() {
        let p = parse(
            "\u{feff}FF004D\r\n#1a1c2c\r\n\r\n  00e436  \r\n",
            "dir/x.hex",
        )
        .unwrap();
        assert_eq!(p.name, "x");
        assert_eq!(p.colors, vec![[255, 0, 77], [26, 28, 44], [0, 228, 54]]);
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        for (text, line) in [
            ("ff004d\nff004\n", 2),
            ("ff004d\n\nff004dff\n", 3),
            ("gg0000\n", 1),
            ("ff 00 4d\n", 1),
            ("##ff004d\n", 1),
            ("ff004d\n+f004d\n", 2),
        ] {
            let (got, msg) = err_line(parse(text, "f"));
            assert_eq!(got, line, "{text:?}");
            assert!(msg.starts_with("expected a colour `RRGGBB`"), "{msg}");
        }
        let (line, msg) = err_line(parse(" \n\r\n", "f"));
        assert_eq!(line, 0);
        assert!(msg.starts_with("no colours"), "{msg}");
    }

    #[test]
    fn multibyte_text_does_not_panic() {
        // Six bytes but not six ASCII characters.
        assert_eq!(err_line(parse("ééé\n", "f")).0, 1);
        assert_eq!(err_line(parse("ab\u{20ac}c\n", "f")).0, 1);
    }

    #[test]
    fn write_then_parse_round_trips() {
        let p = Palette {
            name: "p".into(),
            colors: vec![[0, 0, 0], [255, 0, 77], [171, 205, 239]],
        };
        let text = write(&p);
        assert_eq!(text, "000000\nff004d\nabcdef\n");
        assert_eq!(parse(&text, "p.hex").unwrap(), p);
    }
}
