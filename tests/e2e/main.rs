//! End-to-end tests: one test binary, the real gateway on port 0, real receivers on 127.0.0.1,
//! real SQLite files. Named by behaviour.

#[path = "../support/mod.rs"]
pub mod support;

mod auth_plugins;
mod bad_input;
mod connectors;
mod console;
mod console_pages;
mod console_portal;
mod console_webhooks;
mod crash;
mod delivery;
mod events;
mod faults;
mod guard;
mod hardening;
mod hardening_api;
mod mail;
mod matching;
mod mtls;
mod oncall;
mod operations;
mod ordering;
mod plugin_langs;
mod plugins;
mod retention;
mod retries;
mod roles;
mod scaleout;
mod schema_fuzz;
mod secrets;
mod seed003;
mod tenancy;
mod tenancy_pg;
