//! Exports to other systems. For now only the JSON-lines destination's modules, until the
//! export framework (`export/mod.rs`) is merged: these lines then move into `export/mod.rs`
//! without their `#[path]` attributes.
//!
//! - `otel`: one stored event as one flat object with OpenTelemetry names;
//! - `jsonl`: the writer (a rotated file, or standard output);
//! - `jsonl_config`: its settings and errors.
#[path = "export/otel.rs"]
pub mod otel;
#[cfg(test)]
#[path = "export/otel_tests.rs"]
mod otel_tests;
