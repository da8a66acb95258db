//! Tiled (mapeditor.org) tileset files: a `.tsx` with one wang set, so Tiled's terrain
//! brush paints with the generated tiles.

use std::fmt::Write as _;

use super::blob_bits::{E, N, NE, NW, S, SE, SW, W};
use super::{Terrain, TileCode, TilesetKind, wang_bits};

/// A Tiled 1.10 tileset over one atlas image, with a two-colour wang set.
///
/// Wang colour 1 is terrain A, 2 is terrain B. A Wang tileset becomes a `corner` wang set
/// (edges 0); a blob tileset a `mixed` one, a B-centred tile `c` getting its edges from its
/// edge bits and its corners from its reduced corner bits. The isolated blob (code 0) would
/// get the same wangid as the plain A tile (Tiled cannot tell a B cell without B neighbours
/// from an A cell), so it is left out of the wang set: Tiled's brush never places it, but
/// it stays in the image for manual use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiledTileset {
    /// Tileset name (also the wang set's name).
    pub name: String,
    /// The atlas image file, relative to the `.tsx`.
    pub image: String,
    /// Atlas width in pixels.
    pub image_width: u32,
    /// Atlas height in pixels.
    pub image_height: u32,
    /// Tile width in pixels.
    pub tile_width: u32,
    /// Tile height in pixels.
    pub tile_height: u32,
    /// Tiles per atlas row.
    pub columns: u32,
    /// Pixels between neighbouring tiles.
    pub spacing: u32,
    /// Pixels around the whole grid.
    pub margin: u32,
    /// Wang (corner set) or blob (mixed set).
    pub kind: TilesetKind,
    /// The code of each atlas index; a repeated code is a variation (Tiled picks among
    /// equal wangids at random). Codes of the other kind, and invalid ones, get no wangtile.
    pub tiles: Vec<TileCode>,
    /// Names of terrain A and B, e.g. `["grass", "water"]`.
    pub terrain_names: [String; 2],
    /// Display colours of terrain A and B in Tiled's terrain panel.
    pub terrain_colors: [[u8; 3]; 2],
}

impl TiledTileset {
    /// A tileset over an atlas packed in `kind`'s atlas order (one tile per code, no
    /// spacing or margin), `columns` tiles per row (at least 1 is used); terrains named `a`
    /// and `b` in green and blue until set.
    pub fn new(
        name: impl Into<String>,
        image: impl Into<String>,
        kind: TilesetKind,
        tile: (u32, u32),
        columns: u32,
    ) -> Self {
        let columns = columns.max(1);
        let rows = (kind.len() as u32).div_ceil(columns);
        Self {
            name: name.into(),
            image: image.into(),
            image_width: columns * tile.0,
            image_height: rows * tile.1,
            tile_width: tile.0,
            tile_height: tile.1,
            columns,
            spacing: 0,
            margin: 0,
            kind,
            tiles: kind.codes(),
            terrain_names: ["a".to_string(), "b".to_string()],
            terrain_colors: [[80, 170, 60], [50, 90, 200]],
        }
    }

    /// The Tiled wangid of `code` (`top, top-right, right, bottom-right, bottom,
    /// bottom-left, left, top-left`; 1 = A, 2 = B, 0 = unused), or `None` for a code this
    /// kind leaves out of the wang set (the isolated blob, other kinds, invalid codes).
    pub fn wangid(&self, code: TileCode) -> Option<[u8; 8]> {
        if code.kind() != self.kind || !code.is_valid() {
            return None;
        }
        let colour = |set: bool| if set { 2 } else { 1 };
        match code {
            TileCode::Wang(c) => {
                let k = |bit: u8| colour(c & bit != 0);
                use wang_bits as wb;
                Some([0, k(wb::NE), 0, k(wb::SE), 0, k(wb::SW), 0, k(wb::NW)])
            }
            TileCode::Blob(0) => None,
            TileCode::Blob(c) => {
                let k = |bit: u8| colour(c & bit != 0);
                Some([k(N), k(NE), k(E), k(SE), k(S), k(SW), k(W), k(NW)])
            }
            TileCode::PlainA => Some([1; 8]),
        }
    }

    /// The first atlas index showing only `terrain`, as Tiled's wang colour `tile` (-1: none).
    fn representative(&self, terrain: Terrain) -> i64 {
        self.tiles
            .iter()
            .position(|c| c.kind() == self.kind && c.plain() == Some(terrain))
            .map_or(-1, |i| i as i64)
    }

    /// The `.tsx` XML (Tiled 1.10 format), names and file name escaped.
    pub fn to_tsx(&self) -> String {
        let mut s = String::new();
        let name = escape(&self.name);
        let kind = match self.kind {
            TilesetKind::Wang => "corner",
            TilesetKind::Blob => "mixed",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            s,
            r#"<tileset version="1.10" tiledversion="1.10.2" name="{name}" tilewidth="{}" tileheight="{}" spacing="{}" margin="{}" tilecount="{}" columns="{}">"#,
            self.tile_width,
            self.tile_height,
            self.spacing,
            self.margin,
            self.tiles.len(),
            self.columns
        );
        let _ = writeln!(
            s,
            r#" <image source="{}" width="{}" height="{}"/>"#,
            escape(&self.image),
            self.image_width,
            self.image_height
        );
        let _ = writeln!(s, " <wangsets>");
        let _ = writeln!(s, r#"  <wangset name="{name}" type="{kind}" tile="-1">"#);
        for (i, terrain) in [Terrain::A, Terrain::B].into_iter().enumerate() {
            let [r, g, b] = self.terrain_colors[i];
            let _ = writeln!(
                s,
                r##"   <wangcolor name="{}" color="#{r:02x}{g:02x}{b:02x}" tile="{}" probability="1"/>"##,
                escape(&self.terrain_names[i]),
                self.representative(terrain)
            );
        }
        for (i, &code) in self.tiles.iter().enumerate() {
            if let Some(id) = self.wangid(code) {
                let id: Vec<String> = id.iter().map(u8::to_string).collect();
                let _ = writeln!(
                    s,
                    r#"   <wangtile tileid="{i}" wangid="{}"/>"#,
                    id.join(",")
                );
            }
        }
        let _ = writeln!(s, "  </wangset>");
        let _ = writeln!(s, " </wangsets>");
        let _ = writeln!(s, "</tileset>");
        s
    }
}

/// Escapes text for an XML attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element `<tag ...>` of `xml` as its attribute list (a tiny hand-rolled scan).
    fn elements(xml: &str, tag: &str) -> Vec<Vec<(String, String)>> {
        let open = format!("<{tag} ");
        let mut out = Vec::new();
        let mut rest = xml;
        while let Some(start) = rest.find(&open) {
            let body = &rest[start + open.len()..];
            let end = body.find('>').expect("closed element");
            let mut attrs = Vec::new();
            let mut a = &body[..end];
            while let Some(eq) = a.find("=\"") {
                let key = a[..eq].trim().to_string();
                let value_end = a[eq + 2..].find('"').expect("closed value");
                attrs.push((key, a[eq + 2..eq + 2 + value_end].to_string()));
                a = &a[eq + 3 + value_end..];
            }
            out.push(attrs);
            rest = &body[end..];
        }
        out
    }

    fn attr<'a>(el: &'a [(String, String)], key: &str) -> &'a str {
        el.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key}"))
    }

    #[test]
    fn wang_tsx_has_a_corner_set() {
        let mut t = TiledTileset::new(
            "grass & water",
            "grass_water.png",
            TilesetKind::Wang,
            (16, 16),
            4,
        );
        t.terrain_names = ["grass".into(), "wa\"ter".into()];
        t.terrain_colors = [[0x11, 0xaa, 0x22], [0, 0, 255]];
        let xml = t.to_tsx();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        let ts = &elements(&xml, "tileset")[0];
        assert_eq!(attr(ts, "version"), "1.10");
        assert_eq!(attr(ts, "name"), "grass &amp; water");
        assert_eq!(attr(ts, "tilecount"), "16");
        assert_eq!(attr(ts, "columns"), "4");
        let img = &elements(&xml, "image")[0];
        assert_eq!((attr(img, "width"), attr(img, "height")), ("64", "64"));
        assert_eq!(attr(img, "source"), "grass_water.png");
        let set = &elements(&xml, "wangset")[0];
        assert_eq!((attr(set, "type"), attr(set, "tile")), ("corner", "-1"));
        let colors = elements(&xml, "wangcolor");
        assert_eq!(colors.len(), 2);
        assert_eq!(attr(&colors[0], "color"), "#11aa22");
        assert_eq!(attr(&colors[0], "tile"), "0");
        assert_eq!(attr(&colors[1], "name"), "wa&quot;ter");
        assert_eq!(attr(&colors[1], "tile"), "15");
        let tiles = elements(&xml, "wangtile");
        assert_eq!(tiles.len(), 16);
        assert_eq!(attr(&tiles[0], "wangid"), "0,1,0,1,0,1,0,1");
        // Code 1: NE is B, the top-right slot.
        assert_eq!(attr(&tiles[1], "wangid"), "0,2,0,1,0,1,0,1");
        // Code 12: SW and NW.
        assert_eq!(attr(&tiles[12], "tileid"), "12");
        assert_eq!(attr(&tiles[12], "wangid"), "0,1,0,1,0,2,0,2");
        assert_eq!(attr(&tiles[15], "wangid"), "0,2,0,2,0,2,0,2");
        assert!(xml.trim_end().ends_with("</tileset>"));
    }

    #[test]
    fn blob_tsx_is_mixed_and_skips_the_isolated_blob() {
        let mut t = TiledTileset::new("shore", "shore.png", TilesetKind::Blob, (16, 16), 8);
        // A variation of the full B tile at the end.
        t.tiles.push(TileCode::Blob(255));
        t.image_height += 16;
        let xml = t.to_tsx();
        assert_eq!(attr(&elements(&xml, "tileset")[0], "tilecount"), "49");
        assert_eq!(attr(&elements(&xml, "wangset")[0], "type"), "mixed");
        let tiles = elements(&xml, "wangtile");
        assert_eq!(tiles.len(), 48);
        let by_id = |id: &str| {
            tiles
                .iter()
                .find(|t| attr(t, "tileid") == id)
                .map(|t| attr(t, "wangid").to_string())
        };
        assert_eq!(by_id("0").as_deref(), Some("1,1,1,1,1,1,1,1"));
        assert_eq!(by_id("1"), None, "the isolated blob is left out");
        assert_eq!(by_id("47").as_deref(), Some("2,2,2,2,2,2,2,2"));
        assert_eq!(by_id("48").as_deref(), Some("2,2,2,2,2,2,2,2"));
        // N|NE|E: top, top-right, right.
        let i = TilesetKind::Blob
            .index_of(TileCode::Blob(N | NE | E))
            .expect("code");
        assert_eq!(by_id(&i.to_string()).as_deref(), Some("2,2,2,1,1,1,1,1"));
        let i = TilesetKind::Blob
            .index_of(TileCode::Blob(S | W))
            .expect("code");
        assert_eq!(by_id(&i.to_string()).as_deref(), Some("1,1,1,1,2,1,2,1"));
        let colors = elements(&xml, "wangcolor");
        assert_eq!(
            (attr(&colors[0], "tile"), attr(&colors[1], "tile")),
            ("0", "47")
        );
        assert_eq!(t.wangid(TileCode::Wang(3)), None);
    }
}
