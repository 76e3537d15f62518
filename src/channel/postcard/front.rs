//! The front as SVG: a cadence's `front_image` over the whole page; a front template
//! that is itself an SVG document (the business's own design, with its colour and
//! logo); or tickler's design around the front text (or the business's name): a band
//! of the business's colour, the text as a headline, the logo on a white plate.

use resvg::usvg::ImageKind;

use super::card::Card;
use super::svg::Pictures;
use super::text::{Metrics, svg_line, xml};
use super::zones::{IN, PAGE_H, PAGE_W, SAFE};

/// The name a side's `<image href>` uses for the front image.
const FRONT_IMAGE: &str = "tickler:front-image";

/// Whether a rendered front template is an SVG document rather than text.
pub(super) fn is_svg(front: &str) -> bool {
    let head = front.trim_start();
    head.starts_with("<svg") || head.starts_with("<?xml")
}

/// The front of `card` as an SVG document, with the pictures it may show.
pub(super) fn front(card: &Card, bold: &Metrics<'_>) -> Result<(String, Pictures), String> {
    let mut pictures = Pictures::new();
    if let Some(path) = &card.front_image {
        pictures.insert(FRONT_IMAGE.into(), super::picture::front_image(path)?);
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{PAGE_W}\" height=\"{PAGE_H}\" viewBox=\"0 0 {PAGE_W} {PAGE_H}\">\
             <image href=\"{FRONT_IMAGE}\" width=\"{PAGE_W}\" height=\"{PAGE_H}\" preserveAspectRatio=\"xMidYMid slice\"/></svg>"
        );
        return Ok((svg, pictures));
    }
    let logo = match &card.logo {
        Some(logo) => Some((logo.name.clone(), super::picture::logo(&logo.path)?)),
        None => None,
    };
    if let Some(front) = card.front.as_deref().filter(|f| is_svg(f)) {
        pictures.extend(logo);
        return Ok((front.to_owned(), pictures));
    }
    let text = card.front.as_deref().unwrap_or(&card.business);
    let svg = designed(card, text, logo.as_ref().map(|(_, kind)| kind), bold)?;
    if let Some((_, kind)) = logo {
        pictures.insert(LOGO.into(), kind);
    }
    Ok((svg, pictures))
}

/// The name tickler's own design places the logo by.
const LOGO: &str = "tickler:logo";

/// tickler's front: the business's colour over the whole page, the text in white as a
/// headline at the left, the logo on a white plate at the right, and the business's
/// name and phone at the foot.
fn designed(
    card: &Card,
    text: &str,
    logo: Option<&ImageKind>,
    bold: &Metrics<'_>,
) -> Result<String, String> {
    let colour = xml(&card.colour);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{PAGE_W}\" height=\"{PAGE_H}\" viewBox=\"0 0 {PAGE_W} {PAGE_H}\">\n\
         <rect width=\"{PAGE_W}\" height=\"{PAGE_H}\" fill=\"{colour}\"/>\n\
         <rect y=\"{:.2}\" width=\"{PAGE_W}\" height=\"{:.2}\" fill=\"#000000\" fill-opacity=\"0.18\"/>\n",
        SAFE.y1 - 0.55 * IN,
        PAGE_H - (SAFE.y1 - 0.55 * IN)
    );
    let plate = 1.6 * IN;
    let text_right = if logo.is_some() {
        SAFE.x1 - plate - 0.3 * IN
    } else {
        SAFE.x1
    };
    if logo.is_some() {
        let (x, y) = (SAFE.x1 - plate, SAFE.y0 + 0.2 * IN);
        let pad = 0.15 * IN;
        svg.push_str(&format!(
            "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{plate:.2}\" height=\"{plate:.2}\" rx=\"8\" fill=\"#ffffff\"/>\n\
             <image href=\"{LOGO}\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" preserveAspectRatio=\"xMidYMid meet\"/>\n",
            x + pad,
            y + pad,
            plate - 2.0 * pad,
            plate - 2.0 * pad
        ));
    }
    let width = text_right - SAFE.x0;
    let height = SAFE.y1 - 0.75 * IN - SAFE.y0;
    let block = bold.fit(
        text,
        &[30.0, 26.0, 22.0, 18.0, 15.0, 12.0],
        width,
        height,
        "front text",
    )?;
    let mut y = SAFE.y0 + (height - block.lines.len() as f32 * block.leading) / 2.0;
    for line in &block.lines {
        y += block.leading;
        svg.push_str(&svg_line(
            SAFE.x0,
            y - block.leading * 0.2,
            block.size,
            true,
            "#ffffff",
            line,
        ));
    }
    let foot = if card.return_address.len() > 1 {
        format!(
            "{}  ·  {}",
            card.business,
            card.return_address[1..].join(", ")
        )
    } else {
        card.business.clone()
    };
    let foot = bold.wrap(&foot, 9.0, SAFE.width());
    if let Some(line) = foot.first() {
        svg.push_str(&svg_line(
            SAFE.x0,
            SAFE.y1 - 0.2 * IN,
            9.0,
            false,
            "#ffffff",
            line,
        ));
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}
