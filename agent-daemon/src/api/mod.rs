//! The daemon's edges: the control socket (`paddock run`, `events`, `status`) and its
//! line protocol, and the HTTP server (metrics, probes, query API).
pub mod control;
pub mod http;
pub mod protocol;
