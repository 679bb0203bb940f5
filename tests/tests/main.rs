//! The integration tests, one binary: each file of this folder is a module, so a test's
//! name starts with its file's (`observe::untracked_processes_never_appear`), and
//! `cargo xtask test observe` runs that file's tests (the filter `observe::`). Real kernel,
//! real daemon, real servers; as root (without root every test says it is skipped).
mod audit;
mod audit_source;
mod bad_input;
mod baselines;
mod bounds;
mod control;
mod dns;
mod evasion;
mod export;
mod kubernetes;
mod log_export;
mod manifests;
mod memory;
mod monitoring;
mod observe;
mod restart;
