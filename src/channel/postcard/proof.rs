//! Proof sheets: each side of a card as a PNG with the zones drawn over it (the trim
//! and safe lines on both sides; on the message side the ink-free address zone, the
//! barcode strip and the postage area), so that the owner sees what the print shop and
//! the post office will check before anything is printed.

use resvg::tiny_skia::{Color, Paint, PathBuilder, Pixmap, Rect, Stroke, Transform};

use super::card::Card;
use super::zones::{Area, BARCODE, CLEAR, IN, PAGE_H, PAGE_W, POSTAGE, SAFE, TRIM};

/// Proofs are drawn at this many pixels per inch.
const DPI: f32 = 150.0;

/// The front and the message side of `card` as PNG files' bytes, zones drawn over.
pub fn proofs(card: &Card) -> Result<[Vec<u8>; 2], String> {
    let [front, back] = super::pdf::sides(card)?;
    Ok([draw(&front, false)?, draw(&back, true)?])
}

fn draw(side: &resvg::usvg::Tree, message_side: bool) -> Result<Vec<u8>, String> {
    let scale = DPI / IN;
    let (w, h) = (
        (PAGE_W * scale).ceil() as u32,
        (PAGE_H * scale).ceil() as u32,
    );
    let mut pixmap = Pixmap::new(w, h).ok_or("cannot make the proof image")?;
    pixmap.fill(Color::WHITE);
    let fit = PAGE_W / side.size().width();
    resvg::render(
        side,
        Transform::from_scale(scale * fit, scale * fit),
        &mut pixmap.as_mut(),
    );
    let to_px = Transform::from_scale(scale, scale);
    if message_side {
        fill(&mut pixmap, &CLEAR, (220, 40, 40, 40), to_px);
        fill(&mut pixmap, &BARCODE, (220, 120, 0, 60), to_px);
        fill(&mut pixmap, &POSTAGE, (40, 90, 220, 50), to_px);
        outline(&mut pixmap, &CLEAR, (200, 0, 0, 255), to_px);
    }
    outline(&mut pixmap, &TRIM, (0, 0, 0, 255), to_px);
    outline(&mut pixmap, &SAFE, (0, 150, 60, 255), to_px);
    pixmap
        .encode_png()
        .map_err(|e| format!("cannot write the proof image: {e}"))
}

fn rect(area: &Area) -> Option<Rect> {
    Rect::from_ltrb(area.x0, area.y0, area.x1, area.y1)
}

fn paint((r, g, b, a): (u8, u8, u8, u8)) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(r, g, b, a);
    paint
}

fn fill(pixmap: &mut Pixmap, area: &Area, colour: (u8, u8, u8, u8), at: Transform) {
    if let Some(rect) = rect(area) {
        pixmap.fill_rect(rect, &paint(colour), at, None);
    }
}

fn outline(pixmap: &mut Pixmap, area: &Area, colour: (u8, u8, u8, u8), at: Transform) {
    let Some(path) = rect(area).map(PathBuilder::from_rect) else {
        return;
    };
    let stroke = Stroke {
        width: 0.75,
        dash: resvg::tiny_skia::StrokeDash::new(vec![3.0, 2.0], 0.0),
        ..Stroke::default()
    };
    pixmap.stroke_path(&path, &paint(colour), &stroke, at, None);
}
