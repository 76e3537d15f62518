//! The SQL of the contact and event upserts, which SQLite and PostgreSQL write alike;
//! each backend adds only how it binds the values.

/// The head of a contact insert; the values follow, then [`contact_conflict`].
pub(super) const CONTACT_INSERT: &str = "INSERT INTO contacts (id, first_name, last_name, email, \
     address_line1, address_line2, city, region, postal_code, country, birthday, timezone, tags, \
     email_opt_out, postcard_opt_out, fields, digest, next_due_at, created_at, updated_at) ";

/// The update half of a contact upsert: only a row whose values or given flags differ
/// is written (and made due), so re-importing an unchanged file wakes nothing. An empty
/// opt-out column keeps the stored flag.
pub(super) fn contact_conflict(email_given: bool, postcard_given: bool) -> String {
    let flag = |given: bool, column: &str| {
        if given {
            (
                format!("excluded.{column}"),
                format!(" OR contacts.{column} <> excluded.{column}"),
            )
        } else {
            (format!("contacts.{column}"), String::new())
        }
    };
    let (email_value, email_differs) = flag(email_given, "email_opt_out");
    let (postcard_value, postcard_differs) = flag(postcard_given, "postcard_opt_out");
    format!(
        " ON CONFLICT (id) DO UPDATE SET first_name = excluded.first_name, last_name = excluded.last_name, \
         email = excluded.email, address_line1 = excluded.address_line1, address_line2 = excluded.address_line2, \
         city = excluded.city, region = excluded.region, postal_code = excluded.postal_code, \
         country = excluded.country, birthday = excluded.birthday, timezone = excluded.timezone, \
         tags = excluded.tags, fields = excluded.fields, digest = excluded.digest, \
         email_opt_out = {email_value}, postcard_opt_out = {postcard_value}, \
         next_due_at = 0, updated_at = excluded.updated_at \
         WHERE contacts.digest <> excluded.digest{email_differs}{postcard_differs}"
    )
}

/// The head of an event insert; the values follow, then [`EVENT_CONFLICT`]. `armed_at`
/// is [`KnownContact::armed_with`](super::KnownContact::armed_with).
pub(super) const EVENT_INSERT: &str =
    "INSERT INTO events (contact_id, id, kind, at, fields, created_at, armed_at) ";

/// The update half of an event upsert: only an event whose values differ is written.
pub(super) const EVENT_CONFLICT: &str = " ON CONFLICT (contact_id, id) DO UPDATE SET \
     kind = excluded.kind, at = excluded.at, fields = excluded.fields \
     WHERE events.kind <> excluded.kind OR events.at <> excluded.at OR events.fields <> excluded.fields";

/// Each combination of given opt-out flags (email given: bit 1, postcard given: bit 0),
/// in that order.
pub(super) const SHAPES: [(bool, bool); 4] =
    [(false, false), (false, true), (true, false), (true, true)];
