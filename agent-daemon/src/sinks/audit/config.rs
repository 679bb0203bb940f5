//! The `[audit]` settings: where the store lives, how long and how much it keeps, and how
//! events are batched into transactions.
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize, serde::Serialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Keep events in the audit store at all.
    pub enabled: bool,
    /// The database file; `None` is `<state_dir>/audit.db`, resolved by the caller.
    pub path: Option<PathBuf>,
    /// Ended runs older than this many days are deleted with their events; 0 keeps them.
    pub max_age_days: u64,
    /// When the database holds more than this, the oldest ended runs are deleted until it
    /// holds less; 0 is no limit.
    pub max_bytes: u64,
    /// A batch (one transaction) is written when it has this many events...
    pub batch_max_events: usize,
    /// ...or when its first event has waited this long.
    pub batch_max_delay_ms: u64,
    /// Events waiting for the writer: a burst the store cannot take at once waits here;
    /// beyond it events are dropped and counted (`paddock_sink_dropped_events_total{sink="audit"}`).
    /// About 0.4 KiB of memory each.
    pub queue: usize,
    /// Where `paddock audit list | show | tree` read when given no `--source` or `--db`: a
    /// `postgres://USER@HOST:PORT/DATABASE` URL of the cluster's store (no password in it);
    /// `None` reads this node's own store. The daemon itself never reads it.
    pub source: Option<String>,
    /// The CA certificates (PEM) the source's server certificate must chain to; the
    /// system's roots when unset.
    pub source_ca_file: Option<PathBuf>,
    /// A file whose first line is the source's password; else `$PGPASSWORD`, else none.
    pub source_password_file: Option<PathBuf>,
}

pub const GIB: u64 = 1 << 30;
/// The smallest `max_bytes` other than 0: below this the schema alone comes close.
pub const MIN_MAX_BYTES: u64 = 1 << 20;
pub const MAX_BATCH_EVENTS: usize = 100_000;
pub const MAX_BATCH_DELAY_MS: u64 = 10_000;
pub const MIN_QUEUE: usize = 1024;
pub const MAX_QUEUE: usize = 1 << 20;

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            max_age_days: 30,
            max_bytes: GIB,
            batch_max_events: 2000,
            batch_max_delay_ms: 50,
            // A second and more of the writer's sustained rate (see BENCHMARKS.md), about
            // 25 MiB when full: within the daemon's 64 MiB budget.
            queue: 64 * 1024,
            source: None,
            source_ca_file: None,
            source_password_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit.{field} = {value}: {rule}")]
pub struct AuditConfigError {
    pub field: &'static str,
    pub value: String,
    pub rule: String,
}

impl AuditConfig {
    pub fn validate(&self) -> Result<(), AuditConfigError> {
        let invalid = |field, value: String, rule: &str| {
            Err(AuditConfigError { field, value, rule: rule.to_owned() })
        };
        if let Some(url) = &self.source {
            use crate::sinks::cluster_audit::settings::{UrlProblem, parse_url, redact};
            match parse_url(url) {
                Ok(_) => {}
                Err(UrlProblem::Password) => {
                    return invalid(
                        "source",
                        format!("{:?}", redact(url)),
                        "must not hold a password: put it in a file named by \
                         audit.source_password_file",
                    );
                }
                Err(UrlProblem::Bad(problem)) => {
                    return Err(AuditConfigError {
                        field: "source",
                        value: format!("{url:?}"),
                        rule: problem,
                    });
                }
            }
        }
        for (field, path) in [
            ("source_ca_file", &self.source_ca_file),
            ("source_password_file", &self.source_password_file),
        ] {
            if let Some(path) = path
                && !path.is_absolute()
            {
                return invalid(
                    field,
                    format!("{:?}", path.display().to_string()),
                    "must be absolute",
                );
            }
        }
        if let Some(path) = &self.path
            && !path.is_absolute()
        {
            return invalid(
                "path",
                format!("{:?}", path.display().to_string()),
                "must be absolute",
            );
        }
        if self.max_bytes != 0 && self.max_bytes < MIN_MAX_BYTES {
            return invalid(
                "max_bytes",
                self.max_bytes.to_string(),
                "must be 0 (no limit) or at least 1048576 (1 MiB)",
            );
        }
        if self.max_age_days > 100 * 365 {
            return invalid(
                "max_age_days",
                self.max_age_days.to_string(),
                "must be at most 36500; 0 keeps events forever",
            );
        }
        if !(1..=MAX_BATCH_EVENTS).contains(&self.batch_max_events) {
            return invalid(
                "batch_max_events",
                self.batch_max_events.to_string(),
                "must be 1 to 100000",
            );
        }
        if !(MIN_QUEUE..=MAX_QUEUE).contains(&self.queue) {
            return invalid(
                "queue",
                self.queue.to_string(),
                "must be 1024 to 1048576 events (about 0.4 KiB of memory each)",
            );
        }
        if self.batch_max_delay_ms > MAX_BATCH_DELAY_MS {
            return invalid(
                "batch_max_delay_ms",
                self.batch_max_delay_ms.to_string(),
                "must be at most 10000",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuditConfig, String> {
        let config: AuditConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn empty_section_gives_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, AuditConfig::default());
        assert!(config.enabled);
        assert_eq!(config.path, None);
        assert_eq!(config.max_age_days, 30);
        assert_eq!(config.max_bytes, 1 << 30);
        assert_eq!(config.batch_max_events, 2000);
        assert_eq!(config.batch_max_delay_ms, 50);
    }

    #[test]
    fn fields_override_the_defaults() {
        let config = parse("path = \"/srv/audit.db\"\nmax_age_days = 0\nmax_bytes = 0\n").unwrap();
        assert_eq!(config.path, Some(PathBuf::from("/srv/audit.db")));
        assert_eq!(config.max_age_days, 0);
        assert_eq!(config.max_bytes, 0);
        assert_eq!(config.batch_max_events, 2000);
    }

    #[test]
    fn bad_values_name_the_field_and_the_rule() {
        let err = parse("max_bytes = 1000\n").unwrap_err();
        assert_eq!(err, "audit.max_bytes = 1000: must be 0 (no limit) or at least 1048576 (1 MiB)");
        let err = parse("batch_max_events = 0\n").unwrap_err();
        assert!(err.starts_with("audit.batch_max_events = 0: "), "{err}");
        let err = parse("path = \"audit.db\"\n").unwrap_err();
        assert!(err.starts_with("audit.path = \"audit.db\": must be absolute"), "{err}");
        let err = parse("batch_max_delay_ms = 60000\n").unwrap_err();
        assert!(err.starts_with("audit.batch_max_delay_ms = 60000"), "{err}");
        let err = parse("queue = 0\n").unwrap_err();
        assert!(err.starts_with("audit.queue = 0: must be 1024 to 1048576"), "{err}");
        assert_eq!(parse("queue = 4096\n").unwrap().queue, 4096);
    }

    #[test]
    fn the_query_source_is_a_postgres_url_without_a_password() {
        let config = parse(
            "source = \"postgres://auditor@db:5432/paddock?sslmode=verify-full\"\n\
                   source_ca_file = \"/etc/paddock/db-ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(
            config.source.as_deref(),
            Some("postgres://auditor@db:5432/paddock?sslmode=verify-full")
        );
        let err = parse("source = \"postgres://auditor:hunter2@db/paddock\"\n").unwrap_err();
        assert!(
            err.starts_with(
                "audit.source = \"postgres://auditor:***@db/paddock\": must not hold a password"
            ),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse("source = \"/var/lib/paddock/audit.db\"\n").unwrap_err();
        assert!(err.contains("not a postgres:// URL"), "{err}");
        let err =
            parse("source = \"postgres://a@h/d\"\nsource_password_file = \"pw\"\n").unwrap_err();
        assert!(err.starts_with("audit.source_password_file = \"pw\": must be absolute"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse("max_days = 3\n").unwrap_err();
        assert!(err.contains("max_days"), "{err}");
    }
}
