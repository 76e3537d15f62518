//! A postal address: the business's, on every commercial email and card, and a
//! contact's, on the postcards it is sent.

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PostalAddress {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
}

impl PostalAddress {
    /// The address as lines for an envelope or a card: street lines, then
    /// `City, REGION POSTAL` where there is a region (North American style), else
    /// `POSTAL City`; when the card leaves `home` (the sender's country), the country's
    /// English name in capitals last.
    pub fn lines(&self, home: &str) -> Vec<String> {
        let (city, region, postal) = (
            self.city.trim(),
            self.region.trim(),
            self.postal_code.trim(),
        );
        let place = if region.is_empty() {
            format!("{postal} {city}")
        } else {
            format!("{city}, {region} {postal}")
        };
        let country = self.country.trim();
        let abroad = !country.is_empty() && !super::country::same(country, home);
        let country = if abroad {
            super::country::line(country)
        } else {
            String::new()
        };
        [
            self.line1.trim(),
            self.line2.trim(),
            place.trim(),
            country.as_str(),
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
        .collect()
    }

    /// The address on one line: `12 River St, Albany, NY 12207, US`.
    pub fn one_line(&self) -> String {
        let region_postal = [self.region.as_str(), self.postal_code.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        [
            self.line1.as_str(),
            self.line2.as_str(),
            self.city.as_str(),
            region_postal.as_str(),
            self.country.as_str(),
        ]
        .iter()
        .filter(|s| !s.trim().is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
    }
}
