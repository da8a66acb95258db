//! The built-in palettes: Lospec `.hex` data files embedded in the crate, parsed on demand
//! by the same parser as users' files. Sources are listed in `palettes/README.md`.

use super::Palette;
use crate::error::{PixelError, Result};

/// One built-in palette: canonical name, extra lookup keys, and its `.hex` text.
struct Builtin {
    name: &'static str,
    /// Other accepted names, already normalised (see [`normalise`]).
    aliases: &'static [&'static str],
    hex: &'static str,
}

/// Canonical names, in the same order as [`BUILTINS`] (a unit test keeps them in step).
pub(super) const NAMES: &[&str] = &[
    "pico-8",
    "nes",
    "gameboy",
    "endesga-32",
    "sweetie-16",
    "1bit",
    "endesga-64",
    "aap-64",
    "resurrect-64",
    "pear36",
];

const BUILTINS: &[Builtin] = &[
    // PICO-8 (Lexaloffle), 16 colours in PICO-8's own index order.
    Builtin {
        name: "pico-8",
        aliases: &[],
        hex: include_str!("../../palettes/pico-8.hex"),
    },
    // Lospec's "Nintendo Entertainment System" palette: the 55 distinct colours of the
    // common 64-entry NES (2C02) RGB palette, in Lospec's order.
    Builtin {
        name: "nes",
        aliases: &["famicom", "nintendoentertainmentsystem"],
        hex: include_str!("../../palettes/nes.hex"),
    },
    // The classic Game Boy (DMG) screen greens, darkest first.
    Builtin {
        name: "gameboy",
        aliases: &["dmg", "gb", "gbdmg", "gameboydmg"],
        hex: include_str!("../../palettes/gameboy.hex"),
    },
    // ENDESGA 32 by ENDESGA.
    Builtin {
        name: "endesga-32",
        aliases: &["edg32"],
        hex: include_str!("../../palettes/endesga-32.hex"),
    },
    // Sweetie 16 by GrafxKid (TIC-80's default palette).
    Builtin {
        name: "sweetie-16",
        aliases: &["tic80"],
        hex: include_str!("../../palettes/sweetie-16.hex"),
    },
    // Black and white.
    Builtin {
        name: "1bit",
        aliases: &["onebit", "bw", "blackandwhite", "monochrome"],
        hex: include_str!("../../palettes/1bit.hex"),
    },
    // ENDESGA 64 by ENDESGA.
    Builtin {
        name: "endesga-64",
        aliases: &["edg64"],
        hex: include_str!("../../palettes/endesga-64.hex"),
    },
    // AAP-64 by Adigun A. Polack.
    Builtin {
        name: "aap-64",
        aliases: &[],
        hex: include_str!("../../palettes/aap-64.hex"),
    },
    // Resurrect 64 by Kerrie Lake.
    Builtin {
        name: "resurrect-64",
        aliases: &[],
        hex: include_str!("../../palettes/resurrect-64.hex"),
    },
    // Pear36 by PineappleOnPizza.
    Builtin {
        name: "pear36",
        aliases: &[],
        hex: include_str!("../../palettes/pear36.hex"),
    },
];

/// Lowercase ASCII letters and digits only: `PICO-8`, `pico_8` and `pico 8` become `pico8`.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The built-in palette called `name`, if any (parsed from its embedded `.hex` text).
pub(super) fn lookup(name: &str) -> Option<Result<Palette>> {
    let key = normalise(name);
    if key.is_empty() {
        return None;
    }
    let builtin = BUILTINS
        .iter()
        .find(|b| normalise(b.name) == key || b.aliases.contains(&key.as_str()))?;
    Some(Palette::parse_hex(
        builtin.hex,
        &format!("{}.hex", builtin.name),
    ))
}

/// The built-in palette called `name`, or [`PixelError::UnknownPalette`].
pub(super) fn find(name: &str) -> Result<Palette> {
    lookup(name).unwrap_or_else(|| Err(unknown(name)))
}

/// The error for a name that is no built-in palette.
pub(super) fn unknown(name: &str) -> PixelError {
    PixelError::UnknownPalette {
        name: name.to_string(),
        known: NAMES.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_table() {
        let table: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        assert_eq!(table, NAMES);
    }

    #[test]
    fn aliases_are_normalised_and_unique() {
        let mut keys: Vec<String> = Vec::new();
        for b in BUILTINS {
            keys.push(normalise(b.name));
            for alias in b.aliases {
                assert_eq!(
                    normalise(alias),
                    *alias,
                    "alias `{alias}` is not normalised"
                );
                keys.push(alias.to_string());
            }
        }
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "two built-ins share a lookup key");
    }

    #[test]
    fn every_builtin_parses_with_its_canonical_name() {
        for name in NAMES {
            let p = find(name).unwrap();
            assert_eq!(p.name, *name);
            assert!(!p.is_empty());
        }
    }

    #[test]
    fn lookup_ignores_case_and_separators() {
        for spelling in ["pico-8", "PICO-8", "pico8", "pico_8", "Pico 8", " pico-8 "] {
            assert_eq!(find(spelling).unwrap().name, "pico-8", "{spelling}");
        }
        assert_eq!(find("DMG").unwrap().name, "gameboy");
        // The spelling `pixelize --help` lists.
        assert_eq!(find("gb-dmg").unwrap().name, "gameboy");
        assert_eq!(find("Endesga 32").unwrap().name, "endesga-32");
        assert_eq!(find("1-bit").unwrap().name, "1bit");
    }

    #[test]
    fn unknown_name_lists_builtins() {
        match find("pico-9") {
            Err(PixelError::UnknownPalette { name, known }) => {
                assert_eq!(name, "pico-9");
                assert!(known.starts_with("pico-8, nes, gameboy"));
                assert_eq!(known.split(", ").count(), NAMES.len());
            }
            other => panic!("expected UnknownPalette, got {other:?}"),
        }
        assert!(matches!(find(""), Err(PixelError::UnknownPalette { .. })));
        assert!(matches!(find("--"), Err(PixelError::UnknownPalette { .. })));
    }
}
