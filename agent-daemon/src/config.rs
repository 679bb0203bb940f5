//! The daemon's configuration: one TOML file, every field with a default; flags and
//! environment variables (see `cli`) override the file.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The most events `daemon.recent_events` may keep in memory.
pub const MAX_RECENT_EVENTS: usize = 1 << 20;

/// The largest policy map (`kernel.policy_*`) accepted.
pub const MAX_POLICY_ENTRIES: u32 = 1 << 20;

/// Where the daemon looks for its configuration when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/paddock/paddock.toml";
pub const DEFAULT_SOCKET: &str = "/run/paddock/paddock.sock";

pub use crate::kernel::config::KernelConfig;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub kernel: KernelConfig,
    pub local: LocalConfig,
    pub http: HttpConfig,
    /// Where verdicts are sent as alerts (`[[alerts.receivers]]`).
    pub alerts: crate::sinks::alerts::AlertsConfig,
    /// The audit store: every event of every investigation, for forensic queries.
    pub audit: crate::sinks::audit::AuditConfig,
    /// Pods of this node as investigations (`[kubernetes]`).
    pub kubernetes: crate::workloads::kubernetes::config::KubernetesConfig,
    /// What one investigation may take of the node's kernel state.
    pub limits: LimitsConfig,
    /// How long DNS answers bind addresses to names (`[dns]`).
    pub dns: crate::kernel::config::DnsConfig,
    pub enforcement: EnforcementConfig,
    /// Each baseline set's cap while learning (`[baseline]`).
    pub baseline: crate::baseline::Caps,
    /// Settings per trust phase (`[phases.<phase>]`).
    pub phases: crate::phases::PhasesConfig,
    /// Where the audit trail is forwarded (`[[export]]`), each event exactly once.
    pub export: Vec<crate::sinks::export::ExportConfig>,
}

/// Per-investigation bounds, so that one investigation cannot blind paddock to the others
/// or leave their processes untracked. What is refused is counted against the
/// investigation (and, in `enforce`, kills it unless `enforcement.fail_closed` is off).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Records that decide nothing (opens, connects, forks, execs...) one investigation may
    /// write to the ring buffer per second (spread over the CPUs); the rest are throttled.
    /// Kills and refusals are always written. 0: no limit.
    pub records_per_second: u32,
    /// Processes the kernel tracks for one investigation at once.
    pub processes: u32,
    /// Cgroups one investigation may make and have tracked.
    pub cgroups: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { records_per_second: 50_000, processes: 4096, cgroups: 256 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnforcementConfig {
    /// In `enforce`, what paddock could not see kills: records lost or throttled, processes
    /// left untracked. The kernel dooms the investigation the moment it happens. Off: such
    /// investigations are flagged (a verdict) and left running.
    pub fail_closed: bool,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        Self { fail_closed: true }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Where `/metrics`, `/healthz`, `/readyz` and the query API (`/v1/...`) are served.
    /// Loopback by default; a DaemonSet sets its pod address.
    pub listen: std::net::SocketAddr,
    /// A bearer token the query API requires (`/metrics` and the probes stay open).
    pub token: Option<String>,
    /// The same, read from a file (a mounted Secret).
    pub token_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: ([127, 0, 0, 1], 9477).into(), token: None, token_file: None }
    }
}

impl HttpConfig {
    /// The query API's token, if one is set. An empty token file is refused: it would
    /// read as no token.
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        match (&self.token, &self.token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(path)) => {
                let token = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                let token = token.trim();
                if token.is_empty() {
                    return Err(ConfigError::Invalid {
                        path: path.clone(),
                        field: "http.token_file",
                        value: "(empty)".into(),
                        rule: "holds no token: put one in it (deploy/15-api-token.yaml)",
                    });
                }
                Ok(Some(token.to_owned()))
            }
            (None, None) => Ok(None),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// The control socket `paddock run`, `events` and `status` talk to.
    pub socket: PathBuf,
    /// Where baselines, the audit store and other state live.
    pub state_dir: PathBuf,
    /// Recent events kept in memory for `paddock events` without `--follow`.
    pub recent_events: usize,
    /// The group that owns the control socket (mode 0660): its members may use every
    /// request, as root may. A group that does not exist leaves the socket to root alone.
    pub socket_group: String,
    /// What a clean stop (SIGTERM, SIGINT) leaves behind: `keep-enforcing` leaves the
    /// kernel programs attached (pinned in `kernel.pin_dir`) and the running investigations
    /// tracked, for the next daemon to adopt; `detach` ends every investigation and removes
    /// the programs. A crash always leaves them, as `keep-enforcing` does.
    pub on_stop: OnStop,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnStop {
    #[default]
    KeepEnforcing,
    Detach,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// The cgroup, relative to the cgroup v2 mount, under which `paddock run` makes one
    /// cgroup per investigation; the egress programs attach here.
    pub cgroup_parent: PathBuf,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            socket: DEFAULT_SOCKET.into(),
            state_dir: "/var/lib/paddock".into(),
            recent_events: 4096,
            socket_group: "paddock".into(),
            on_stop: OnStop::KeepEnforcing,
        }
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self { cgroup_parent: "paddock".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    /// A section that validates itself (`[alerts]`, `[audit]`); the message names the field.
    #[error("{path}: {message}")]
    Alerts { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Kubernetes {
        path: PathBuf,
        source: crate::workloads::kubernetes::config::KubernetesConfigError,
    },
    #[error("{path}: {field} = {value}: {rule}")]
    Invalid { path: PathBuf, field: &'static str, value: String, rule: &'static str },
    /// A setting whose name is made from the file's own keys (`phases.<phase>.pids_max`).
    #[error("{path}: {field} = {value}: {rule}")]
    Setting { path: PathBuf, field: String, value: String, rule: String },
}

impl Config {
    /// This node's name: from `NODE_NAME` (a DaemonSet sets it from a fieldRef), else the
    /// host name.
    pub fn node_name(&self) -> Option<String> {
        std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()).or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned())
        })
    }

    /// The node name exports write: `kubernetes.node_name`, else [`Config::node_name`].
    pub fn export_node(&self) -> Option<String> {
        self.kubernetes
            .node_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| self.node_name())
    }

    /// Where the audit store lives: `audit.path`, or `<state_dir>/audit.db`.
    pub fn audit_path(&self) -> PathBuf {
        self.audit.path.clone().unwrap_or_else(|| self.daemon.state_dir.join("audit.db"))
    }

    /// Load `path`, or the default file when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Config::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(e) })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Check every field; `source` names where the values came from (a file, or the
    /// command line after flags were applied).
    pub fn validate(&self, source: &Path) -> Result<(), ConfigError> {
        let path = source;
        let invalid = |field, value: String, rule| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            value,
            rule,
        };
        let ring = self.kernel.ring_buffer_bytes;
        if !ring.is_power_of_two() || ring < 4096 {
            return Err(invalid(
                "kernel.ring_buffer_bytes",
                ring.to_string(),
                "must be a power of two of at least 4096",
            ));
        }
        let parent = &self.local.cgroup_parent;
        if parent.is_absolute()
            || parent.as_os_str().is_empty()
            || parent.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(invalid(
                "local.cgroup_parent",
                parent.display().to_string(),
                "must be a relative path below the cgroup v2 mount, without '..'",
            ));
        }
        if self.http.token.is_some() && self.http.token_file.is_some() {
            return Err(invalid(
                "http.token_file",
                format!("{:?}", self.http.token_file),
                "set http.token or http.token_file, not both",
            ));
        }
        if !self.http.listen.ip().is_loopback()
            && self.http.token.is_none()
            && self.http.token_file.is_none()
        {
            return Err(invalid(
                "http.listen",
                self.http.listen.to_string(),
                "is not a loopback address: set http.token or http.token_file, so that the \
                 query API is not open to the network",
            ));
        }
        if self.http.token.as_ref().is_some_and(|t| t.trim().is_empty()) {
            return Err(invalid(
                "http.token",
                "\"\"".into(),
                "an empty token would let anyone in; leave it out instead",
            ));
        }
        if let Err(e) = self.alerts.validate() {
            return Err(ConfigError::Alerts { path: path.to_path_buf(), message: e.to_string() });
        }
        if let Err(e) = self.audit.validate() {
            return Err(ConfigError::Alerts { path: path.to_path_buf(), message: e.to_string() });
        }
        if let Err(e) = crate::sinks::export::config::validate(&self.export).and_then(|()| {
            crate::sinks::export::config::validate_stdout(&self.export, &self.alerts.receivers)
        }) {
            return Err(ConfigError::Alerts { path: path.to_path_buf(), message: e.to_string() });
        }
        if !self.export.is_empty() && !self.audit.enabled {
            return Err(invalid(
                "export",
                format!("{} table(s)", self.export.len()),
                "exports the audit store: set audit.enabled = true, or remove [[export]]",
            ));
        }
        let node_env = std::env::var("NODE_NAME").ok();
        if let Err(source) = self.kubernetes.check(node_env) {
            return Err(ConfigError::Kubernetes { path: path.to_path_buf(), source });
        }
        let recent = self.daemon.recent_events;
        if !(1..=MAX_RECENT_EVENTS).contains(&recent) {
            return Err(invalid(
                "daemon.recent_events",
                recent.to_string(),
                "must be 1 to 1048576 (about 0.4 KiB of memory each)",
            ));
        }
        let pin = &self.kernel.pin_dir;
        if !pin.starts_with(&self.kernel.bpffs)
            || pin == &self.kernel.bpffs
            || pin.components().any(|c| matches!(c, std::path::Component::ParentDir))
            || pin.to_string_lossy().contains('.')
        {
            return Err(invalid(
                "kernel.pin_dir",
                pin.display().to_string(),
                "must be a directory below kernel.bpffs, without '.' in its name (bpffs refuses \
                 dots)",
            ));
        }
        let max = self.kernel.max_tracked_processes;
        if !(1024..=4 << 20).contains(&max) {
            return Err(invalid(
                "kernel.max_tracked_processes",
                max.to_string(),
                "must be between 1024 and 4194304",
            ));
        }
        let l = &self.limits;
        if l.processes == 0 || l.processes > max / 2 {
            return Err(invalid(
                "limits.processes",
                l.processes.to_string(),
                "must be at least 1 and at most half of kernel.max_tracked_processes, so that \
                 one investigation cannot fill the node's process map",
            ));
        }
        if l.cgroups == 0 || l.cgroups > agent_common::tracking::MAX_TRACKED_CGROUPS / 4 {
            return Err(invalid(
                "limits.cgroups",
                l.cgroups.to_string(),
                "must be between 1 and 2048 (a quarter of the node's cgroup map)",
            ));
        }
        for (field, entries) in [
            ("kernel.policy_paths", self.kernel.policy_paths),
            ("kernel.policy_egress", self.kernel.policy_egress),
            ("kernel.policy_sockets", self.kernel.policy_sockets),
            ("kernel.policy_names", self.kernel.policy_names),
        ] {
            if !(1..=MAX_POLICY_ENTRIES).contains(&entries) {
                return Err(invalid(field, entries.to_string(), "must be between 1 and 1048576"));
            }
        }
        let dns = &self.dns;
        if dns.max_ttl_s == 0 || dns.max_ttl_s > crate::kernel::config::MAX_DNS_TTL_S {
            return Err(invalid(
                "dns.max_ttl_s",
                dns.max_ttl_s.to_string(),
                "must be between 1 and 604800 (a week)",
            ));
        }
        if dns.min_ttl_s > dns.max_ttl_s {
            return Err(invalid(
                "dns.min_ttl_s",
                dns.min_ttl_s.to_string(),
                "must be at most dns.max_ttl_s",
            ));
        }
        if let Some((field, cap)) = self.baseline.invalid() {
            return Err(invalid(field, cap.to_string(), "must be between 1 and 1048576"));
        }
        self.phases.check(l.processes).map_err(|(field, value, rule)| ConfigError::Setting {
            path: path.to_path_buf(),
            field,
            value,
            rule,
        })?;
        Ok(())
    }

    /// Say at start which policy maps cannot hold every phase's full baseline.
    pub fn warn_policy_shortfalls(&self) {
        for (field, needed) in self.policy_shortfalls() {
            tracing::warn!(
                setting = field,
                needed,
                "four enforcing phases with baselines full to their caps ([baseline]) would not \
                 fit this kernel map: a phase that does not fit is judged by the daemon alone for \
                 that set (killed after the fact, not refused)"
            );
        }
    }

    /// What the policy maps cannot hold when every phase enforces a baseline full to its
    /// caps, as (map setting, entries needed): worth a warning at start, never an error
    /// (a phase that does not fit is judged by the daemon alone for that set).
    pub fn policy_shortfalls(&self) -> Vec<(&'static str, u64)> {
        let phases = agent_common::policy::PHASES as u64;
        let c = &self.baseline;
        [
            ("kernel.policy_paths", self.kernel.policy_paths, (c.execs + c.unix) as u64),
            ("kernel.policy_egress", self.kernel.policy_egress, c.egress as u64),
            ("kernel.policy_sockets", self.kernel.policy_sockets, c.sockets as u64),
            // Name rules share the egress cap; queried names have their own.
            ("kernel.policy_names", self.kernel.policy_names, (c.egress + c.dns) as u64),
        ]
        .into_iter()
        .filter(|(_, size, per_phase)| phases * per_phase > *size as u64)
        .map(|(field, _, per_phase)| (field, phases * per_phase))
        .collect()
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
