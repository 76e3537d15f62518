//! Setting text on a card: the embedded fonts, glyph widths, wrapping at word
//! boundaries (a word longer than the line is broken with a hyphen), fitting a block
//! into its zone by shrinking it down to a minimum size, and escaping text for SVG.

/// DejaVu Sans and its bold (Bitstream Vera licence, assets/fonts/DejaVuSans.LICENSE):
/// Latin, Greek and Cyrillic, so that names print as written.
pub(super) static REGULAR: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
pub(super) static BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");
/// The family name both files carry, as SVG names it.
pub(super) const FAMILY: &str = "DejaVu Sans";

/// Lines set at `size` points, `leading` apart.
pub(super) struct Block {
    pub lines: Vec<String>,
    pub size: f32,
    pub leading: f32,
}

/// Widths of the font's glyphs, to wrap lines and to refuse text it cannot show.
pub(super) struct Metrics<'a> {
    face: ttf_parser::Face<'a>,
    units_per_em: f32,
}

impl Metrics<'static> {
    pub fn regular() -> Metrics<'static> {
        Metrics::of(REGULAR)
    }

    pub fn bold() -> Metrics<'static> {
        Metrics::of(BOLD)
    }

    fn of(data: &'static [u8]) -> Metrics<'static> {
        let face = ttf_parser::Face::parse(data, 0).expect("the embedded font parses");
        let units_per_em = f32::from(face.units_per_em());
        Metrics { face, units_per_em }
    }
}

impl Metrics<'_> {
    pub fn width(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text
            .chars()
            .filter_map(|c| self.face.glyph_index(c))
            .map(|g| u32::from(self.face.glyph_hor_advance(g).unwrap_or(0)))
            .sum();
        units as f32 * size / self.units_per_em
    }

    /// Characters of `text` that the font has no glyph for.
    pub fn missing(&self, text: &str) -> Vec<char> {
        let mut missing: Vec<char> = text
            .chars()
            .filter(|c| !c.is_whitespace() && self.face.glyph_index(*c).is_none())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Breaks `text` into lines no wider than `width`, at spaces; a word wider than a
    /// line alone is broken with a hyphen at the end of each piece but its last.
    /// Paragraphs stay apart; blank lines between them are kept.
    pub fn wrap(&self, text: &str, size: f32, width: f32) -> Vec<String> {
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
                if self.width(word, size) <= width {
                    line = word.to_owned();
                    continue;
                }
                for c in word.chars() {
                    let longer = format!("{line}{c}-");
                    if self.width(&longer, size) > width && !line.is_empty() {
                        lines.push(format!("{}-", std::mem::take(&mut line)));
                    }
                    line.push(c);
                }
            }
            lines.push(line);
        }
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }

    /// `text` at the largest of `sizes` (largest first) at which its lines fit a box
    /// of `width` x `height`; else why not, at the smallest size.
    pub fn fit(
        &self,
        text: &str,
        sizes: &[f32],
        width: f32,
        height: f32,
        what: &str,
    ) -> Result<Block, String> {
        for &size in sizes {
            let lines = self.wrap(text, size, width);
            let leading = size * 1.25;
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
            self.wrap(text, smallest, width).len(),
            (height / (smallest * 1.25)).floor()
        ))
    }
}

/// `text` as SVG character data: markup escaped, and the control characters XML cannot
/// hold dropped.
pub(super) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One line of text at (`x`, `y`), `y` its baseline, in points.
pub(super) fn svg_line(x: f32, y: f32, size: f32, bold: bool, fill: &str, text: &str) -> String {
    let weight = if bold { " font-weight=\"bold\"" } else { "" };
    format!(
        "<text x=\"{x:.2}\" y=\"{y:.2}\" font-family=\"{FAMILY}\" font-size=\"{size}\"{weight} fill=\"{fill}\">{}</text>\n",
        xml(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_hyphenates_only_overlong_words() {
        let metrics = Metrics::regular();
        let lines = metrics.wrap("one two three four five six", 10.0, 60.0);
        assert!(lines.len() > 1, "{lines:?}");
        assert!(lines.iter().all(|l| metrics.width(l, 10.0) <= 60.0));
        assert_eq!(lines.join(" "), "one two three four five six");
        let long = "x".repeat(200);
        let lines = metrics.wrap(&long, 10.0, 60.0);
        assert!(lines.len() > 2);
        assert!(lines[..lines.len() - 1].iter().all(|l| l.ends_with('-')));
        assert_eq!(lines.concat().replace('-', ""), long);
        assert!(lines.iter().all(|l| metrics.width(l, 10.0) <= 60.0));
    }

    #[test]
    fn a_word_that_fits_moves_to_the_next_line_whole() {
        let metrics = Metrics::regular();
        let lines = metrics.wrap("ab cdefgh", 10.0, metrics.width("ab cdef", 10.0));
        assert_eq!(lines, ["ab", "cdefgh"]);
    }

    #[test]
    fn knows_which_characters_it_cannot_print() {
        let metrics = Metrics::regular();
        assert!(
            metrics
                .missing("José Zoë Øresund Łódź Ωμέγα Москва")
                .is_empty()
        );
        assert_eq!(metrics.missing("東京 ok"), vec!['京', '東']);
    }

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(
            xml("A & B <c> \"d\"\u{7}"),
            "A &amp; B &lt;c&gt; &quot;d&quot;"
        );
    }
}
