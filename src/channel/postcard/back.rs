//! The message side as SVG, laid out in the zones of `zones`: the return address top
//! left, the message below it in the left part, a rule in the gutter, and the
//! recipient's block inside the ink-free zone at the lower right, above the barcode
//! strip. The postage area stays empty. Text that does not fit at its smallest size is
//! refused, never clipped or moved into a zone.

use super::card::Card;
use super::text::{Metrics, svg_line};
use super::zones::{ADDRESS, BARCODE, DIVIDER_X, IN, MESSAGE, PAGE_H, PAGE_W, SAFE};

/// Sizes tried for each block, largest first; the last is the smallest that prints
/// legibly.
const RETURN_SIZES: [f32; 3] = [7.5, 7.0, 6.5];
const MESSAGE_SIZES: [f32; 7] = [10.5, 10.0, 9.5, 9.0, 8.5, 8.0, 7.5];
const ADDRESS_SIZES: [f32; 7] = [11.0, 10.5, 10.0, 9.5, 9.0, 8.5, 8.0];
/// The return address takes at most this much of the message column's height.
const RETURN_HEIGHT: f32 = 0.9 * IN;
const INK: &str = "#1f1f1f";

/// The message side of `card` as an SVG document of the page's size.
pub(super) fn message_side(card: &Card, metrics: &Metrics<'_>) -> Result<String, String> {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{PAGE_W}\" height=\"{PAGE_H}\" viewBox=\"0 0 {PAGE_W} {PAGE_H}\">\n\
         <rect width=\"{PAGE_W}\" height=\"{PAGE_H}\" fill=\"#ffffff\"/>\n"
    );
    let column = MESSAGE.width();

    // The return address: the business's name in its colour, then its address.
    let sender = card.return_address.join("\n");
    let block = metrics.fit(
        &sender,
        &RETURN_SIZES,
        column,
        RETURN_HEIGHT,
        "return address",
    )?;
    let mut y = MESSAGE.y0;
    let name_lines = metrics
        .wrap(&card.business, block.size, column)
        .len()
        .max(1);
    for (i, line) in block.lines.iter().enumerate() {
        y += block.leading;
        let (bold, fill) = if i < name_lines {
            (true, card.colour.as_str())
        } else {
            (false, INK)
        };
        svg.push_str(&svg_line(
            MESSAGE.x0,
            y - block.leading * 0.2,
            block.size,
            bold,
            fill,
            line,
        ));
    }
    y += 0.125 * IN;

    // The message, below it.
    let block = metrics.fit(
        &card.message,
        &MESSAGE_SIZES,
        column,
        MESSAGE.y1 - y,
        "message",
    )?;
    for line in &block.lines {
        y += block.leading;
        svg.push_str(&svg_line(
            MESSAGE.x0,
            y - block.leading * 0.2,
            block.size,
            false,
            INK,
            line,
        ));
    }

    // The rule between the message and the address zone, clear of the barcode strip.
    svg.push_str(&format!(
        "<line x1=\"{DIVIDER_X}\" y1=\"{:.2}\" x2=\"{DIVIDER_X}\" y2=\"{:.2}\" stroke=\"#9a9a9a\" stroke-width=\"0.5\"/>\n",
        SAFE.y0,
        BARCODE.y0 - 0.25 * IN
    ));

    // The recipient, centred in the height of the address area.
    let address = card.address_block().join("\n");
    let block = metrics.fit(
        &address,
        &ADDRESS_SIZES,
        ADDRESS.width(),
        ADDRESS.height(),
        "address",
    )?;
    let height = block.lines.len() as f32 * block.leading;
    let mut y = ADDRESS.y0 + (ADDRESS.height() - height) / 2.0;
    for line in &block.lines {
        y += block.leading;
        svg.push_str(&svg_line(
            ADDRESS.x0,
            y - block.leading * 0.2,
            block.size,
            false,
            "#000000",
            line,
        ));
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}
