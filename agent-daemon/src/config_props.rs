//! Property tests of the configuration file (`Config::parse`): no text makes it panic, and
//! every refusal names the file it came from.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::{
    config::{Config, ConfigError},
    sinks::alerts::AlertRouter,
    text_edits,
};

/// The configuration `deploy/20-config.yaml` ships, as the file it becomes.
fn deployed() -> String {
    let yaml = include_str!("../../deploy/20-config.yaml");
    let (_, rest) = yaml.split_once("paddock.toml: |\n").expect("a paddock.toml key");
    rest.lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect()
}

/// The keys paddock reads, by section (but `hmac_secret_file`: a file it would read).
const KEYS: &[(&str, &[&str])] = &[
    ("daemon", &["socket", "state_dir", "recent_events"]),
    (
        "kernel",
        &[
            "ring_buffer_bytes",
            "btf_path",
            "mountinfo_path",
            "tracefs",
            "bpffs",
            "max_tracked_processes",
        ],
    ),
    ("local", &["cgroup_parent"]),
    ("http", &["listen", "token", "token_file"]),
    ("limits", &["records_per_second", "processes", "cgroups"]),
    ("enforcement", &["fail_closed"]),
    (
        "audit",
        &["enabled", "path", "max_age_days", "max_bytes", "batch_max_events", "batch_max_delay_ms"],
    ),
    (
        "kubernetes",
        &[
            "enabled",
            "node_name",
            "investigation_label",
            "phase_label",
            "unknown_phase",
            "cgroup_driver",
            "cgroup_parent",
            "kubeconfig",
            "delete_jobs",
        ],
    ),
    ("alerts", &["node"]),
    (
        "[alerts.receivers]",
        &["kind", "name", "url", "timeout_ms", "queue", "max_retries", "hmac_secret"],
    ),
];

/// A TOML value of any type, near the edges of what the fields accept.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            0i64,
            1,
            -1,
            1023,
            1024,
            4096,
            5000,
            65536,
            4 << 20,
            (4 << 20) + 1,
            i64::from(u32::MAX),
            i64::MAX,
            i64::MIN,
        ])
        .prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::sample::select(vec![
            "",
            " ",
            "..",
            "../x",
            "/",
            "/abs",
            "a/b",
            "a/../b",
            "x\0y",
            "127.0.0.1:0",
            "[::1]:9477",
            "http://127.0.0.1:9093",
            "ftp://x",
            "stdout",
            "webhook",
            "alertmanager",
            "systemd",
            "cgroupfs",
            "auto",
            "observe",
            "ignore",
            "a/b/c/d",
            "paddock.io/investigation",
            "node-a",
        ])
        .prop_map(|s| toml::Value::String(s.to_owned()).to_string()),
        any::<String>().prop_map(|s| toml::Value::String(s).to_string()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("1.5".to_owned()),
    ]
}

/// A file setting some known keys to such values.
fn keyed_file() -> impl Strategy<Value = String> {
    let section =
        (0..KEYS.len(), prop::collection::vec((any::<prop::sample::Index>(), value()), 0..4));
    prop::collection::vec(section, 0..6).prop_map(|sections| {
        let mut text = String::new();
        for (s, pairs) in sections {
            let (name, keys) = KEYS[s];
            text += &format!("[{name}]\n");
            for (key, value) in pairs {
                text += &format!("{} = {value}\n", key.get(keys));
            }
        }
        text
    })
}

/// `[[alerts.receivers]]` tables that are nearly or wholly right, with any numbers.
fn receivers_file() -> impl Strategy<Value = String> {
    let receiver = (
        prop::sample::select(vec!["alertmanager", "webhook", "stdout"]),
        prop::sample::select(vec!["am", "hook", "log", ""]),
        prop::sample::select(vec!["http://127.0.0.1:9093", "https://alerts.example/x", "ftp://x"]),
        prop::collection::vec(
            (prop::sample::select(vec!["timeout_ms", "queue", "max_retries"]), value()),
            0..3,
        ),
    );
    prop::collection::vec(receiver, 1..3).prop_map(|receivers| {
        let mut text = String::new();
        for (kind, name, url, fields) in receivers {
            text += &format!("[[alerts.receivers]]\nkind = \"{kind}\"\nname = \"{name}\"\n");
            if kind != "stdout" {
                text += &format!("url = \"{url}\"\n");
            }
            for (key, value) in fields {
                text += &format!("{key} = {value}\n");
            }
        }
        text
    })
}

fn config_path() -> impl Strategy<Value = PathBuf> {
    "(/[a-z0-9._ -]{1,12}){1,3}\\.toml".prop_map(PathBuf::from)
}

fn names_the_file(err: &ConfigError, path: &Path) -> bool {
    err.to_string().contains(&path.display().to_string())
}

proptest! {
    #[test]
    fn prop_any_text_is_read_or_refused_naming_the_file(
        text in any::<String>(),
        path in config_path(),
    ) {
        if let Err(err) = Config::parse(&text, &path) {
            prop_assert!(names_the_file(&err, &path), "{}", err);
        }
    }

    #[test]
    fn prop_known_keys_with_any_values_are_read_or_refused_naming_the_file(
        text in keyed_file(),
        path in config_path(),
    ) {
        match Config::parse(&text, &path) {
            Ok(config) => prop_assert!(config.validate(&path).is_ok()),
            Err(err) => prop_assert!(names_the_file(&err, &path), "{}\n{}", err, text),
        }
    }

    #[test]
    fn prop_edited_deployed_files_are_read_or_refused_naming_the_file(
        edits in text_edits::edits(text_edits::syntax_pieces()),
        path in config_path(),
    ) {
        let text = text_edits::apply(deployed(), &edits);
        if let Err(err) = Config::parse(&text, &path) {
            prop_assert!(names_the_file(&err, &path), "{}\n{}", err, text);
        }
    }

    /// What the file says goes: a file that is read starts its alert receivers (or says
    /// why not), whatever its numbers.
    #[test]
    fn prop_alert_receivers_that_are_read_can_start(
        text in prop_oneof![receivers_file(), keyed_file()],
        path in config_path(),
    ) {
        if let Ok(config) = Config::parse(&text, &path) {
            let _ = AlertRouter::new(&config.alerts);
        }
    }
}
