//! Where events go beyond the hub: alert receivers.
pub mod alerts;
