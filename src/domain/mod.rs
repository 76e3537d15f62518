//! Pure types of tickler's business: contacts, events, cadences, periods and windows,
//! and the send log's keys and states. No I/O here.

pub mod address;
pub mod cadence;
pub mod contact;
pub mod history;
pub mod send;
pub mod time;

pub use address::PostalAddress;
pub use cadence::{Cadence, Channel, Feb29, Trigger};
pub use contact::{Contact, EmailAddress, Event, MonthDay};
pub use history::History;
pub use send::{SendKey, SendStatus};
pub use time::{Days, Opening, Period, Window};
