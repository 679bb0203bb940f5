//! Where events go to be kept: the audit store.
pub mod audit;
