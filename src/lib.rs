//! tickler: follow-up sends for small businesses, each exactly once and on time.
//!
//! Data flows one way:
//! `config` (YAML → typed) → `sync` (CSV/API → store) → `store` (contacts, events, the
//! send log) → `plan` (pure: who is owed what, when) → `compose` (the message data,
//! rendered by `render`'s handlebars, built into an email or a card) → `channel` (SMTP,
//! `.eml` files, postcard PDFs) → `store` (the send log records the outcome).
//! `tick` is one pass of that pipeline; `daemon` runs ticks forever; `cli` is the
//! command line. The clock is passed in everywhere (`now`), so time can be simulated.

pub mod agenda;
pub mod channel;
pub mod cli;
pub mod compose;
pub mod config;
pub mod csv_safe;
pub(crate) mod daemon;
pub mod domain;
pub mod files;
pub mod http;
pub mod keys;
pub mod plan;
pub mod render;
pub mod status;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tick;
pub mod unsubscribe;
