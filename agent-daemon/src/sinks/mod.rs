//! Where events go beyond the hub: the audit store, alert receivers, and exports of the
//! store to other systems.
pub mod alerts;
pub mod audit;
pub mod cluster_audit;
pub mod export;
