//! The baseline file: TOML an operator can read, diff, edit and review, one entry per line.
//! Every field is required (a truncated file is refused, not half-read); each entry is
//! checked, and an error names the file, the field and what is wrong with it.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    Baseline, Envelope, SocketKind, generalise,
    names::{self, EGRESS_FORMS, EgressEntry},
    uring,
};
use crate::{identity::Phase, syscalls};

/// The format this paddock writes. Format 1 (before unix sockets, socket kinds and
/// io_uring were learned) is still read: those sets are then empty.
///
/// Name rules in `egress` and the `dns` key came later in format 2, and the number stayed:
/// a file without them is the file an earlier paddock wrote, byte for byte, and an earlier
/// paddock refuses a file with them by the entry (`egress[i]`) or key (`dns`) it does not
/// know.
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FileError {
    #[error("baseline file {source_name}: {message}")]
    Parse { source_name: String, message: String },
    #[error("baseline file {source_name}: {field} = {value}: {problem}")]
    Invalid { source_name: String, field: String, value: String, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    max_processes: u64,
    max_syscalls_per_second: u64,
    max_egress_bytes: u64,
    tolerance: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    format: u32,
    phase: String,
    revision: u64,
    learned_from: u64,
    #[serde(default)]
    updated: Option<String>,
    syscalls: Vec<String>,
    execs: Vec<String>,
    egress: Vec<String>,
    file_writes: Vec<String>,
    file_reads: Vec<String>,
    #[serde(default)]
    unix: Option<Vec<String>>,
    #[serde(default)]
    sockets: Option<Vec<String>>,
    #[serde(default)]
    io_uring: Option<Vec<String>>,
    /// Absent: queries are not judged (`Baseline::dns`).
    #[serde(default)]
    dns: Option<Vec<String>>,
    envelope: RawEnvelope,
}

/// Parse and check a baseline file's text; `source_name` names it in errors.
pub fn parse(text: &str, source_name: &str) -> Result<Baseline, FileError> {
    let raw: RawBaseline = toml::from_str(text).map_err(|e| FileError::Parse {
        source_name: source_name.to_owned(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    checked(raw, source_name)
}

/// A baseline given as JSON with the file's keys (a Kubernetes object's `spec.baseline`,
/// with `format`, `phase`, `revision` and `learned_from` added), checked as a file is;
/// `source_name` names it in errors.
pub fn from_value(value: serde_json::Value, source_name: &str) -> Result<Baseline, FileError> {
    let raw: RawBaseline = serde_json::from_value(value).map_err(|e| FileError::Parse {
        source_name: source_name.to_owned(),
        message: e.to_string(),
    })?;
    checked(raw, source_name)
}

/// The file's sets and envelope as JSON, with the file's keys (no `format`, `phase`,
/// `revision`, `learned_from`, `updated`; `dns` only when the baseline has that set).
pub fn entries_value(b: &Baseline) -> serde_json::Value {
    fn strings<T: ToString>(items: &std::collections::BTreeSet<T>) -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    }
    let e = &b.envelope;
    let mut value = serde_json::json!({
        "syscalls": strings(&b.syscalls),
        "execs": strings(&b.execs),
        "egress": egress_entries(b),
        "file_writes": strings(&b.file_writes),
        "file_reads": strings(&b.file_reads),
        "unix": strings(&b.unix),
        "sockets": strings(&b.sockets),
        "io_uring": strings(&b.io_uring),
        "envelope": {
            "max_processes": e.max_processes,
            "max_syscalls_per_second": e.max_syscalls_per_second,
            "max_egress_bytes": e.max_egress_bytes,
            "tolerance": e.tolerance,
        },
    });
    if let (Some(dns), Some(fields)) = (&b.dns, value.as_object_mut()) {
        fields.insert("dns".into(), strings(dns).into());
    }
    value
}

/// The `egress` entries of `b`: its address rules, then its name rules, each sorted.
fn egress_entries(b: &Baseline) -> Vec<String> {
    let addresses = b.egress.iter().map(ToString::to_string);
    addresses.chain(b.egress_names.iter().map(ToString::to_string)).collect()
}

fn checked(raw: RawBaseline, source_name: &str) -> Result<Baseline, FileError> {
    let invalid = |field: String, value: &str, problem: String| FileError::Invalid {
        source_name: source_name.to_owned(),
        field,
        value: format!("{value:?}"),
        problem,
    };
    if raw.format != FORMAT && raw.format != 1 {
        return Err(invalid(
            "format".into(),
            &raw.format.to_string(),
            format!("this paddock reads formats 1 and {FORMAT}"),
        ));
    }
    let since_2 = |field: &str, value: &Option<Vec<String>>| match value {
        None if raw.format >= 2 => Err(FileError::Parse {
            source_name: source_name.to_owned(),
            message: format!("missing field `{field}` (required from format 2)"),
        }),
        _ => Ok(value.clone().unwrap_or_default()),
    };
    let (unix_raw, sockets_raw, uring_raw) = (
        since_2("unix", &raw.unix)?,
        since_2("sockets", &raw.sockets)?,
        since_2("io_uring", &raw.io_uring)?,
    );
    let phase: Phase = raw.phase.parse().map_err(|e: crate::identity::UnknownPhase| {
        invalid("phase".into(), &raw.phase, e.to_string())
    })?;
    let updated = match &raw.updated {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|e| invalid("updated".into(), text, format!("not an RFC 3339 time: {e}")))?
                .with_timezone(&Utc),
        ),
    };
    let mut syscalls = BTreeSet::new();
    for (i, name) in raw.syscalls.iter().enumerate() {
        if syscalls::id(name).is_none() {
            return Err(invalid(
                format!("syscalls[{i}]"),
                name,
                "not a syscall name of this architecture (or syscall_N, N < 509; ia32:NAME; \
                 x32; out_of_table)"
                    .into(),
            ));
        }
        syscalls.insert(name.clone());
    }
    let paths = |field: &str, entries: &[String]| -> Result<BTreeSet<String>, FileError> {
        let mut set = BTreeSet::new();
        for (i, entry) in entries.iter().enumerate() {
            let problem = if entry.is_empty() {
                Some("an empty path".to_owned())
            } else if entry.contains('\0') {
                Some("a NUL character".to_owned())
            } else {
                generalise::unknown_placeholder(entry).map(|p| {
                    format!(
                        "unknown placeholder {p} (known: {})",
                        generalise::PLACEHOLDERS.join(", ")
                    )
                })
            };
            if let Some(problem) = problem {
                return Err(invalid(format!("{field}[{i}]"), entry, problem));
            }
            set.insert(entry.clone());
        }
        Ok(set)
    };
    let execs = paths("execs", &raw.execs)?;
    let file_writes = paths("file_writes", &raw.file_writes)?;
    let file_reads = paths("file_reads", &raw.file_reads)?;
    let unix = paths("unix", &unix_raw)?;
    let mut sockets = BTreeSet::new();
    for (i, kind) in sockets_raw.iter().enumerate() {
        let parsed: SocketKind = kind.parse().map_err(|e: super::sockets::BadSocketKind| {
            invalid(format!("sockets[{i}]"), kind, e.1.into())
        })?;
        sockets.insert(parsed);
    }
    let mut io_uring = BTreeSet::new();
    for (i, name) in uring_raw.iter().enumerate() {
        if uring::bit(name).is_none() {
            return Err(invalid(
                format!("io_uring[{i}]"),
                name,
                "not an io_uring operation (readv, openat, send, ... or other)".into(),
            ));
        }
        io_uring.insert(name.clone());
    }
    let (mut egress, mut egress_names) = (BTreeSet::new(), BTreeSet::new());
    for (i, entry) in raw.egress.iter().enumerate() {
        match names::egress_entry(entry) {
            Ok(EgressEntry::Address(rule)) => egress.insert(rule),
            Ok(EgressEntry::Name(rule)) => egress_names.insert(rule),
            Err(why) => {
                return Err(invalid(
                    format!("egress[{i}]"),
                    entry,
                    format!("{why}; {EGRESS_FORMS}"),
                ));
            }
        };
    }
    let dns = match &raw.dns {
        None => None,
        Some(entries) => {
            let mut set = BTreeSet::new();
            for (i, entry) in entries.iter().enumerate() {
                let name = names::dns_name(entry).map_err(|why| {
                    invalid(
                        format!("dns[{i}]"),
                        entry,
                        format!(
                            "{why} (write a name like \"api.example.com\" or \"*.example.com\")"
                        ),
                    )
                })?;
                set.insert(name);
            }
            Some(set)
        }
    };
    let e = raw.envelope;
    if !(e.tolerance.is_finite() && e.tolerance >= 1.0) {
        return Err(invalid(
            "envelope.tolerance".into(),
            &e.tolerance.to_string(),
            "must be a number of at least 1".into(),
        ));
    }
    Ok(Baseline {
        phase,
        revision: raw.revision,
        learned_from: raw.learned_from,
        updated,
        syscalls,
        execs,
        egress,
        egress_names,
        file_writes,
        file_reads,
        unix,
        sockets,
        io_uring,
        dns,
        envelope: Envelope {
            max_processes: e.max_processes,
            max_syscalls_per_second: e.max_syscalls_per_second,
            max_egress_bytes: e.max_egress_bytes,
            tolerance: e.tolerance,
        },
    })
}

fn array<T: ToString>(name: &str, items: impl IntoIterator<Item = T>) -> String {
    let lines: Vec<String> =
        items.into_iter().map(|i| format!("  {},\n", toml::Value::String(i.to_string()))).collect();
    if lines.is_empty() {
        format!("{name} = []\n")
    } else {
        format!("{name} = [\n{}]\n", lines.concat())
    }
}

/// The file's text.
pub fn render(b: &Baseline) -> String {
    let mut out = format!(
        "# paddock baseline: what Jobs of the {phase} trust phase normally do.\n\
         # Review it, diff it, edit it; `paddock baseline import {phase} FILE` checks a file\n\
         # before it takes effect. Placeholders: {placeholders}.\n\
         format = {FORMAT}\nphase = \"{phase}\"\nrevision = {}\nlearned_from = {}\n",
        b.revision,
        b.learned_from,
        phase = b.phase,
        placeholders = generalise::PLACEHOLDERS.join(" "),
    );
    if let Some(updated) = b.updated {
        out += &format!(
            "updated = \"{}\"\n",
            updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    out += "\n";
    out += &array("syscalls", &b.syscalls);
    out += &array("execs", &b.execs);
    out += if b.egress_names.is_empty() {
        "# PROTOCOL NETWORK port PORT|any\n"
    } else {
        "# PROTOCOL NETWORK port PORT|any, then PROTOCOL NAME port PORT|any (*. for one label)\n"
    };
    out += &array("egress", egress_entries(b));
    out += "# prefixes: a trailing / covers everything below\n";
    out += &array("file_writes", &b.file_writes);
    out += &array("file_reads", &b.file_reads);
    out += "# unix socket paths (generalised like files; @name for abstract ones)\n";
    out += &array("unix", &b.unix);
    out += "# FAMILY TYPE PROTOCOL of sockets other than TCP, UDP and unix\n";
    out += &array("sockets", &b.sockets);
    out += &array("io_uring", &b.io_uring);
    if let Some(dns) = &b.dns {
        out += "# names the phase may ask its resolver for (*. for one label); without this key,\n\
                # queries are not judged\n";
        out += &array("dns", dns);
    }
    let e = &b.envelope;
    out += &format!(
        "\n# largest seen while learning; a deviation above max x tolerance\n[envelope]\n\
         max_processes = {}\nmax_syscalls_per_second = {}\nmax_egress_bytes = {}\ntolerance = {:?}\n",
        e.max_processes, e.max_syscalls_per_second, e.max_egress_bytes, e.tolerance
    );
    out
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
