//! Tests of `config`: parsing, defaults, and the errors naming the key and file.
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/paddock/test.toml"))
}

/// The configuration `deploy/20-config.yaml` ships in its ConfigMap loads as it is.
#[test]
fn the_deployed_configuration_is_valid() {
    let yaml = include_str!("../../deploy/20-config.yaml");
    let (_, rest) = yaml.split_once("paddock.toml: |\n").expect("a paddock.toml key");
    let toml: String = rest
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    // The DaemonSet sets NODE_NAME from a fieldRef; where it is not set, name a node.
    let config = Config::parse(&toml, Path::new("deploy/20-config.yaml"));
    let config = match config {
        Err(ConfigError::Kubernetes { .. }) if std::env::var_os("NODE_NAME").is_none() => {
            let with_node =
                toml.replace("enabled = true", "enabled = true\nnode_name = \"node-a\"");
            Config::parse(&with_node, Path::new("deploy/20-config.yaml")).unwrap()
        }
        other => other.unwrap(),
    };
    assert!(config.kubernetes.enabled);
    assert_eq!(config.http.listen.port(), 9477);
    assert_eq!(config.daemon.state_dir, Path::new("/var/lib/paddock"));
}

/// The configuration reference in README.md is a file the daemon takes, with the
/// defaults it states.
#[test]
fn the_readme_configuration_is_valid_and_states_the_defaults() {
    let readme = include_str!("../../README.md");
    let (_, rest) = readme.split_once("### Configuration").expect("a configuration section");
    let (_, rest) = rest.split_once("```toml\n").expect("a toml block");
    let (toml, _) = rest.split_once("```").expect("the end of the block");
    let config = Config::parse(toml, Path::new("README.md")).unwrap();
    assert_eq!(config.baseline, crate::baseline::Caps::default());
    assert_eq!(config.kernel, KernelConfig::default());
    assert_eq!(config.limits, LimitsConfig::default());
    assert_eq!(
        config.phases.pids_max(crate::identity::Phase::ReadOnly),
        crate::phases::DEFAULT_PIDS_MAX
    );
}

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn fields_override_defaults_section_by_section() {
    let config =
        parse("[daemon]\nsocket = \"/tmp/p.sock\"\n[kernel]\nring_buffer_bytes = 8192\n").unwrap();
    assert_eq!(config.daemon.socket, PathBuf::from("/tmp/p.sock"));
    assert_eq!(config.daemon.state_dir, DaemonConfig::default().state_dir);
    assert_eq!(config.kernel.ring_buffer_bytes, 8192);
    assert_eq!(config.local, LocalConfig::default());
}

#[test]
fn unknown_fields_name_the_file_and_the_line() {
    let err = parse("[daemon]\nsockt = \"/x\"\n").unwrap_err().to_string();
    assert!(err.contains("/etc/paddock/test.toml"), "{err}");
    assert!(err.contains("sockt"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn bad_values_say_which_field_and_why() {
    let err = parse("[kernel]\nring_buffer_bytes = 5000\n").unwrap_err().to_string();
    assert!(err.contains("kernel.ring_buffer_bytes = 5000"), "{err}");
    assert!(err.contains("power of two"), "{err}");
    let err = parse("[local]\ncgroup_parent = \"../escape\"\n").unwrap_err().to_string();
    assert!(err.contains("local.cgroup_parent"), "{err}");
    for pin in ["/tmp/paddock", "/sys/fs/bpf", "/sys/fs/bpf/../x", "/sys/fs/bpf/p.v2"] {
        let err = parse(&format!("[kernel]\npin_dir = {pin:?}\n")).unwrap_err().to_string();
        assert!(err.contains("kernel.pin_dir"), "{pin}: {err}");
    }
    let err = parse("[daemon]\non_stop = \"linger\"\n").unwrap_err().to_string();
    assert!(err.contains("on_stop") && err.contains("keep-enforcing"), "{err}");
    let config = parse("[daemon]\non_stop = \"detach\"\n").unwrap();
    assert_eq!(config.daemon.on_stop, OnStop::Detach);
}

#[test]
fn alert_receivers_are_read_and_checked() {
    let config = parse(
        "[[alerts.receivers]]\nkind = \"alertmanager\"\nname = \"am\"\nurl = \"http://127.0.0.1:9093\"\n\
         [[alerts.receivers]]\nkind = \"stdout\"\nname = \"log\"\n",
    )
    .unwrap();
    assert_eq!(config.alerts.receivers.len(), 2);
    let err = parse("[[alerts.receivers]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"ftp://x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/etc/paddock/test.toml") && err.contains("alerts.receivers[0]"), "{err}");
}

#[test]
fn kubernetes_errors_name_the_file_and_the_key() {
    let err = parse("[kubernetes]\ncgroup_parent = \"../x\"\n").unwrap_err().to_string();
    assert!(
        err.contains("/etc/paddock/test.toml") && err.contains("kubernetes.cgroup_parent"),
        "{err}"
    );
    let config = parse("[kubernetes]\nenabled = true\nnode_name = \"node-a\"\n").unwrap();
    assert!(config.kubernetes.enabled);
}

#[test]
fn dns_binding_bounds_are_checked_and_named() {
    let config = parse("[dns]\nmin_ttl_s = 5\nmax_ttl_s = 10\n").unwrap();
    assert_eq!((config.dns.min_ttl_s, config.dns.max_ttl_s), (5, 10));
    assert_eq!(Config::default().dns.min_ttl_s, 60);
    let err = parse("[dns]\nmin_ttl_s = 11\nmax_ttl_s = 10\n").unwrap_err().to_string();
    assert!(err.contains("dns.min_ttl_s = 11") && err.contains("at most"), "{err}");
    let err = parse("[dns]\nmax_ttl_s = 0\n").unwrap_err().to_string();
    assert!(err.contains("dns.max_ttl_s") && err.contains("604800"), "{err}");
    assert!(parse("[dns]\nmax_ttl_s = 604801\n").is_err());
}

#[test]
fn limits_leave_room_for_other_investigations() {
    let config = parse("[limits]\nprocesses = 100\n[enforcement]\nfail_closed = false\n").unwrap();
    assert_eq!(config.limits.processes, 100);
    assert!(!config.enforcement.fail_closed);
    assert!(Config::default().enforcement.fail_closed, "fail closed by default");
    let err = parse("[limits]\nprocesses = 40000\n").unwrap_err().to_string();
    assert!(err.contains("limits.processes = 40000") && err.contains("half"), "{err}");
    let err = parse("[limits]\ncgroups = 0\n").unwrap_err().to_string();
    assert!(err.contains("limits.cgroups"), "{err}");
    let err = parse("[kernel]\nmax_tracked_processes = 10\n").unwrap_err().to_string();
    assert!(err.contains("kernel.max_tracked_processes"), "{err}");
}

#[test]
fn a_named_file_must_exist() {
    let err = Config::load(Some(Path::new("/nonexistent/paddock.toml"))).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/paddock.toml"), "{err}");
}

#[test]
fn baseline_caps_and_policy_maps_are_read_and_checked() {
    let config = parse(
        "[baseline]\nexecs = 100\n[kernel]\npolicy_egress = 64\n[phases.read-only]\npids_max = 64\n",
    )
    .unwrap();
    assert_eq!(config.baseline.execs, 100);
    assert_eq!(config.baseline.egress, crate::baseline::Caps::default().egress);
    assert_eq!(config.kernel.policy_egress, 64);
    assert_eq!(config.phases.pids_max(crate::identity::Phase::ReadOnly), 64);
    assert_eq!(
        config.policy_shortfalls(),
        [("kernel.policy_egress", 4 * crate::baseline::Caps::default().egress as u64)]
    );
    assert!(Config::default().policy_shortfalls().is_empty(), "the defaults fit");
    let err = parse("[baseline]\nexecs = 0\n").unwrap_err().to_string();
    assert!(err.contains("baseline.execs = 0") && err.contains("test.toml"), "{err}");
    let err = parse("[baseline]\nexec = 10\n").unwrap_err().to_string();
    assert!(err.contains("unknown field `exec`"), "{err}");
    let err = parse("[daemon]\nrecent_events = 2000000\n").unwrap_err().to_string();
    assert!(err.contains("daemon.recent_events = 2000000"), "{err}");
    let err = parse("[kernel]\npolicy_paths = 0\n").unwrap_err().to_string();
    assert!(err.contains("kernel.policy_paths = 0"), "{err}");
    let err = parse("[phases.read-only]\npids_max = 5000\n").unwrap_err().to_string();
    assert!(err.contains("test.toml") && err.contains("phases.read-only.pids_max = 5000"), "{err}");
}

/// What `toml::to_string` writes of a configuration loads back as the same configuration:
/// the test harnesses write the daemon's file from a `Config` value.
#[test]
fn a_written_configuration_loads_back_the_same() {
    let config = Config::default();
    let text = toml::to_string(&config).expect("a configuration serialises");
    assert_eq!(parse(&text).unwrap(), config, "{text}");
}

/// The same with every section set, each kind of receiver and export among them.
#[test]
fn a_full_written_configuration_loads_back_the_same() {
    let config = parse(
        "[daemon]\nsocket = \"/tmp/p.sock\"\non_stop = \"detach\"\nrecent_events = 10\n\
         [kernel]\npolicy_egress = 64\n[local]\ncgroup_parent = \"x/y\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n\
         [kubernetes]\nenabled = true\nnode_name = \"node-a\"\n\
         [limits]\nprocesses = 100\n[dns]\nmax_ttl_s = 60\n[enforcement]\nfail_closed = false\n\
         [baseline]\nexecs = 100\n[phases.read-only]\npids_max = 64\n\
         [[alerts.receivers]]\nkind = \"alertmanager\"\nname = \"am\"\nurl = \"http://127.0.0.1:9093\"\n\
         [[alerts.receivers]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"http://127.0.0.1:1/\"\nhmac_secret = \"s\"\n\
         [[alerts.receivers]]\nkind = \"stdout\"\nname = \"log\"\n\
         [[export]]\nkind = \"postgres\"\nname = \"pg\"\nurl = \"postgres://u@127.0.0.1:5432/db?sslmode=disable\"\n\
         [[export]]\nkind = \"jsonl\"\nname = \"file\"\npath = \"/var/log/paddock/e.jsonl\"\n",
    )
    .unwrap();
    assert_ne!(config, Config::default());
    let text = toml::to_string(&config).expect("a configuration serialises");
    assert_eq!(parse(&text).unwrap(), config, "{text}");
}

/// The constructors the harnesses build configurations with give what a table with only
/// the required keys reads as.
#[test]
fn constructors_agree_with_the_defaults_of_a_table() {
    use crate::sinks::{
        alerts::{AlertmanagerReceiver, ReceiverConfig, WebhookReceiver},
        export::config::{ExportConfig, JsonlExport, PostgresExport},
    };
    let config = parse(
        "[[alerts.receivers]]\nkind = \"alertmanager\"\nname = \"am\"\nurl = \"http://127.0.0.1:9093\"\n\
         [[alerts.receivers]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"http://127.0.0.1:1/\"\n\
         [[export]]\nkind = \"postgres\"\nname = \"pg\"\nurl = \"postgres://u@127.0.0.1:5432/db\"\n\
         [[export]]\nkind = \"jsonl\"\nname = \"file\"\npath = \"/var/log/e.jsonl\"\n",
    )
    .unwrap();
    assert_eq!(
        config.alerts.receivers,
        [
            ReceiverConfig::Alertmanager(AlertmanagerReceiver::new("am", "http://127.0.0.1:9093")),
            ReceiverConfig::Webhook(WebhookReceiver::new("w", "http://127.0.0.1:1/")),
        ]
    );
    assert_eq!(
        config.export,
        [
            ExportConfig::Postgres(PostgresExport::new("pg", "postgres://u@127.0.0.1:5432/db")),
            ExportConfig::Jsonl(JsonlExport::new("file", "/var/log/e.jsonl")),
        ]
    );
}
