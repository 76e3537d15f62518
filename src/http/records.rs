//! An API body as records of text values, read straight from the JSON text: a request
//! never holds more than [`MAX_RECORDS`] records of at most [`MAX_FIELDS`] fields, however
//! many the body carries, and a number that JSON would round (a 30-digit id) is refused
//! instead of stored as something else.

use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::field_errors::{FieldError, FieldErrors};
use crate::sync::Record;

/// Records one request may carry.
pub const MAX_RECORDS: usize = 1000;
/// Fields one record may carry: the known columns and generous room for custom ones.
pub const MAX_FIELDS: usize = 200;
/// Integers up to this magnitude are exact as a JSON float.
const EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

/// The JSON body (one object or an array of them) as records, the way the CSV reader
/// gives them; or every field at fault (the first hundred).
pub fn records(body: &[u8]) -> Result<Vec<Record>, FieldErrors> {
    let mut reader = Reader::default();
    let mut json = serde_json::Deserializer::from_slice(body);
    let parsed = Body(&mut reader)
        .deserialize(&mut json)
        .and_then(|()| json.end());
    if let Some(stop) = reader.stop {
        return Err(stop.into());
    }
    if let Err(e) = parsed {
        return Err(FieldError {
            index: 0,
            field: String::new(),
            message: format!("not JSON: {e}"),
        }
        .into());
    }
    if reader.errors.is_empty() {
        Ok(reader.records)
    } else {
        Err(reader.errors)
    }
}

#[derive(Default)]
struct Reader {
    records: Vec<Record>,
    errors: FieldErrors,
    /// Why reading stopped before the end of the body (a limit), if it did.
    stop: Option<FieldError>,
}

impl Reader {
    /// Ends the read: `serde_json` unwinds with an error that [`records`] replaces by
    /// this one.
    fn stop<E: de::Error>(&mut self, index: usize, message: &str) -> E {
        self.stop = Some(FieldError {
            index,
            field: String::new(),
            message: message.to_owned(),
        });
        E::custom(message)
    }
}

/// The whole body: an object or an array.
struct Body<'r>(&'r mut Reader);

impl<'de> DeserializeSeed<'de> for Body<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(RecordSeed {
                reader: &mut *self.0,
                index,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_record(self.0, 0, map)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self
            .0
            .stop(0, "the body must be an object or an array of objects"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_bool(false)
    }
}

/// Element `index` of the array.
struct RecordSeed<'r> {
    reader: &'r mut Reader,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.index >= MAX_RECORDS {
            // Record 1,001 has started: stop before reading any of it.
            return Err(self.reader.stop(
                self.index,
                "at most 1000 records a request; send the rest in another",
            ));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_record(self.reader, self.index, map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        self.not_an_object()
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_an_object()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_an_object()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_an_object()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_an_object()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_an_object()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_an_object()
    }
}

impl RecordSeed<'_> {
    fn not_an_object<E>(self) -> Result<(), E> {
        self.reader
            .errors
            .push(FieldError::new(self.index, "record: must be an object"));
        Ok(())
    }
}

/// One object's fields as text, in the order of their names; a field at fault is
/// noted and the rest of the record still read, so one response names them all.
fn read_record<'de, A: MapAccess<'de>>(
    reader: &mut Reader,
    index: usize,
    mut map: A,
) -> Result<(), A::Error> {
    let mut record = Record::new();
    let mut faulty = false;
    while let Some(key) = map.next_key::<String>()? {
        if record.len() == MAX_FIELDS {
            reader.errors.push(FieldError {
                index,
                field: String::new(),
                message: format!("at most {MAX_FIELDS} fields a record"),
            });
            map.next_value::<Skip>()?;
            while map.next_entry::<Skip, Skip>()?.is_some() {}
            return Ok(());
        }
        let id = key == "id" || key == "contact_id";
        match map.next_value_seed(Text { id })? {
            Ok(text) => record.push((key, text)),
            Err(message) => {
                faulty = true;
                reader.errors.push(FieldError {
                    index,
                    field: key,
                    message,
                });
            }
        }
    }
    record.sort_by(|a, b| a.0.cmp(&b.0));
    for pair in record.windows(2) {
        if pair[0].0 == pair[1].0 {
            faulty = true;
            reader.errors.push(FieldError {
                index,
                field: pair[0].0.clone(),
                message: "given twice".into(),
            });
        }
    }
    if !faulty {
        reader.records.push(record);
    }
    Ok(())
}

/// One field's value as the CSV reader would give it, or why it cannot be one.
struct Text {
    /// `id` and `contact_id` take text or exact integers only.
    id: bool,
}

type TextOrWhy = Result<String, String>;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = TextOrWhy;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<TextOrWhy, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = TextOrWhy;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("text, a number or a boolean")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TextOrWhy, E> {
        Ok(Ok(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<TextOrWhy, E> {
        Ok(Ok(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<TextOrWhy, E> {
        Ok(Ok(String::new()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<TextOrWhy, E> {
        Ok(if self.id {
            Err("must be text or a whole number".into())
        } else {
            Ok(v.to_string())
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TextOrWhy, E> {
        Ok(Ok(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TextOrWhy, E> {
        Ok(Ok(v.to_string()))
    }
    /// JSON numbers that are neither i64 nor u64 arrive as f64, rounded: 30 digits keep
    /// 17 and become `1.2345678901234568e29`. Only those that read back as written are
    /// taken, and an id never is a fraction.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<TextOrWhy, E> {
        let text = serde_json::Number::from_f64(v).map(|n| n.to_string());
        Ok(match text {
            Some(_) if self.id => {
                Err("must be text or a whole number; write it as a string".into())
            }
            Some(text) if v.abs() < EXACT_FLOAT && !text.contains('e') => Ok(text),
            _ => Err("is a number JSON cannot hold exactly; write it as a string".into()),
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextOrWhy, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Err("must be text, a number or a boolean".into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextOrWhy, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Err("must be text, a number or a boolean".into()))
    }
}

/// A value read and dropped, checked as strictly as one that is kept: nesting deeper
/// than `serde_json`'s limit and numbers out of range are not JSON (`IgnoredAny` would
/// let both through).
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(body: &str) -> Vec<String> {
        match records(body.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| format!("{} {}: {}", e.index, e.field, e.message))
                .collect(),
        }
    }

    #[test]
    fn objects_and_arrays_become_records_in_field_order() {
        let records = records(br#"[{"id":"A","n":7,"ok":true,"x":null,"p":12.5},{"id":-3}]"#)
            .expect("records");
        let pairs = |r: &Record| {
            r.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pairs(&records[0]),
            ["id=A", "n=7", "ok=true", "p=12.5", "x="]
        );
        assert_eq!(pairs(&records[1]), ["id=-3"]);
        assert_eq!(self::records(br#"{"id":"A"}"#).expect("one").len(), 1);
    }

    #[test]
    fn record_1001_stops_the_read() {
        let body = format!("[{}]", vec!["{}"; 349_524].join(","));
        assert_eq!(
            messages(&body),
            ["1000 : at most 1000 records a request; send the rest in another"]
        );
        let body = format!("[{}]", vec!["{\"id\":\"A\"}"; 1000].join(","));
        assert_eq!(records(body.as_bytes()).expect("1000 are fine").len(), 1000);
    }

    #[test]
    fn numbers_that_json_rounds_are_refused() {
        let big = messages(r#"{"id":123456789012345678901234567890}"#);
        assert!(big[0].contains("write it as a string"), "{big:?}");
        assert!(messages(r#"{"id":"1","n":1e300}"#)[0].starts_with("0 n: is a number"));
        assert!(messages(r#"{"id":"1","n":1.5e-9}"#)[0].starts_with("0 n: is a number"));
        assert!(messages(r#"{"contact_id":1.5}"#)[0].starts_with("0 contact_id: must be"));
        assert!(messages(r#"{"id":18446744073709551615,"n":-9223372036854775808}"#).is_empty());
    }

    #[test]
    fn errors_are_capped_and_counted() {
        let body = format!("[{}]", vec!["{\"id\":[1]}"; 1000].join(","));
        let errors = records(body.as_bytes()).expect_err("refused");
        assert_eq!((errors.iter().count(), errors.more()), (100, 900));
        let fields: String = (0..=MAX_FIELDS).map(|i| format!("\"f{i}\":1,")).collect();
        let body = format!("{{{fields}\"id\":\"A\"}}");
        assert_eq!(messages(&body), ["0 : at most 200 fields a record"]);
        assert_eq!(messages(r#"{"id":"A","id":"B"}"#), ["0 id: given twice"]);
    }

    #[test]
    fn what_is_not_json_says_so() {
        for body in ["", "\u{ff}", "[{}", "{} x", r#"{"id":1e999}"#] {
            assert!(messages(body)[0].contains("not JSON"), "{body:?}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(messages(&deep)[0].contains("not JSON"));
        assert!(messages("7")[0].contains("must be an object or an array"));
        assert_eq!(messages("[1,{\"id\":\"A\"},\"x\"]").len(), 2);
    }
}
