//! The daemon's edges: the control socket (`paddock run`, `events`, `status`) and its
//! line protocol, and the HTTP server (metrics, probes, and the audit query API).
pub mod audit;
#[cfg(test)]
mod audit_tests;
pub mod control;
pub mod http;
mod lines;
pub mod peer;
pub mod protocol;
#[cfg(test)]
mod protocol_props;
pub mod state;
