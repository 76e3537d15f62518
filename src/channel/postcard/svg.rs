//! Every side of a card is an SVG document before it is a PDF page or a proof PNG:
//! this module parses them with usvg, with tickler's own fonts and no access to files or
//! the network. An `<image>` may name only the pictures the card was given (the logo,
//! the front image); any other reference draws nothing. SVG from outside (a logo, a
//! front template) meets size, element and nesting limits before it is parsed.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use resvg::usvg::{self, ImageHrefResolver, ImageKind, Node, Tree};

use super::text::{BOLD, REGULAR};

/// The largest SVG accepted from outside, in bytes.
pub(super) const MAX_SVG_BYTES: usize = 1 << 20;
/// The most elements, and the deepest nesting, an outside SVG may have.
const MAX_ELEMENTS: usize = 20_000;
const MAX_DEPTH: usize = 64;

/// The fonts every side is set in, loaded once.
fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = usvg::fontdb::Database::new();
            db.load_font_data(REGULAR.to_vec());
            db.load_font_data(BOLD.to_vec());
            db.set_sans_serif_family(super::text::FAMILY);
            Arc::new(db)
        })
        .clone()
}

/// Pictures a side may show, by the name its `<image href>` uses.
pub(super) type Pictures = HashMap<String, ImageKind>;

/// Parses one side. `pictures` are the only images its `<image>` elements can reach.
pub(super) fn parse(source: &str, pictures: Pictures) -> Result<Tree, String> {
    guard(source)?;
    let options = options(pictures);
    Tree::from_str(source, &options).map_err(|e| format!("not a usable SVG document: {e}"))
}

/// Parses an SVG picture from outside (a logo), which itself reaches no image.
pub(super) fn parse_picture(data: &[u8]) -> Result<Tree, String> {
    if data.len() > MAX_SVG_BYTES {
        return Err(format!(
            "the SVG is {} KiB; at most {} KiB",
            data.len() / 1024,
            MAX_SVG_BYTES / 1024
        ));
    }
    let text = std::str::from_utf8(data).map_err(|_| "the SVG is not UTF-8 text".to_owned())?;
    parse(text, Pictures::new())
}

fn options(pictures: Pictures) -> usvg::Options<'static> {
    let pictures = Arc::new(pictures);
    usvg::Options {
        resources_dir: None,
        fontdb: fonts(),
        image_href_resolver: ImageHrefResolver {
            // Inline pictures (data: URLs) only as raster images; nested SVG is not
            // parsed a second time without the limits above.
            resolve_data: Box::new(|mime, data, _| match mime {
                "image/png" => Some(ImageKind::PNG(data)),
                "image/jpg" | "image/jpeg" => Some(ImageKind::JPEG(data)),
                _ => None,
            }),
            resolve_string: Box::new(move |href, _| pictures.get(href).cloned()),
        },
        ..usvg::Options::default()
    }
}

/// Refuses what would make parsing expensive or reach outside: too large, too many
/// elements, too deep, or entity declarations (which can expand without bound).
fn guard(source: &str) -> Result<(), String> {
    if source.len() > MAX_SVG_BYTES {
        return Err(format!(
            "the SVG is {} KiB; at most {} KiB",
            source.len() / 1024,
            MAX_SVG_BYTES / 1024
        ));
    }
    if source.contains("<!ENTITY") {
        return Err("the SVG declares entities; save it without a DOCTYPE".into());
    }
    let bytes = source.as_bytes();
    let (mut depth, mut deepest, mut elements) = (0usize, 0usize, 0usize);
    for (i, _) in source.match_indices('<') {
        match bytes.get(i + 1) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'!' | b'?') => {}
            _ => {
                elements += 1;
                let end = source[i..].find('>').map_or(source.len(), |e| i + e);
                if bytes.get(end.saturating_sub(1)) != Some(&b'/') {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
            }
        }
    }
    if elements > MAX_ELEMENTS {
        return Err(format!(
            "the SVG has {elements} elements; at most {MAX_ELEMENTS}"
        ));
    }
    if deepest > MAX_DEPTH {
        return Err(format!(
            "the SVG nests elements {deepest} deep; at most {MAX_DEPTH}"
        ));
    }
    Ok(())
}

/// Every piece of text a side shows, with its box on the page (x0, y0, x1, y1).
pub(super) fn texts(tree: &Tree) -> Vec<(String, [f32; 4])> {
    fn walk(group: &usvg::Group, out: &mut Vec<(String, [f32; 4])>) {
        for node in group.children() {
            match node {
                Node::Group(g) => walk(g, out),
                Node::Text(t) => {
                    let text: String = t.chunks().iter().map(|c| c.text()).collect();
                    let b = t.abs_bounding_box();
                    out.push((text, [b.left(), b.top(), b.right(), b.bottom()]));
                }
                Node::Path(_) | Node::Image(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(tree.root(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_deep_nesting_entities_and_size_before_parsing() {
        let deep = format!("<svg>{}{}</svg>", "<g>".repeat(100), "</g>".repeat(100));
        assert!(parse(&deep, Pictures::new()).unwrap_err().contains("deep"));
        let laughs = "<!DOCTYPE svg [<!ENTITY a \"aaaa\">]><svg>&a;</svg>";
        assert!(
            parse(laughs, Pictures::new())
                .unwrap_err()
                .contains("entities")
        );
        let big = format!("<svg>{}</svg>", " ".repeat(MAX_SVG_BYTES));
        assert!(parse(&big, Pictures::new()).unwrap_err().contains("KiB"));
    }

    #[test]
    fn an_image_reaches_only_the_pictures_it_was_given() {
        let source = r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
            <image href="/etc/passwd" width="10" height="10"/></svg>"#;
        let tree = parse(source, Pictures::new()).expect("parses");
        assert!(tree.root().children().is_empty());
    }
}
