//! tickler: follow-up sends for small businesses, each exactly once and on time.
//!
//! Data flows one way: `config` (YAML, typed) → `sync` (CSV and API records) → `store`
//! (contacts, events, the send log) → `agenda` and `plan` (pure: who is owed what, when)
//! → `compose` (data, rendered by `render`, built into an email or a card) → `channel`
//! (SMTP, `.eml` files, postcard PDFs) → `store` (the outcome, once per occurrence).
//! `tick` is one pass of that pipeline; `daemon` runs passes on the schedule beside
//! `http`, sharing `status`; `cli` is the command line and binds the outside world.
//! `bounce` is the way back: the mailbox where bounce reports arrive, read over IMAP.
//! `domain` holds the pure types everything shares. The clock is passed in (`now`), so
//! time can be simulated. ARCHITECTURE.md has the map and the send log's invariants.

pub mod agenda;
pub mod bounce;
pub mod channel;
pub mod cli;
pub mod compose;
pub mod config;
pub(crate) mod csv_safe;
pub(crate) mod daemon;
pub mod domain;
pub(crate) mod files;
pub mod http;
pub(crate) mod keys;
pub mod plan;
pub mod render;
pub mod status;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tick;
pub mod timeline;
pub mod unsubscribe;
