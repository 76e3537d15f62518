//! The pictures a card prints: the business's logo (PNG or SVG) and a cadence's front
//! image (PNG or JPEG). Each file meets limits (size on disk, pixel dimensions, SVG
//! limits) before it is decoded, so that a hostile file is refused, not parsed.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use resvg::usvg::ImageKind;

/// The largest logo file, and the largest front image, in bytes.
const MAX_LOGO_BYTES: u64 = 2 << 20;
const MAX_FRONT_BYTES: u64 = 16 << 20;
/// The widest or tallest raster picture, in pixels (a full-bleed front at 600 dpi).
const MAX_PIXELS: u32 = 4000;

/// Reads the logo at `path`: a PNG or an SVG file.
pub fn logo(path: &Path) -> Result<ImageKind, String> {
    let data = read(path, MAX_LOGO_BYTES)?;
    if data.starts_with(b"\x89PNG") {
        png_size_ok(&data).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(ImageKind::PNG(Arc::new(data)));
    }
    let head = String::from_utf8_lossy(&data[..data.len().min(1024)]);
    if head.contains("<svg") || head.trim_start().starts_with("<?xml") {
        let tree =
            super::svg::parse_picture(&data).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(ImageKind::SVG(tree));
    }
    Err(format!("{}: not a PNG or SVG file", path.display()))
}

/// Reads a cadence's front image at `path`: a PNG or JPEG file.
pub fn front_image(path: &Path) -> Result<ImageKind, String> {
    let data = read(path, MAX_FRONT_BYTES)?;
    if data.starts_with(b"\x89PNG") {
        png_size_ok(&data).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ImageKind::PNG(Arc::new(data)))
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        Ok(ImageKind::JPEG(Arc::new(data)))
    } else {
        Err(format!("{}: not a PNG or JPEG image", path.display()))
    }
}

/// The file's bytes, refused unread when it is larger than `max`.
fn read(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > max {
        return Err(format!(
            "{}: {} KiB; at most {} KiB",
            path.display(),
            size / 1024,
            max / 1024
        ));
    }
    let mut data = Vec::with_capacity(size as usize);
    file.take(max)
        .read_to_end(&mut data)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(data)
}

/// A PNG's width and height, from its header, within `MAX_PIXELS`.
fn png_size_ok(data: &[u8]) -> Result<(), String> {
    let dimension = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match (dimension(16), dimension(20), data.get(12..16)) {
        (Some(w), Some(h), Some(b"IHDR")) if w > 0 && h > 0 => {
            if w > MAX_PIXELS || h > MAX_PIXELS {
                Err(format!(
                    "a {w} x {h} pixel PNG; at most {MAX_PIXELS} pixels a side"
                ))
            } else {
                Ok(())
            }
        }
        _ => Err("a damaged PNG (no image header)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_missing_file_a_huge_png_and_a_file_of_another_kind() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = logo(&dir.path().join("logo.png")).unwrap_err();
        assert!(missing.contains("logo.png"), "{missing}");

        let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        huge.extend(100_000u32.to_be_bytes());
        huge.extend(100_000u32.to_be_bytes());
        let path = dir.path().join("huge.png");
        std::fs::write(&path, &huge).expect("write");
        assert!(logo(&path).unwrap_err().contains("100000 x 100000"));

        let path = dir.path().join("logo.gif");
        std::fs::write(&path, b"GIF89a").expect("write");
        assert!(logo(&path).unwrap_err().contains("not a PNG or SVG"));
    }

    #[test]
    fn reads_an_svg_logo() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("logo.svg");
        std::fs::write(
            &path,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="#2f5566"/></svg>"##,
        )
        .expect("write");
        assert!(matches!(logo(&path), Ok(ImageKind::SVG(_))));
    }
}
