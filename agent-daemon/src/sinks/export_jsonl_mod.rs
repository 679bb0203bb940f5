//! Exports to other systems. For now only the JSON-lines destination's modules, until the
//! export framework (`export/mod.rs`) is merged: these lines then move into `export/mod.rs`
//! without their `#[path]` attributes.
//!
//! - `otel`: one stored event as one flat object with OpenTelemetry names;
//! - `jsonl`: the writer (a rotated file, or standard output);
//! - `jsonl_config`: its settings and errors.
#[path = "export/jsonl.rs"]
pub mod jsonl;
#[path = "export/jsonl_config.rs"]
pub mod jsonl_config;
#[cfg(test)]
#[path = "export/jsonl_crash_tests.rs"]
mod jsonl_crash_tests;
#[cfg(test)]
#[path = "export/jsonl_perf.rs"]
mod jsonl_perf;
#[cfg(test)]
#[path = "export/jsonl_tests.rs"]
mod jsonl_tests;
#[path = "export/otel.rs"]
pub mod otel;
#[cfg(test)]
#[path = "export/otel_tests.rs"]
mod otel_tests;
