//! Country names for the last line of an address that goes abroad: the ISO 3166-1
//! English short name in capitals, as the USPS asks of outbound mail, from a code
//! (`GB`, `GBR`) or a name as a contact list holds it.

/// The country `text` names, as its ISO 3166-1 alpha-2 code; `None` when it names none.
pub fn code(text: &str) -> Option<&'static str> {
    let text = text.trim();
    let found = match text.len() {
        2 => rust_iso3166::from_alpha2(&text.to_ascii_uppercase()),
        3 => rust_iso3166::from_alpha3(&text.to_ascii_uppercase()),
        _ => None,
    }
    .or_else(|| {
        rust_iso3166::ALL.iter().copied().find(|c| {
            c.name.eq_ignore_ascii_case(text) || short_name(c.name).eq_ignore_ascii_case(text)
        })
    });
    found.map(|c| c.alpha2)
}

/// The line an address abroad ends with: the country's English name in capitals, or
/// `text` itself in capitals when it names no country the standard knows.
pub fn line(text: &str) -> String {
    let name = match code(text) {
        // The standard's short name here is the formal style, longer than an address
        // line; postal services write the common name.
        Some("GB") => "United Kingdom",
        Some(alpha2) => rust_iso3166::from_alpha2(alpha2).map_or(text, |c| short_name(c.name)),
        None => text.trim(),
    };
    name.to_uppercase()
}

/// Whether `a` and `b` name the same country (`US`, `USA` and `United States of
/// America` do); text that names no country is compared as written.
pub fn same(a: &str, b: &str) -> bool {
    match (code(a), code(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

/// `name` without its qualifier in brackets (`Bolivia (Plurinational State of)` is
/// `Bolivia`), unless another country shares what is left (`Korea (Republic of)`).
fn short_name(name: &'static str) -> &'static str {
    let Some((base, _)) = name.split_once(" (") else {
        return name;
    };
    let shared = rust_iso3166::ALL
        .iter()
        .filter(|c| {
            c.name
                .strip_prefix(base)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(" ("))
        })
        .count();
    if shared > 1 { name } else { base }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_countries_in_capitals_from_codes_or_names() {
        assert_eq!(line("GB"), "UNITED KINGDOM");
        assert_eq!(line("gbr"), "UNITED KINGDOM");
        assert_eq!(line("DE"), "GERMANY");
        assert_eq!(line("Spain"), "SPAIN");
        assert_eq!(line("BO"), "BOLIVIA");
        assert_eq!(line("NL"), "NETHERLANDS");
        assert_eq!(line("KR"), "KOREA (REPUBLIC OF)");
        assert_eq!(line("CD"), "CONGO (DEMOCRATIC REPUBLIC OF THE)");
        assert_eq!(line("Atlantis"), "ATLANTIS");
    }

    #[test]
    fn a_code_and_a_name_of_one_country_are_the_same_country() {
        assert!(same("US", "USA"));
        assert!(same("us", "United States of America"));
        assert!(!same("US", "CA"));
        assert!(same("Atlantis", "atlantis"));
    }
}
