//! How tickler hears back from the mail it sent: the bounce mailbox, read over IMAP.

pub mod imap;
