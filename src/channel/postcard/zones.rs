//! The geometry of a 4 x 6 in card as print-and-mail services and the USPS lay it out,
//! in PDF points on the page (bleed included, origin top left): the trim, the safe
//! margin, and on the message side the ink-free address zone, the barcode strip and
//! the postage area. Layout places text by these; proofs draw them.

/// Points per inch.
pub const IN: f32 = 72.0;
/// Printed past the trim on every side, so that a cut a little off shows no white edge.
pub const BLEED: f32 = 0.125 * IN;
/// The trimmed card: 6 x 4 in, landscape, as mailed.
pub const TRIM_W: f32 = 6.0 * IN;
pub const TRIM_H: f32 = 4.0 * IN;
pub const PAGE_W: f32 = TRIM_W + 2.0 * BLEED;
pub const PAGE_H: f32 = TRIM_H + 2.0 * BLEED;

/// A rectangle on the page: left, top, right, bottom, in points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Area {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Area {
    /// `w` x `h` in, its top left corner `x`, `y` in from the trim's top left.
    const fn on_trim(x: f32, y: f32, w: f32, h: f32) -> Area {
        Area {
            x0: BLEED + x * IN,
            y0: BLEED + y * IN,
            x1: BLEED + (x + w) * IN,
            y1: BLEED + (y + h) * IN,
        }
    }

    pub fn width(&self) -> f32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f32 {
        self.y1 - self.y0
    }
}

/// The card as cut.
pub const TRIM: Area = Area::on_trim(0.0, 0.0, 6.0, 4.0);
/// Cutting is not exact: no text or line within 1/8 in of the trim; tickler keeps
/// 3/16 in.
pub const SAFE: Area = Area::on_trim(0.1875, 0.1875, 6.0 - 0.375, 4.0 - 0.375);
/// Kept free of ink for the address, postage and barcode (Lob's 4x6 template): at
/// the lower right, 3.2835 x 2.375 in. Only the recipient's address is printed in it.
pub const CLEAR: Area = Area::on_trim(6.0 - 3.2835, 4.0 - 2.375, 3.2835, 2.375);
/// The bottom 5/8 in, where the USPS prints its barcode: nothing at all goes here.
pub const BARCODE: Area = Area::on_trim(0.0, 4.0 - 0.625, 6.0, 0.625);
/// Top right: where postage or the mailing service's indicia goes; left empty.
pub const POSTAGE: Area = Area::on_trim(6.0 - 1.25, 0.0, 1.25, 1.0);
/// The message (and the return address above it): the left part, clear of the
/// address zone by a gutter and of the barcode strip.
pub const MESSAGE: Area = Area {
    x0: SAFE.x0,
    y0: SAFE.y0,
    x1: CLEAR.x0 - 0.25 * IN,
    y1: BARCODE.y0 - 0.0625 * IN,
};
/// Where the recipient's block is set: inside the clear zone, away from its edges and
/// above the barcode strip.
pub const ADDRESS: Area = Area {
    x0: CLEAR.x0 + 0.25 * IN,
    y0: CLEAR.y0 + 0.125 * IN,
    x1: SAFE.x1,
    y1: BARCODE.y0 - 0.125 * IN,
};
/// The rule between message and address: in the gutter, ending above the barcode.
pub const DIVIDER_X: f32 = CLEAR.x0 - 0.125 * IN;

// The zones keep their promises, checked when tickler is built: the message and the
// address inside the safe margin, the address inside the clear zone, the rule in the
// gutter, nothing in the barcode strip, the postage area above the clear zone.
const _: () = {
    assert!(SAFE.x0 <= MESSAGE.x0 && MESSAGE.y1 <= SAFE.y1);
    assert!(CLEAR.x0 <= ADDRESS.x0 && CLEAR.y0 <= ADDRESS.y0 && ADDRESS.x1 <= SAFE.x1);
    assert!(MESSAGE.x1 < DIVIDER_X && DIVIDER_X < CLEAR.x0);
    assert!(MESSAGE.y1 < BARCODE.y0 && ADDRESS.y1 < BARCODE.y0);
    assert!(POSTAGE.y1 < CLEAR.y0);
};
