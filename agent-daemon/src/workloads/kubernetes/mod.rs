//! The Kubernetes workload source: investigation Jobs' pods on this node, tracked from
//! the moment the API shows them, and Kubernetes-side actions on verdicts.
pub mod paths;
pub mod pods;
