//! The daemon's edges: the control socket (`paddock run`, `events`, `status`) and its
//! line protocol.
pub mod control;
pub mod protocol;
