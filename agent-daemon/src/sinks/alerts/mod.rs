#![allow(dead_code, unused_imports, reason = "wired into the daemon separately")]
//! Alert routing: the receivers' configuration.
mod config;

pub use config::AlertsConfig;
