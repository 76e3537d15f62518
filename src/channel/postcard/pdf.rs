//! Writes postcards as PDF: a 6 x 4 in card with 0.125 in of bleed on every side
//! (pages of 6.25 x 4.25 in, TrimBox and BleedBox set), the front first and the message
//! side second, as print shops expect. Each side is laid out as SVG (`front`, `back`)
//! and drawn by krilla with its text kept as text and its fonts embedded (subset).
//! Text the fonts cannot show, or that leaves the safe area, is refused rather than
//! printed as boxes or cut off.

use krilla::Document;
use krilla::geom::{Rect, Size};
use krilla::page::PageSettings;
use krilla_svg::{SurfaceExt, SvgSettings};
use resvg::usvg::Tree;

use super::card::Card;
use super::text::Metrics;
use super::zones::{BLEED, PAGE_H, PAGE_W, SAFE, TRIM_H, TRIM_W};
use super::{back, front, svg};

/// The two sides of `card`, front first, ready to draw.
pub(super) fn sides(card: &Card) -> Result<[Tree; 2], String> {
    let regular = Metrics::regular();
    let bold = Metrics::bold();
    let missing = regular.missing(&card.all_text());
    if !missing.is_empty() {
        return Err(no_glyph(&missing));
    }
    let (source, pictures) = front::front(card, &bold).map_err(|e| format!("the front: {e}"))?;
    let front = svg::parse(&source, pictures).map_err(|e| format!("the front: {e}"))?;
    if card.front.as_deref().is_some_and(front::is_svg) && card.front_image.is_none() {
        designed_front_ok(&front, &regular)?;
    }
    let back = back::message_side(card, &regular)?;
    let back = svg::parse(&back, svg::Pictures::new())?;
    Ok([front, back])
}

/// A front template's text must be printable and inside the safe area.
fn designed_front_ok(front: &Tree, metrics: &Metrics<'_>) -> Result<(), String> {
    let scale = PAGE_W / front.size().width();
    for (text, [x0, y0, x1, y1]) in svg::texts(front) {
        let missing = metrics.missing(&text);
        if !missing.is_empty() {
            return Err(no_glyph(&missing));
        }
        let (x0, y0, x1, y1) = (x0 * scale, y0 * scale, x1 * scale, y1 * scale);
        if x0 < SAFE.x0 - 0.5 || y0 < SAFE.y0 - 0.5 || x1 > SAFE.x1 + 0.5 || y1 > SAFE.y1 + 0.5 {
            return Err(format!(
                "the front's text `{}` reaches within 3/16 in of the card's edge, where the cut may take it; keep text inside x {:.0}-{:.0}, y {:.0}-{:.0} (points on the {PAGE_W} x {PAGE_H} page)",
                text.trim(),
                SAFE.x0,
                SAFE.x1,
                SAFE.y0,
                SAFE.y1
            ));
        }
    }
    Ok(())
}

fn no_glyph(missing: &[char]) -> String {
    format!(
        "the postcard font has no glyph for {}",
        missing
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Writes `cards` into one PDF, two pages per card (front, then message side).
pub fn render(cards: &[Card]) -> Result<Vec<u8>, String> {
    let mut document = Document::new();
    document.set_metadata(
        krilla::metadata::Metadata::new()
            .title(match cards {
                [card] => format!("Postcard {} to {}", card.send_id, card.contact),
                _ => format!("{} postcards", cards.len()),
            })
            .creator("tickler".into()),
    );
    let size = Size::from_wh(PAGE_W, PAGE_H).ok_or("an empty page")?;
    for card in cards {
        for side in sides(card)? {
            let mut page = document.start_page_with(page_settings());
            let mut surface = page.surface();
            surface.draw_svg(&side, size, SvgSettings::default());
            surface.finish();
            page.finish();
        }
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
