//! JASC / Paint Shop Pro palette files (`.pal`): read and write.
//!
//! Format: `JASC-PAL`, `0100`, the colour count, then exactly that many `R G B` lines
//! (decimal 0-255). Blank lines are ignored; either line ending is accepted.

use super::{MAX_COLORS, Palette, numbered_lines, parse_error, parse_rgb_prefix, quote, stem_name};
use crate::error::Result;

const MAGIC: &str = "JASC-PAL";
const VERSION: &str = "0100";

/// Parses `.pal` text; the palette is named by `source_name`'s stem.
pub(super) fn parse(text: &str, source_name: &str) -> Result<Palette> {
    let mut lines = numbered_lines(text).filter(|(_, line)| !line.is_empty());
    // The line after the last one read: where a missing header line should have been.
    let mut next_line = 1;
    let mut expect = |what: &str, ok: &dyn Fn(&str) -> bool| -> Result<(usize, String)> {
        match lines.next() {
            Some((n, line)) if ok(line) => {
                next_line = n + 1;
                Ok((n, line.to_string()))
            }
            Some((n, line)) => Err(parse_error(
                source_name,
                n,
                format!("expected {what}, found {}", quote(line)),
            )),
            None => Err(parse_error(
                source_name,
                next_line,
                format!("expected {what}, found the end of the file (is it truncated?)"),
            )),
        }
    };

    expect(&format!("the header `{MAGIC}`"), &|l| {
        l.eq_ignore_ascii_case(MAGIC)
    })?;
    expect(&format!("the version `{VERSION}`"), &|l| l == VERSION)?;
    let count_what = format!("the colour count (a whole number 1-{MAX_COLORS})");
    let (count_line, count_text) = expect(&count_what, &|l| {
        l.parse::<usize>()
            .is_ok_and(|c| (1..=MAX_COLORS).contains(&c))
    })?;
    let count: usize = count_text.parse().unwrap_or(0);

    let mut colors = Vec::with_capacity(count);
    for (n, line) in lines {
        let parsed = parse_rgb_prefix(line).filter(|(_, rest)| rest.is_empty());
        let Some((rgb, _)) = parsed else {
            return Err(parse_error(
                source_name,
                n,
                format!("expected `R G B` with values 0-255, found {}", quote(line)),
            ));
        };
        if colors.len() == count {
            return Err(parse_error(
                source_name,
                n,
                format!(
                    "more colours than the {count} declared on line {count_line}: \
                     fix the count or remove the extra lines"
                ),
            ));
        }
        colors.push(rgb);
    }
    if colors.len() != count {
        return Err(parse_error(
            source_name,
            count_line,
            format!(
                "the count says {count} colours but the file has {}: \
                 fix the count or add the missing lines (is the file truncated?)",
                colors.len()
            ),
        ));
    }
    Ok(Palette {
        name: stem_name(source_name),
        colors,
    })
}

/// Writes `.pal` text with CRLF line endings.
pub(super) fn write(palette: &Palette) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(24 + palette.colors.len() * 13);
    let _ = write!(out, "{MAGIC}\r\n{VERSION}\r\n{}\r\n", palette.colors.len());
    for &[r, g, b] in &palette.colors {
        let _ = write!(out, "{r} {g} {b}\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::tests::err_line;

    #[test]
    fn parses_crlf_and_lf() {
        let crlf = "JASC-PAL\r\n0100\r\n3\r\n0 0 0\r\n255 0 77\r\n1 2 3\r\n";
        let p = parse(crlf, "a/b.pal").unwrap();
        assert_eq!(p.name, "b");
        assert_eq!(p.colors, vec![[0, 0, 0], [255, 0, 77], [1, 2, 3]]);
        assert_eq!(parse(&crlf.replace("\r\n", "\n"), "a/b.pal").unwrap(), p);
    }

    #[test]
    fn count_must_match() {
        let (line, msg) = err_line(parse("JASC-PAL\n0100\n4\n0 0 0\n1 1 1\n2 2 2\n", "f"));
        assert_eq!(line, 3);
        assert!(msg.contains("says 4 colours but the file has 3"), "{msg}");
        let (line, msg) = err_line(parse("JASC-PAL\n0100\n2\n0 0 0\n1 1 1\n2 2 2\n", "f"));
        assert_eq!(line, 6);
        assert!(
            msg.contains("more colours than the 2 declared on line 3"),
            "{msg}"
        );
    }

    #[test]
    fn header_errors() {
        assert_eq!(err_line(parse("JASC-PAK\n0100\n1\n0 0 0\n", "f")).0, 1);
        assert_eq!(err_line(parse("JASC-PAL\n0200\n1\n0 0 0\n", "f")).0, 2);
        assert_eq!(err_line(parse("JASC-PAL\n0100\nten\n0 0 0\n", "f")).0, 3);
        assert_eq!(err_line(parse("JASC-PAL\n0100\n0\n", "f")).0, 3);
        assert_eq!(err_line(parse("JASC-PAL\n0100\n257\n", "f")).0, 3);
        let (line, msg) = err_line(parse("JASC-PAL\r\n", "f"));
        assert_eq!(line, 2);
        assert!(
            msg.contains("expected the version `0100`, found the end"),
            "{msg}"
        );
        assert_eq!(err_line(parse("JASC-PAL\n0100", "f")).0, 3);
        assert_eq!(err_line(parse("", "f")).0, 1);
    }

    #[test]
    fn bad_colour_lines() {
        let (line, msg) = err_line(parse("JASC-PAL\n0100\n2\n0 0 0\n12 300 4\n", "f"));
        assert_eq!(line, 5);
        assert_eq!(msg, "expected `R G B` with values 0-255, found `12 300 4`");
        assert_eq!(err_line(parse("JASC-PAL\n0100\n1\n1 2 3 4\n", "f")).0, 4);
        assert_eq!(err_line(parse("JASC-PAL\n0100\n1\n1 2\n", "f")).0, 4);
    }

    #[test]
    fn write_then_parse_round_trips() {
        let p = Palette {
            name: "w".into(),
            colors: vec![[10, 20, 30], [255, 255, 255]],
        };
        let text = write(&p);
        assert_eq!(text, "JASC-PAL\r\n0100\r\n2\r\n10 20 30\r\n255 255 255\r\n");
        assert_eq!(parse(&text, "w.pal").unwrap(), p);
    }
}
