//! A postcard's content: everything printed on it, kept beside its PDF as JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::PostalAddress;

/// Everything printed on one card; also kept as JSON beside the PDF, so that the day's
/// combined PDF can be set again without the database.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Card {
    /// The send record's id (0 in previews).
    pub send_id: i64,
    pub contact: String,
    pub cadence: String,
    pub name: String,
    pub address: PostalAddress,
    /// The sender's country: the country line is printed only for cards going abroad.
    pub home_country: String,
    pub business: String,
    pub return_address: Vec<String>,
    /// The rendered `T.postcard.hbs`.
    pub message: String,
    /// The rendered `T.front.hbs`, when the template has one: an SVG document (a
    /// designed front), or text set on tickler's own design.
    pub front: Option<String>,
    /// The cadence's `front_image`, which wins over the front text.
    pub front_image: Option<PathBuf>,
    /// The business's logo, for the front.
    #[serde(default)]
    pub logo: Option<Logo>,
    /// The business's colour (`#rrggbb`), for the front and the return address.
    #[serde(default = "default_colour")]
    pub colour: String,
}

/// A logo file and the name a front template places it by (`{{business.logo}}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Logo {
    pub name: String,
    pub path: PathBuf,
}

fn default_colour() -> String {
    crate::config::Colour::DEFAULT.to_owned()
}

impl Card {
    /// The recipient block: name, then the address lines.
    pub fn address_block(&self) -> Vec<String> {
        let mut lines = vec![self.name.clone()];
        lines.extend(self.address.lines(&self.home_country));
        lines
    }

    /// All text the card prints, to check that the font can show it.
    pub(super) fn all_text(&self) -> String {
        let mut all = self.address_block().join("\n");
        for part in [&self.message, &self.business] {
            all.push('\n');
            all.push_str(part);
        }
        // A designed front is markup; its text is checked once it is parsed.
        let front = self.front.as_ref().filter(|f| !super::front::is_svg(f));
        for part in self.return_address.iter().chain(front) {
            all.push('\n');
            all.push_str(part);
        }
        all
    }

    /// The PDF's file name: the send id first (unique, and the print order), then
    /// cadence and contact for the eye.
    pub fn file_name(&self) -> String {
        let readable: String = format!("{}-{}", self.cadence, self.contact)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        format!("{:06}-{readable}.pdf", self.send_id)
    }
}
