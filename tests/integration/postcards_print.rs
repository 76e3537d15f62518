//! Postcards as the print shop and the post office check them: each card rendered to
//! pixels (`pdftoppm`) and read back (`pdftotext -bbox`). On the message side no ink
//! falls in the ink-free address zone but the recipient's own words, none in the bottom
//! 5/8 in, the postage area or within 1/8 in of the trim; the front carries the
//! business's colour and keeps its text inside the cut. Shipped cards and hostile ones
//! (long names and streets, UTF-8, an address abroad, a missing logo).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{Workspace, copy_dir, skipping};

/// Points per inch; the page is the 6 x 4 in card with 1/8 in of bleed.
const IN: f32 = 72.0;
const BLEED: f32 = 9.0;
const TRIM_W: f32 = 432.0;
const TRIM_H: f32 = 288.0;
/// pdftoppm's resolution: pixels per inch.
const DPI: f32 = 100.0;

/// A rectangle in points on the page: left, top, right, bottom.
type Area = [f32; 4];

const CLEAR: Area = [
    BLEED + TRIM_W - 3.2835 * IN,
    BLEED + TRIM_H - 2.375 * IN,
    2.0 * BLEED + TRIM_W,
    2.0 * BLEED + TRIM_H,
];
const BARCODE: Area = [
    0.0,
    BLEED + TRIM_H - 0.625 * IN,
    2.0 * BLEED + TRIM_W,
    2.0 * BLEED + TRIM_H,
];
const POSTAGE: Area = [
    BLEED + TRIM_W - 1.25 * IN,
    0.0,
    2.0 * BLEED + TRIM_W,
    BLEED + IN,
];
/// Inside 1/8 in of the trim: where a card may have ink at all.
const INSIDE: Area = [
    BLEED + 0.125 * IN,
    BLEED + 0.125 * IN,
    BLEED + TRIM_W - 0.125 * IN,
    BLEED + TRIM_H - 0.125 * IN,
];

/// Whether poppler's tools are here; under CI their absence fails the test.
fn poppler() -> bool {
    let here = Command::new("pdftoppm").arg("-v").output().is_ok();
    if !here {
        assert!(
            std::env::var_os("CI").is_none(),
            "pdftoppm (poppler-utils) is missing"
        );
        skipping("the pixel checks: pdftoppm (poppler-utils) is not installed");
    }
    here
}

/// One page as grey pixels, one byte each, rows top to bottom.
struct Raster {
    width: usize,
    height: usize,
    grey: Vec<u8>,
    /// The same page in colour, three bytes a pixel.
    rgb: Vec<u8>,
}

fn raster(pdf: &Path, page: usize, out: &Path) -> Raster {
    let read = |gray: bool| {
        let prefix = out.join(format!("p{page}{}", if gray { "g" } else { "c" }));
        let mut args = vec!["-r".to_owned(), DPI.to_string()];
        if gray {
            args.push("-gray".into());
        }
        for a in [
            "-f",
            &page.to_string(),
            "-l",
            &page.to_string(),
            "-singlefile",
        ] {
            args.push(a.into());
        }
        let status = Command::new("pdftoppm")
            .args(&args)
            .arg(pdf)
            .arg(&prefix)
            .status()
            .expect("pdftoppm");
        assert!(status.success());
        let file = prefix.with_extension(if gray { "pgm" } else { "ppm" });
        let bytes = std::fs::read(&file).expect("raster");
        // "P5\nW H\n255\n" then the pixels.
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            let end = at
                + bytes[at..]
                    .iter()
                    .position(|b| b.is_ascii_whitespace())
                    .unwrap();
            if end > at {
                fields.push(String::from_utf8_lossy(&bytes[at..end]).into_owned());
            }
            at = end + 1;
        }
        let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        (w, h, bytes[at..].to_vec())
    };
    let (width, height, grey) = read(true);
    let (_, _, rgb) = read(false);
    Raster {
        width,
        height,
        grey,
        rgb,
    }
}

impl Raster {
    /// Pixels darker than paper inside `area` and outside every one of `allowed`.
    fn ink(&self, area: Area, allowed: &[Area]) -> Vec<(f32, f32)> {
        let px = DPI / IN;
        let mut found = Vec::new();
        for y in 0..self.height {
            for x in 0..self.width {
                let (pt_x, pt_y) = ((x as f32 + 0.5) / px, (y as f32 + 0.5) / px);
                let inside = |a: &Area| pt_x >= a[0] && pt_x < a[2] && pt_y >= a[1] && pt_y < a[3];
                if inside(&area)
                    && !allowed.iter().any(inside)
                    && self.grey[y * self.width + x] < 230
                {
                    found.push((pt_x, pt_y));
                }
            }
        }
        found
    }

    /// The share of the page printed in `colour` (within a small tolerance).
    fn share_of(&self, colour: [u8; 3]) -> f32 {
        let hits = self
            .rgb
            .chunks(3)
            .filter(|p| (0..3).all(|i| p[i].abs_diff(colour[i]) < 12))
            .count();
        hits as f32 / (self.width * self.height) as f32
    }
}

/// A word on the page and its box in points.
#[derive(Debug)]
struct Word {
    text: String,
    area: Area,
}

fn words(pdf: &Path, page: usize) -> Vec<Word> {
    let out = Command::new("pdftotext")
        .args(["-bbox", "-f", &page.to_string(), "-l", &page.to_string()])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext");
    let html = String::from_utf8_lossy(&out.stdout).into_owned();
    let attr = |tag: &str, name: &str| -> f32 {
        let at = tag.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
        tag[at..at + tag[at..].find('"').unwrap()].parse().unwrap()
    };
    html.split("<word ")
        .skip(1)
        .map(|chunk| {
            let (tag, rest) = chunk.split_once('>').unwrap();
            let text = rest.split_once("</word>").unwrap().0;
            let text = text
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'");
            let area = [
                attr(tag, "xMin"),
                attr(tag, "yMin"),
                attr(tag, "xMax"),
                attr(tag, "yMax"),
            ];
            Word { text, area }
        })
        .collect()
}

/// The words inside `area`, as lines (top to bottom) of words (left to right).
fn lines_in(words: &[Word], area: Area) -> Vec<String> {
    let mut inside: Vec<&Word> = words
        .iter()
        .filter(|w| w.area[0] >= area[0] && w.area[1] >= area[1])
        .collect();
    inside.sort_by(|a, b| {
        (a.area[1], a.area[0])
            .partial_cmp(&(b.area[1], b.area[0]))
            .unwrap()
    });
    let mut lines: Vec<(f32, Vec<&str>)> = Vec::new();
    for w in inside {
        match lines.last_mut() {
            Some((y, line)) if (w.area[1] - *y).abs() < 2.0 => line.push(&w.text),
            _ => lines.push((w.area[1], vec![&w.text])),
        }
    }
    lines.into_iter().map(|(_, l)| l.join(" ")).collect()
}

/// Checks both sides of every card in `pdf` and returns the address lines of each.
fn check_cards(pdf: &Path, colour: [u8; 3]) -> Vec<Vec<String>> {
    let scratch = tempfile::tempdir().expect("dir");
    let pages = lopdf::Document::load(pdf).expect("pdf").get_pages().len();
    let mut addresses = Vec::new();
    for front in (1..=pages).step_by(2) {
        let back = front + 1;
        let card = format!("{} card {}", pdf.display(), front / 2 + 1);

        let face = raster(pdf, front, scratch.path());
        assert!(
            face.share_of(colour) > 0.25,
            "{card}: the front is not in the business's colour"
        );
        for w in words(pdf, front) {
            let [x0, y0, x1, y1] = w.area;
            assert!(
                x0 >= INSIDE[0] && y0 >= INSIDE[1] && x1 <= INSIDE[2] && y1 <= INSIDE[3],
                "{card}: front text {w:?} within 1/8 in of the trim"
            );
        }

        let side = raster(pdf, back, scratch.path());
        let text = words(pdf, back);
        let recipient: Vec<Area> = text
            .iter()
            .filter(|w| w.area[0] >= CLEAR[0] - 1.0 && w.area[1] >= CLEAR[1] - 1.0)
            // Accents on capitals (Ó) rise a little above the word's box.
            .map(|w| {
                [
                    w.area[0] - 1.5,
                    w.area[1] - 3.0,
                    w.area[2] + 1.5,
                    w.area[3] + 1.5,
                ]
            })
            .collect();
        assert!(
            !recipient.is_empty(),
            "{card}: no address in the clear zone"
        );
        let stray = side.ink(CLEAR, &recipient);
        assert!(
            stray.is_empty(),
            "{card}: ink in the clear zone at {:?}",
            &stray[..stray.len().min(5)]
        );
        let low = side.ink(BARCODE, &[]);
        assert!(
            low.is_empty(),
            "{card}: ink in the bottom 5/8 in at {:?}",
            &low[..low.len().min(5)]
        );
        let stamp = side.ink(POSTAGE, &[]);
        assert!(stamp.is_empty(), "{card}: ink in the postage area");
        let page = [0.0, 0.0, 2.0 * BLEED + TRIM_W, 2.0 * BLEED + TRIM_H];
        let edge = side.ink(page, &[INSIDE]);
        assert!(
            edge.is_empty(),
            "{card}: ink within 1/8 in of the trim at {:?}",
            &edge[..edge.len().min(5)]
        );
        // Message text stays left of the clear zone.
        for w in &text {
            if !recipient
                .iter()
                .any(|r| r[0] <= w.area[0] && r[1] <= w.area[1])
            {
                assert!(
                    w.area[2] <= CLEAR[0],
                    "{card}: {w:?} reaches into the clear zone"
                );
            }
        }
        addresses.push(lines_in(&text, CLEAR));
    }
    addresses
}

/// The shipped configuration, cadences, templates and example data: every
/// maintenance card of the example's busiest day passes the checks.
#[test]
fn the_shipped_cards_keep_the_zones_and_carry_the_business_design() {
    if !poppler() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("dir");
    for sub in ["config", "templates", "examples"] {
        copy_dir(&root.join(sub), &dir.path().join(sub));
    }
    let run = crate::helpers::tickler_in(
        dir.path(),
        &["--config", "config/tickler.yaml"],
        &["tick", "--now", "2026-11-23T10:00:00-05:00"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let day = dir.path().join("var/postcards/2026-11-23");
    let batch = day.join("batch-2026-11-23.pdf");
    let addresses = check_cards(&batch, [0x2f, 0x55, 0x66]);
    assert!(!addresses.is_empty());

    // The card says which repetition it is, on both sides.
    let text = pdftotext(&batch);
    let days: Vec<&str> = text
        .split("It has been ")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(days.len(), addresses.len(), "{text}");
    for d in days {
        let n: u32 = d.parse().expect("a number of days");
        assert_eq!(n % 90, 0, "{n}");
        assert!(
            text.contains(&format!("{n}-day grout")),
            "the front says {n} days too"
        );
    }
}

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const HOSTILE: &str = "\
id,first_name,last_name,address_line1,address_line2,city,region,postal_code,country
H-1,Maximiliane-Josephine,Wolfeschlegelsteinhausenbergerdorff-Ó'Súilleabháin,Unit 1205 The Extraordinarily Long Building Name Residences,1234567 Very Long Boulevard Northwest,Rancho Santa Margarita,CA,92688-1234,US
H-2,Ωμέγα,Łódź-Żółć,ul. Piotrkowska 120/122 lok. 15,,Łódź,,90-006,PL
H-3,Ada,Lovelace,Flat 3,12 Upper Street,London,,N1 2JT,GB
H-4,Eve,Hacker,mailbox.evil.example.subdomain.overlong-identifier.invalid,,Troy,NY,12180,US
";

pub(crate) fn hostile_workspace() -> Workspace {
    let ws = Workspace::new(None);
    ws.write(
        "cadences.yaml",
        "cadences:\n  - id: card\n    channel: postcard\n    template: card\n    trigger: { after: purchase, delay: 2d }\n",
    );
    ws.write(
        "templates/card.postcard.hbs",
        &format!(
            "Dear {{{{contact.first_name}}}} {{{{contact.last_name}}}},\n\n{}\n\n{{{{business.name}}}}",
            "Thank you for choosing us; your floor was a pleasure to lay. ".repeat(4)
        ),
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("config/logo.svg"), ws.path("logo.svg")).expect("logo");
    let yaml = std::fs::read_to_string(ws.path("tickler.yaml"))
        .unwrap()
        .replace(
            "  timezone: America/New_York\n",
            "  timezone: America/New_York\n  logo: logo.svg\n  colour: \"#7a2e3b\"\n",
        );
    ws.write("tickler.yaml", &yaml);
    ws.write("contacts.csv", HOSTILE);
    let mut events = String::from("id,contact_id,kind,at\n");
    for line in HOSTILE.lines().skip(1) {
        let id = line.split(',').next().unwrap();
        events.push_str(&format!("E-{id},{id},purchase,2026-03-02\n"));
    }
    ws.write("events.csv", &events);
    ws.import_all();
    ws
}

#[test]
fn hostile_addresses_wrap_at_words_stay_in_their_zone_and_go_abroad_with_the_country() {
    if !poppler() {
        return;
    }
    let ws = hostile_workspace();
    ws.tickler(&["check"]).ok();
    let run = ws
        .tickler(&["tick", "--now", "2026-03-04T10:00:00-05:00"])
        .ok();
    assert!(run.stdout.starts_with("sent=4 failed=0"), "{}", run.stdout);
    let batch: PathBuf = ws.path("state/postcards/2026-03-04/batch-2026-03-04.pdf");
    let addresses = check_cards(&batch, [0x7a, 0x2e, 0x3b]);
    assert_eq!(addresses.len(), 4);

    // Long words wrap whole; a word longer than the line is broken with a hyphen.
    let h1 = addresses[0].join("\n");
    for word in ["Extraordinarily", "Residences", "Northwest", "Margarita"] {
        assert!(
            h1.split_whitespace()
                .any(|w| w.trim_end_matches(',') == word),
            "{word} broken:\n{h1}"
        );
    }
    let h4 = &addresses[3];
    let pieces: Vec<&String> = h4.iter().filter(|l| l.ends_with('-')).collect();
    assert!(
        !pieces.is_empty(),
        "the overlong word is hyphenated: {h4:?}"
    );
    let rejoined: String = h4[1..].iter().map(|l| l.trim_end_matches('-')).collect();
    assert!(
        rejoined.contains("mailbox.evil.example.subdomain.overlong"),
        "{h4:?}"
    );

    // UTF-8 as written; abroad, the country's name in capitals ends the block; at
    // home, no country line.
    let h2 = &addresses[1];
    assert!(h2.join(" ").contains("Łódź-Żółć"), "{h2:?}");
    assert_eq!(h2.last().map(String::as_str), Some("POLAND"), "{h2:?}");
    let h3 = &addresses[2];
    assert_eq!(
        h3.iter().map(String::as_str).collect::<Vec<_>>(),
        [
            "Ada Lovelace",
            "Flat 3",
            "12 Upper Street",
            "N1 2JT London",
            "UNITED KINGDOM"
        ]
    );
    assert!(
        h1.ends_with("Rancho Santa Margarita, CA 92688-1234"),
        "{h1}"
    );
}

#[test]
fn a_missing_logo_is_a_check_error_and_a_failed_send_not_a_panic() {
    let ws = hostile_workspace();
    std::fs::remove_file(ws.path("logo.svg")).unwrap();
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("tickler.yaml:")
            && run.stderr.contains("business.logo")
            && run.stderr.contains("logo.svg"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    let run = ws.tickler(&["tick", "--now", "2026-03-04T10:00:00-05:00"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let sends = ws.sends();
    assert!(sends.iter().all(|s| s["status"] == "failed"), "{sends:?}");
    assert!(
        sends
            .iter()
            .all(|s| s["reason"].as_str().unwrap_or("").contains("logo.svg")),
        "{sends:?}"
    );

    // A logo that is not a picture at all, or an SVG nested without end, is refused
    // by check with the reason.
    ws.write("logo.svg", &format!("<svg>{}</svg>", "<g>".repeat(5000)));
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("deep"), "{}", run.stderr);
}
