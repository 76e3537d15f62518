//! How tickler hears back from mail it sent: bounces and complaints, read from the raw
//! messages that come back to its return path.

mod arf;
mod dsn;
mod fields;
pub mod report;

#[cfg(test)]
mod tests;
