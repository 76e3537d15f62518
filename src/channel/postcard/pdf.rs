//! Lays out postcards and writes them as PDF: a 6 x 4 in card with 0.125 in of bleed on
//! every side (pages of 6.25 x 4.25 in, TrimBox and BleedBox set), the front first and
//! the message side second, as print shops expect. The one font, DejaVu Sans, is
//! embedded (subset) so that any name in Latin, Greek or Cyrillic script prints as
//! written; text the font cannot show is refused rather than printed as boxes.
//!
//! Message side, in the zones postal services expect: return address top left, the
//! message in the left half, a postage box top right, and the recipient's address in
//! the lower right, above the bottom 5/8 in that is kept free for the barcode.

use krilla::Document;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};

use super::card::Card;

/// DejaVu Sans (Bitstream Vera licence, assets/fonts/DejaVuSans.LICENSE).
static FONT_DATA: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Points per inch.
const IN: f32 = 72.0;
const BLEED: f32 = 0.125 * IN;
/// The trimmed card: 6 x 4 in, landscape, as mailed.
const TRIM_W: f32 = 6.0 * IN;
const TRIM_H: f32 = 4.0 * IN;
const PAGE_W: f32 = TRIM_W + 2.0 * BLEED;
const PAGE_H: f32 = TRIM_H + 2.0 * BLEED;
/// Printers cannot promise to cut exactly; text stays this far inside the trim.
const SAFE: f32 = 0.1875 * IN;
/// Left edge of the address half of the message side.
const ADDRESS_X: f32 = BLEED + 3.5 * IN;
/// Bottom of the trimmed card minus the barcode clear zone.
const BARCODE_TOP: f32 = BLEED + TRIM_H - 0.625 * IN;

/// Widths of the font's glyphs, to wrap lines and to refuse text it cannot show.
struct Metrics<'a> {
    face: ttf_parser::Face<'a>,
    units_per_em: f32,
}

impl Metrics<'static> {
    fn load() -> Metrics<'static> {
        let face = ttf_parser::Face::parse(FONT_DATA, 0).expect("the embedded font parses");
        let units_per_em = f32::from(face.units_per_em());
        Metrics { face, units_per_em }
    }
}

impl Metrics<'_> {
    fn width(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text
            .chars()
            .filter_map(|c| self.face.glyph_index(c))
            .map(|g| u32::from(self.face.glyph_hor_advance(g).unwrap_or(0)))
            .sum();
        units as f32 * size / self.units_per_em
    }

    /// Characters of `text` that the font has no glyph for.
    fn missing(&self, text: &str) -> Vec<char> {
        let mut missing: Vec<char> = text
            .chars()
            .filter(|c| !c.is_whitespace() && self.face.glyph_index(*c).is_none())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Breaks `text` into lines no wider than `width`: at spaces where it can, inside
    /// a word only when the word alone is too wide. Paragraphs stay apart.
    fn wrap(&self, text: &str, size: f32, width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.lines() {
            let mut line = String::new();
            for word in paragraph.split_whitespace() {
                let candidate = if line.is_empty() {
                    word.to_owned()
                } else {
                    format!("{line} {word}")
                };
                if self.width(&candidate, size) <= width {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                for c in word.chars() {
                    line.push(c);
                    if self.width(&line, size) > width && line.chars().count() > 1 {
                        line.pop();
                        lines.push(std::mem::replace(&mut line, c.to_string()));
                    }
                }
            }
            lines.push(line);
        }
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }
}

/// Text set in a box: the largest size from `sizes` at which it fits.
struct Block {
    lines: Vec<String>,
    size: f32,
    leading: f32,
}

fn fit(
    metrics: &Metrics<'_>,
    text: &str,
    sizes: &[f32],
    width: f32,
    height: f32,
    what: &str,
) -> Result<Block, String> {
    for &size in sizes {
        let lines = metrics.wrap(text, size, width);
        let leading = size * 1.3;
        if lines.len() as f32 * leading <= height {
            return Ok(Block {
                lines,
                size,
                leading,
            });
        }
    }
    let smallest = sizes.last().copied().unwrap_or(8.0);
    Err(format!(
        "the {what} does not fit on the card: {} lines at {smallest} pt, room for {}",
        metrics.wrap(text, smallest, width).len(),
        (height / (smallest * 1.3)).floor()
    ))
}

/// Writes `cards` into one PDF, two pages per card (front, then message side).
pub fn render(cards: &[Card]) -> Result<Vec<u8>, String> {
    let metrics = Metrics::load();
    let font = Font::new(FONT_DATA.into(), 0).ok_or("the embedded font cannot be loaded")?;
    let mut document = Document::new();
    document.set_metadata(
        krilla::metadata::Metadata::new()
            .title(match cards {
                [card] => format!("Postcard {} to {}", card.send_id, card.contact),
                _ => format!("{} postcards", cards.len()),
            })
            .creator("tickler".into()),
    );
    for card in cards {
        let missing = metrics.missing(&card.all_text());
        if !missing.is_empty() {
            return Err(format!(
                "the postcard font has no glyph for {}",
                missing
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let front = front_image(card)?;
        {
            let mut page = document.start_page_with(page_settings());
            let mut surface = page.surface();
            draw_front(&mut surface, &metrics, &font, card, front)?;
            surface.finish();
            page.finish();
        }
        let mut page = document.start_page_with(page_settings());
        let mut surface = page.surface();
        draw_message_side(&mut surface, &metrics, &font, card)?;
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|e| format!("cannot write the PDF: {e:?}"))
}

fn page_settings() -> PageSettings {
    let trim = Rect::from_xywh(BLEED, BLEED, TRIM_W, TRIM_H).expect("a positive size");
    let bleed = Rect::from_xywh(0.0, 0.0, PAGE_W, PAGE_H).expect("a positive size");
    PageSettings::from_wh(PAGE_W, PAGE_H)
        .expect("a positive size")
        .with_bleed_box(Some(bleed))
        .with_trim_box(Some(trim))
}

fn front_image(card: &Card) -> Result<Option<Image>, String> {
    let Some(path) = &card.front_image else {
        return Ok(None);
    };
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let is_png = data.starts_with(b"\x89PNG");
    let image = if is_png {
        Image::from_png(data.into(), true)
    } else {
        Image::from_jpeg(data.into(), true)
    };
    image
        .map(Some)
        .map_err(|e| format!("{}: not a PNG or JPEG image ({e})", path.display()))
}

/// The front: the image over the whole page, bleed included; else the front text (or
/// the business's name) centred.
fn draw_front(
    surface: &mut Surface<'_>,
    metrics: &Metrics<'_>,
    font: &Font,
    card: &Card,
    image: Option<Image>,
) -> Result<(), String> {
    if let Some(image) = image {
        let (w, h) = image.size();
        let scale = (PAGE_W / w as f32).max(PAGE_H / h as f32);
        let (dw, dh) = (w as f32 * scale, h as f32 * scale);
        surface.push_transform(&Transform::from_translate(
            (PAGE_W - dw) / 2.0,
            (PAGE_H - dh) / 2.0,
        ));
        surface.draw_image(image, Size::from_wh(dw, dh).ok_or("an empty image")?);
        surface.pop();
        return Ok(());
    }
    let text = card.front.as_deref().unwrap_or(&card.business);
    let width = TRIM_W - 2.0 * SAFE;
    let height = TRIM_H - 2.0 * SAFE;
    let sizes = [28.0, 24.0, 20.0, 16.0, 14.0, 12.0, 10.0];
    let block = fit(metrics, text, &sizes, width, height, "front text")?;
    let top = BLEED + (TRIM_H - block.lines.len() as f32 * block.leading) / 2.0;
    for (i, line) in block.lines.iter().enumerate() {
        let x = (PAGE_W - metrics.width(line, block.size)) / 2.0;
        let y = top + (i as f32 + 0.8) * block.leading;
        text_at(surface, font, block.size, x, y, line);
    }
    Ok(())
}

fn draw_message_side(
    surface: &mut Surface<'_>,
    metrics: &Metrics<'_>,
    font: &Font,
    card: &Card,
) -> Result<(), String> {
    let left = BLEED + SAFE;
    let top = BLEED + SAFE;
    let column = ADDRESS_X - left - 0.25 * IN;

    // Return address, small, top left.
    let mut y = top;
    for line in &card.return_address {
        y += 9.0;
        text_at(surface, font, 7.0, left, y, line);
    }
    y += 12.0;

    // The message, in the left half.
    let bottom = BLEED + TRIM_H - SAFE;
    let sizes = [10.5, 10.0, 9.5, 9.0, 8.5, 8.0, 7.5];
    let block = fit(
        metrics,
        &card.message,
        &sizes,
        column,
        bottom - y,
        "message",
    )?;
    for (i, line) in block.lines.iter().enumerate() {
        let baseline = y + (i as f32 + 0.8) * block.leading;
        text_at(surface, font, block.size, left, baseline, line);
    }

    // A rule between the halves and a box where the postage goes.
    let right = BLEED + TRIM_W - SAFE;
    let rule_x = ADDRESS_X - 0.125 * IN;
    let mut path = PathBuilder::new();
    path.move_to(rule_x, top + 0.75 * IN);
    path.line_to(rule_x, bottom - 0.25 * IN);
    if let Some(rect) = Rect::from_xywh(right - 0.9 * IN, top, 0.9 * IN, IN) {
        path.push_rect(rect);
    }
    if let Some(path) = path.finish() {
        surface.set_fill(None);
        surface.set_stroke(Some(Stroke {
            width: 0.5,
            ..Stroke::default()
        }));
        surface.draw_path(&path);
        surface.set_stroke(None);
        surface.set_fill(Some(krilla::paint::Fill::default()));
    }
    let label = "POSTAGE";
    let label_x = right - 0.45 * IN - metrics.width(label, 6.0) / 2.0;
    text_at(surface, font, 6.0, label_x, top + 0.55 * IN, label);

    // The recipient, lower right, clear of the barcode zone.
    let width = right - ADDRESS_X - 0.125 * IN;
    let address = card.address_block().join("\n");
    let space = BARCODE_TOP - (top + 1.25 * IN);
    let block = fit(
        metrics,
        &address,
        &[11.0, 10.0, 9.0, 8.0],
        width,
        space,
        "address",
    )?;
    let first = BARCODE_TOP - 0.1 * IN - block.lines.len() as f32 * block.leading;
    for (i, line) in block.lines.iter().enumerate() {
        let baseline = first + (i as f32 + 0.8) * block.leading;
        text_at(surface, font, block.size, ADDRESS_X, baseline, line);
    }
    Ok(())
}

fn text_at(surface: &mut Surface<'_>, font: &Font, size: f32, x: f32, y: f32, text: &str) {
    if text.is_empty() {
        return;
    }
    surface.draw_text(
        Point::from_xy(x, y),
        font.clone(),
        size,
        text,
        false,
        TextDirection::Auto,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_splits_only_overlong_words() {
        let metrics = Metrics::load();
        let lines = metrics.wrap("one two three four five six", 10.0, 60.0);
        assert!(lines.len() > 1, "{lines:?}");
        assert!(lines.iter().all(|l| metrics.width(l, 10.0) <= 60.0));
        assert_eq!(lines.join(" "), "one two three four five six");
        let long = "x".repeat(200);
        let lines = metrics.wrap(&long, 10.0, 60.0);
        assert_eq!(lines.concat(), long);
        assert!(lines.iter().all(|l| metrics.width(l, 10.0) <= 60.0));
    }

    #[test]
    fn knows_which_characters_it_cannot_print() {
        let metrics = Metrics::load();
        assert!(
            metrics
                .missing("José Zoë Øresund Łódź Ωμέγα Москва")
                .is_empty()
        );
        assert_eq!(metrics.missing("東京 ok"), vec!['京', '東']);
    }
}
