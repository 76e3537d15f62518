//! How tickler hears back from the mail it sent: the bounce mailbox read over IMAP
//! (`imap`), each message classified as a bounce, a complaint or neither (`report`,
//! pure), and what a report changes: the suppression list and the send it answers.

pub mod apply;
mod arf;
mod dsn;
mod fields;
pub mod imap;
pub mod poll;
pub mod report;

#[cfg(test)]
mod tests;
