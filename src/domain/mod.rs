//! Pure types of tickler's business: contacts, events, cadences, periods and windows,
//! the send log's keys and states, and the suppression list's entries. No I/O here.

pub mod address;
pub mod cadence;
pub mod contact;
pub mod country;
pub mod history;
pub mod send;
pub mod suppression;
pub mod time;

pub use address::PostalAddress;
pub use cadence::{Cadence, Channel, Feb29, Trigger};
pub use contact::{Contact, EmailAddress, Event, Fields, MonthDay};
pub use history::{Choices, History};
pub use send::{SendKey, SendStatus};
pub use suppression::Suppression;
pub use time::{Days, Opening, Period, Window};
