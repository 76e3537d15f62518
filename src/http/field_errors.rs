//! Why a request's records were refused: each field at fault, the first hundred of
//! them in a response, and how many more there were.

/// Errors one response lists; the rest are counted.
pub const SHOWN_ERRORS: usize = 100;

/// Why a record was refused: which one, which field, and why.
#[derive(Debug)]
pub struct FieldError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// From a reason in the form `field: message`, as the record checks give them.
    pub fn new(index: usize, reason: &str) -> FieldError {
        let (field, message) = reason.split_once(": ").unwrap_or(("", reason));
        FieldError {
            index,
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// The first [`SHOWN_ERRORS`] errors of a request, and how many more there were: a
/// response stays small whatever the body holds.
#[derive(Debug, Default)]
pub struct FieldErrors {
    shown: Vec<FieldError>,
    more: usize,
}

impl FieldErrors {
    pub fn push(&mut self, error: FieldError) {
        if self.shown.len() < SHOWN_ERRORS {
            self.shown.push(error);
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.shown.iter()
    }

    /// Errors beyond those shown.
    pub fn more(&self) -> usize {
        self.more
    }
}

impl From<FieldError> for FieldErrors {
    fn from(error: FieldError) -> FieldErrors {
        let mut errors = FieldErrors::default();
        errors.push(error);
        errors
    }
}

impl FromIterator<FieldError> for FieldErrors {
    fn from_iter<I: IntoIterator<Item = FieldError>>(iter: I) -> FieldErrors {
        let mut errors = FieldErrors::default();
        iter.into_iter().for_each(|e| errors.push(e));
        errors
    }
}
