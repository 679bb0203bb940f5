//! Where events go beyond the hub: the audit store, and alert receivers.
pub mod alerts;
pub mod audit;
pub mod export;
