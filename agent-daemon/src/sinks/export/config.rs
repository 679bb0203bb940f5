//! The `[[export]]` tables: where the audit trail is forwarded, one table per destination.
//! Each table is tagged by `kind`; every kind has a `name` (the `export` label of the
//! metrics) and the batch size, and its own settings besides.
use std::{collections::HashSet, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    jsonl_config::{self, JsonlConfig},
    postgres::target::{PgTarget, TargetError},
};
use crate::sinks::alerts::ReceiverConfig;

/// One destination, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportConfig {
    /// A PostgreSQL database: runs, events and the export cursor in schema `paddock`.
    Postgres(PostgresExport),
    /// JSON lines with OpenTelemetry names, to a file rotated by size or to standard output.
    Jsonl(JsonlExport),
}

/// The settings of [`JsonlConfig`], beside `name` and the batch size (listed here rather
/// than flattened: serde refuses unknown keys only without `flatten`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlExport {
    pub name: String,
    /// The file (absolute), or `-` for the daemon's standard output.
    pub path: PathBuf,
    #[serde(default = "jsonl_config::default_max_bytes")]
    pub max_bytes: u64,
    #[serde(default = "jsonl_config::default_keep")]
    pub keep: u32,
    /// Events per write (one `fdatasync` each).
    #[serde(default = "default_batch_events")]
    pub batch_events: usize,
    /// `k8s.node.name` of every line; the daemon's node name when unset.
    pub node: Option<String>,
}

impl JsonlExport {
    /// An export to `path` with every other setting at its default.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        JsonlExport {
            name: name.into(),
            path: path.into(),
            max_bytes: jsonl_config::default_max_bytes(),
            keep: jsonl_config::default_keep(),
            batch_events: DEFAULT_BATCH_EVENTS,
            node: None,
        }
    }

    pub fn writer_config(&self) -> JsonlConfig {
        JsonlConfig { path: self.path.clone(), max_bytes: self.max_bytes, keep: self.keep }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresExport {
    pub name: String,
    /// `postgres://user@host:port/db?sslmode=disable|require|verify-full`, without a
    /// password (see `password_file`).
    pub url: String,
    /// PEM certificates of the CA that signed the server's certificate, for
    /// `sslmode=verify-full`.
    pub ca_file: Option<PathBuf>,
    /// The role's password, read from this file at each connection (one trailing newline is
    /// ignored).
    pub password_file: Option<PathBuf>,
    /// Events per transaction.
    #[serde(default = "default_batch_events")]
    pub batch_events: usize,
    /// Daily partitions of events older than this many days are dropped; 0 keeps them.
    #[serde(default)]
    pub retention_days: u32,
    /// The `node` column of every row; the daemon's node name when unset
    /// (`kubernetes.node_name`, `NODE_NAME`, else the host name).
    pub node: Option<String>,
}

impl PostgresExport {
    /// An export to `url` with every other setting at its default.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        PostgresExport {
            name: name.into(),
            url: url.into(),
            ca_file: None,
            password_file: None,
            batch_events: DEFAULT_BATCH_EVENTS,
            retention_days: 0,
            node: None,
        }
    }
}

pub const DEFAULT_BATCH_EVENTS: usize = 5000;
pub const MAX_BATCH_EVENTS: usize = 100_000;
pub const MAX_RETENTION_DAYS: u32 = 100 * 365;

fn default_batch_events() -> usize {
    DEFAULT_BATCH_EVENTS
}

impl ExportConfig {
    pub fn name(&self) -> &str {
        match self {
            ExportConfig::Postgres(p) => &p.name,
            ExportConfig::Jsonl(j) => &j.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ExportConfig::Postgres(_) => "postgres",
            ExportConfig::Jsonl(_) => "jsonl",
        }
    }

    pub fn batch_events(&self) -> usize {
        match self {
            ExportConfig::Postgres(p) => p.batch_events,
            ExportConfig::Jsonl(j) => j.batch_events,
        }
    }

    pub fn node(&self) -> Option<&str> {
        match self {
            ExportConfig::Postgres(p) => p.node.as_deref(),
            ExportConfig::Jsonl(j) => j.node.as_deref(),
        }
    }
}

/// A bad `[[export]]` setting: `export[N].field = value: rule`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("export[{index}].{field} = {value}: {rule}")]
pub struct ExportConfigError {
    pub index: usize,
    pub field: &'static str,
    pub value: String,
    pub rule: String,
}

/// Whether `name` may be a metric label and a log key: 1 to 64 of `[a-z0-9_-]`.
fn good_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Check every table: values, unique names.
pub fn validate(exports: &[ExportConfig]) -> Result<(), ExportConfigError> {
    let mut names = HashSet::new();
    for (index, export) in exports.iter().enumerate() {
        let invalid = |field, value: String, rule: &str| {
            Err(ExportConfigError { index, field, value, rule: rule.to_owned() })
        };
        let name = export.name();
        if !good_name(name) {
            return invalid("name", format!("{name:?}"), "must be 1 to 64 of a-z, 0-9, '_', '-'");
        }
        if !names.insert(name) {
            return invalid("name", format!("{name:?}"), "is used by an earlier [[export]]");
        }
        let batch = export.batch_events();
        if !(1..=MAX_BATCH_EVENTS).contains(&batch) {
            return invalid("batch_events", batch.to_string(), "must be 1 to 100000");
        }
        if let Some(node) = export.node()
            && (node.trim().is_empty() || node.len() > 253)
        {
            return invalid("node", format!("{node:?}"), "must be a name of 1 to 253 characters");
        }
        match export {
            ExportConfig::Postgres(p) => validate_postgres(index, p)?,
            ExportConfig::Jsonl(j) => j.writer_config().validate(index).map_err(|e| {
                ExportConfigError { index, field: e.field, value: e.value, rule: e.rule.into() }
            })?,
        }
    }
    validate_outputs(exports)
}

/// No two JSON-lines exports write the same file (or one another's rotated files), and
/// at most one writes to standard output.
fn validate_outputs(exports: &[ExportConfig]) -> Result<(), ExportConfigError> {
    let files: Vec<(usize, &JsonlExport)> = exports
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            ExportConfig::Jsonl(j) => Some((i, j)),
            ExportConfig::Postgres(_) => None,
        })
        .collect();
    for (n, &(index, j)) in files.iter().enumerate() {
        let stdout = j.writer_config().is_stdout();
        for &(earlier, e) in &files[..n] {
            let clash = if stdout {
                e.writer_config().is_stdout()
            } else {
                !e.writer_config().is_stdout() && (written_by(e, &j.path) || written_by(j, &e.path))
            };
            if clash {
                let what = if stdout { "standard output" } else { "this file" };
                return Err(ExportConfigError {
                    index,
                    field: "path",
                    value: format!("{:?}", j.path.display().to_string()),
                    rule: format!(
                        "export[{earlier}] ({:?}) writes {what} too: give each export a file of its own",
                        e.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Whether `path` is `export`'s file or one of its rotated files.
fn written_by(export: &JsonlExport, path: &std::path::Path) -> bool {
    path == export.path || (1..=export.keep).any(|n| path == super::jsonl::rotated(&export.path, n))
}

/// A JSON-lines export to standard output (`path = "-"`) shares it with nothing: an alert
/// receiver of `kind = "stdout"` writes its own lines there, which a pipeline expecting one
/// shape per line would misread.
pub fn validate_stdout(
    exports: &[ExportConfig],
    receivers: &[ReceiverConfig],
) -> Result<(), ExportConfigError> {
    let to_stdout = exports.iter().enumerate().find_map(|(i, e)| match e {
        ExportConfig::Jsonl(j) if j.writer_config().is_stdout() => Some((i, j)),
        _ => None,
    });
    let receiver =
        receivers.iter().enumerate().find(|(_, r)| matches!(r, ReceiverConfig::Stdout(_)));
    match (to_stdout, receiver) {
        (Some((index, j)), Some((r, receiver))) => Err(ExportConfigError {
            index,
            field: "path",
            value: format!("{:?}", j.path.display().to_string()),
            rule: format!(
                "alerts.receivers[{r}] ({:?}) is of kind \"stdout\" and writes standard output \
                 too: write the export to a file, or remove that receiver",
                receiver.name()
            ),
        }),
        _ => Ok(()),
    }
}

fn validate_postgres(index: usize, p: &PostgresExport) -> Result<(), ExportConfigError> {
    let invalid =
        |field, value: String, rule: String| Err(ExportConfigError { index, field, value, rule });
    if p.retention_days > MAX_RETENTION_DAYS {
        return invalid(
            "retention_days",
            p.retention_days.to_string(),
            "must be at most 36500; 0 keeps events forever".into(),
        );
    }
    for (field, path) in [("ca_file", &p.ca_file), ("password_file", &p.password_file)] {
        if let Some(path) = path
            && !path.is_absolute()
        {
            return invalid(
                field,
                format!("{:?}", path.display().to_string()),
                "must be absolute".into(),
            );
        }
    }
    match PgTarget::parse(p) {
        Ok(_) => Ok(()),
        Err(TargetError { field, value, rule }) => invalid(field, value, rule),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
