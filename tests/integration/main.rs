//! tickler's integration tests: the real binary, a real SQLite file in a temporary
//! directory, and a real SMTP server on 127.0.0.1.

mod adaptive;
mod auth_server;
mod backends;
mod bad_input;
mod bounces;
mod browser;
mod calendar;
mod console;
mod console_harness;
mod core;
mod daemon;
mod deliverability;
mod delivery;
mod first_seen;
mod hardening;
mod helpers;
mod http_limits;
mod imap;
mod import_and_check;
mod postcards;
mod postcards_print;
mod postfix;
mod postfix_server;
mod preferences;
mod render_limits;
mod scale;
mod service;
mod simulation;
mod simulation_year;
mod smtp;
mod smtp_answers;
mod smtp_shutdown;
mod strict_server;
mod timeline;
