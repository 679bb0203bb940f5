//! Where events go beyond the hub: the audit store, alert receivers, the event metrics, and
//! exports of the store to other systems. (The Kubernetes actions, Events and Job deletion,
//! are a sink too, but live with the Kubernetes source in `workloads/kubernetes/`, whose
//! pod directory they share.)
pub mod alerts;
pub mod audit;
pub mod cluster_audit;
pub mod export;
pub mod metrics;
