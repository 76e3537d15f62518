//! Postcards as a print shop gets them: the day's directory with one PDF per card, the
//! combined PDF and the manifest; pages of 6.25 x 4.25 in with the 6 x 4 in card
//! trimmed out of them, every font embedded, names and addresses in the text as written.
//! The PDFs are read back with lopdf.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lopdf::{Document, Object};

use crate::helpers::Workspace;

const NOW: &str = "2026-03-04T10:00:00-05:00";
const DAY: &str = "state/postcards/2026-03-04";

const CONTACTS: &str = "\
id,first_name,last_name,email,address_line1,address_line2,city,region,postal_code,country,postcard_opt_out
P-1,José,Álvarez,,Calle Mayor 5,2º izq.,Madrid,,28013,ES,
P-2,Zoë,Brontë,,Øresundsvej 4,,København S,,2300,DK,
P-3,Łucja,Wiśniewska,,ul. Piotrkowska 12,,Łódź,,90-001,PL,
P-4,Sam,Carter,,77 Elm St,Apt 2,Troy,NY,12180,US,
P-5,Ned,Nowhere,ned@example.com,,,,,,,
P-6,Olga,Out,,3 Quiet Ln,,Troy,NY,12180,US,true
";

/// A workspace with a postcard cadence and purchases two days before NOW.
fn postcard_workspace(contacts: &str) -> Workspace {
    let ws = Workspace::new(None);
    ws.write(
        "cadences.yaml",
        "cadences:\n  - id: card\n    channel: postcard\n    template: card\n    trigger: { after: purchase, delay: 2d }\n",
    );
    ws.write(
        "templates/card.postcard.hbs",
        "Dear {{contact.first_name}},\n\nthank you for choosing {{business.name}}. \
         Your {{default event.fields.item \"order\"}} was a pleasure to fit.\n\nSee you soon!",
    );
    ws.write("templates/card.front.hbs", "{{business.name}}\nThank you!");
    ws.write("contacts.csv", contacts);
    let mut events = String::from("id,contact_id,kind,at,item\n");
    for line in contacts.lines().skip(1) {
        let id = line.split(',').next().expect("id");
        events.push_str(&format!("E-{id},{id},purchase,2026-03-02,tiles\n"));
    }
    ws.write("events.csv", &events);
    ws.import_all();
    ws.tickler(&["check"]).ok();
    ws
}

/// What a PDF says about itself.
struct Pdf {
    pages: usize,
    /// MediaBox, TrimBox and BleedBox of every page.
    boxes: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>,
    /// Names of fonts without an embedded font program.
    unembedded: Vec<String>,
    fonts: usize,
    text: String,
}

fn numbers(doc: &Document, object: &Object) -> Vec<f32> {
    let (_, object) = doc.dereference(object).expect("box");
    object
        .as_array()
        .expect("box array")
        .iter()
        .map(|n| n.as_float().expect("number"))
        .collect()
}

fn dict<'a>(doc: &'a Document, object: &'a Object) -> &'a lopdf::Dictionary {
    doc.dereference(object)
        .expect("reference")
        .1
        .as_dict()
        .expect("dictionary")
}

fn read_pdf(path: &Path) -> Pdf {
    let doc = Document::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pages = doc.get_pages();
    let mut boxes = Vec::new();
    let mut unembedded = Vec::new();
    let mut fonts = 0;
    for &id in pages.values() {
        let page = doc.get_dictionary(id).expect("page");
        let get = |name: &[u8]| numbers(&doc, page.get(name).expect("page box"));
        let these = (get(b"MediaBox"), get(b"TrimBox"), get(b"BleedBox"));
        if !boxes.contains(&these) {
            boxes.push(these);
        }
        for (_, font) in doc.get_page_fonts(id).expect("fonts") {
            fonts += 1;
            let name = String::from_utf8_lossy(
                font.get(b"BaseFont")
                    .and_then(Object::as_name)
                    .unwrap_or(b"?"),
            )
            .into_owned();
            let described = match font.get(b"DescendantFonts") {
                Ok(descendants) => {
                    let (_, list) = doc.dereference(descendants).expect("descendants");
                    dict(&doc, &list.as_array().expect("array")[0]).clone()
                }
                Err(_) => font.clone(),
            };
            let embedded = described.get(b"FontDescriptor").is_ok_and(|d| {
                let d = dict(&doc, d);
                [&b"FontFile"[..], b"FontFile2", b"FontFile3"]
                    .iter()
                    .any(|k| d.has(k))
            });
            if !embedded {
                unembedded.push(name);
            }
        }
    }
    let numbers: Vec<u32> = pages.keys().copied().collect();
    // lopdf ends a line after each separately placed glyph; the card's lines are
    // whole again without those breaks.
    let text = doc.extract_text(&numbers).expect("text").replace('\n', "");
    Pdf {
        pages: pages.len(),
        boxes,
        unembedded,
        fonts,
        text,
    }
}

fn manifest(ws: &Workspace) -> Vec<csv::StringRecord> {
    let mut reader =
        csv::Reader::from_path(ws.path(&format!("{DAY}/manifest.csv"))).expect("manifest");
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        [
            "send_id",
            "contact_id",
            "cadence",
            "name",
            "address_line1",
            "address_line2",
            "city",
            "region",
            "postal_code",
            "country",
            "file"
        ]
    );
    reader.records().map(|r| r.expect("row")).collect()
}

fn card_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("day directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".pdf") && !name.starts_with("batch-")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_days_postcards_are_print_ready_pdfs_with_a_manifest_and_one_combined_file() {
    let ws = postcard_workspace(CONTACTS);
    let run = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=4 failed=0 retrying=0 skipped=2 deferred=0"
    );

    let sends = ws.sends();
    let reason = |id: &str| {
        let s = sends.iter().find(|s| s["contact"] == id).expect("send");
        (
            s["status"].as_str().unwrap().to_owned(),
            s["reason"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(reason("P-5"), ("skipped".into(), "no_address".into()));
    assert_eq!(reason("P-6"), ("skipped".into(), "opted_out".into()));

    let rows = manifest(&ws);
    let names: Vec<&str> = rows.iter().map(|r| &r[3]).collect();
    assert_eq!(
        names,
        [
            "José Álvarez",
            "Zoë Brontë",
            "Łucja Wiśniewska",
            "Sam Carter"
        ]
    );
    let day = ws.path(DAY);
    let files = card_files(&day);
    assert_eq!(files.len(), 4, "{files:?}");
    for (row, file) in rows.iter().zip(&files) {
        assert_eq!(day.join(&row[10]), *file);
        let sent = sends
            .iter()
            .find(|s| s["contact"] == row[1])
            .expect("its send");
        assert_eq!(sent["status"], "sent");
        assert!(
            sent["reply"]
                .as_str()
                .is_some_and(|r| r.ends_with(&row[10])),
            "{sent}"
        );

        let pdf = read_pdf(file);
        assert_eq!(pdf.pages, 2, "front and message side");
        // 6.25 x 4.25 in pages; the 6 x 4 in card 0.125 in inside each edge.
        let page = vec![0.0, 0.0, 450.0, 306.0];
        let trim = vec![9.0, 9.0, 441.0, 297.0];
        assert_eq!(pdf.boxes, [(page.clone(), trim, page)]);
        assert!(pdf.fonts > 0);
        assert!(
            pdf.unembedded.is_empty(),
            "not embedded: {:?}",
            pdf.unembedded
        );
        for expected in [&row[3], &row[4], &row[6], &row[8]] {
            assert!(
                pdf.text.contains(expected),
                "{expected:?} not in the text of {}:\n{}",
                file.display(),
                pdf.text
            );
        }
        assert!(pdf.text.contains("Fjord & Field Tiles"), "return address");
        assert!(pdf.text.contains("1 Harbour St"), "return address");
    }
    // Abroad cards carry the country; the one staying home does not.
    let spain = read_pdf(&files[0]).text;
    assert!(spain.contains("SPAIN"), "{spain}");
    let home = read_pdf(&files[3]).text;
    assert!(home.contains("Troy, NY 12180"), "{home}");

    let combined = read_pdf(&day.join("batch-2026-03-04.pdf"));
    assert_eq!(combined.pages, 8);
    assert!(combined.unembedded.is_empty());
    for name in names {
        assert!(
            combined.text.contains(name),
            "{name} not in the combined PDF"
        );
    }

    // A later tick the same day adds to the batch, and nothing is written twice.
    ws.write(
        "events.csv",
        &format!(
            "{}E-2,P-4,purchase,2026-03-03,mosaic\n",
            std::fs::read_to_string(ws.path("events.csv")).unwrap()
        ),
    );
    ws.tickler(&["import", "events", "events.csv"]).ok();
    let run = ws
        .tickler(&["tick", "--now", "2026-03-05T10:00:00-05:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let next = ws.path("state/postcards/2026-03-05");
    assert_eq!(card_files(&next).len(), 1);
    assert_eq!(read_pdf(&next.join("batch-2026-03-05.pdf")).pages, 2);
    assert_eq!(manifest(&ws).len(), 4, "the first day's batch is unchanged");
}

#[test]
fn preview_writes_the_postcard_pdf() {
    let ws = postcard_workspace(CONTACTS);
    let out = ws.path("preview");
    let run = ws
        .tickler(&[
            "preview",
            "card",
            "P-3",
            "--now",
            NOW,
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
    let file = PathBuf::from(run.stdout.lines().next().expect("the PDF's path"));
    assert!(file.starts_with(&out), "{}", file.display());
    let pdf = read_pdf(&file);
    assert_eq!(pdf.pages, 2);
    assert!(
        pdf.text.contains("Łucja Wiśniewska") && pdf.text.contains("Łódź"),
        "{}",
        pdf.text
    );
    assert!(pdf.text.contains("Dear Łucja"));
    // A preview sends nothing.
    assert!(ws.sends().is_empty());
}

#[test]
fn preview_writes_a_proof_of_each_side_with_the_zones_drawn() {
    let ws = crate::postcards_print::hostile_workspace();
    let out = ws.path("proofs");
    let run = ws
        .tickler(&[
            "preview",
            "card",
            "H-3",
            "--now",
            "2026-03-04",
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
    let files: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(files.len(), 3, "{}", run.stdout);
    assert!(files[0].ends_with(".pdf"));
    for (file, side) in files[1..].iter().zip(["front", "back"]) {
        assert!(file.ends_with(&format!("{side}.png")), "{file}");
        let png = std::fs::read(file).expect("proof");
        assert!(png.starts_with(b"\x89PNG"), "{file}");
        // 6.25 x 4.25 in at 150 pixels per inch.
        let (w, h) = (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
        );
        assert_eq!((w, h), (938, 638), "{file}");
    }
}

#[test]
fn check_refuses_a_message_too_long_for_the_card_or_a_script_the_font_lacks() {
    let ws = postcard_workspace(CONTACTS);
    ws.write(
        "templates/card.postcard.hbs",
        &"All work and no play. ".repeat(200),
    );
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("card.postcard.hbs:1:1:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("does not fit on the card"),
        "{}",
        run.stderr
    );

    ws.write(
        "templates/card.postcard.hbs",
        "ご来店ありがとうございました",
    );
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no glyph for"), "{}", run.stderr);
}

/// `tickler tick` killed at random moments while it writes a day's 150 postcards, then
/// run to the end: every card is in the manifest once, every manifest line has its
/// whole PDF, and the combined PDF holds every card.
#[test]
fn a_crash_while_writing_the_batch_leaves_no_half_card_and_no_line_without_its_pdf() {
    let mut contacts =
        String::from("id,first_name,last_name,address_line1,city,region,postal_code,country\n");
    for i in 0..150 {
        contacts.push_str(&format!(
            "C{i:03},Zoë,Núñez {i},{i} Elm St,Troy,NY,12180,US\n"
        ));
    }
    let ws = postcard_workspace(&contacts);
    let bin = env!("CARGO_BIN_EXE_tickler");
    for round in 0..6 {
        let mut child = std::process::Command::new(bin)
            .current_dir(ws.dir.path())
            .args(["--config", "tickler.yaml", "tick", "--now", NOW])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tickler");
        std::thread::sleep(std::time::Duration::from_millis(150 + fastrand_ms(round)));
        let _ = child.kill();
        let _ = child.wait();
    }
    ws.tickler(&["tick", "--now", NOW]).ok();

    let sends = ws.sends();
    assert_eq!(sends.len(), 150);
    assert!(
        sends.iter().all(|s| s["status"] == "sent"),
        "every card sent"
    );
    let rows = manifest(&ws);
    let ids: BTreeSet<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!((rows.len(), ids.len()), (150, 150), "each card listed once");
    let day = ws.path(DAY);
    for row in &rows {
        let pdf = read_pdf(&day.join(&row[10]));
        assert_eq!(pdf.pages, 2);
        assert!(pdf.text.contains(&row[3]));
    }
    assert_eq!(read_pdf(&day.join("batch-2026-03-04.pdf")).pages, 300);
    // No temporary file of a cut-short write is left behind.
    for dir in [day.clone(), day.join(".cards")] {
        for entry in std::fs::read_dir(&dir).expect("dir") {
            let name = entry.expect("entry").file_name();
            assert!(
                !name.to_string_lossy().ends_with(".tmp"),
                "{name:?} left in {}",
                dir.display()
            );
        }
    }
}

/// Spreads the kills over the run without a random number crate.
fn fastrand_ms(round: u64) -> u64 {
    (round * 7919 + std::process::id() as u64) % 400
}
