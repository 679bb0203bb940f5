//! Where alerts go: the `[alerts]` section and its `[[alerts.receivers]]` tables.
use std::{collections::HashSet, fmt, path::PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// The `node` label on every alert; the daemon fills in the node's name when unset.
    pub node: Option<String>,
    pub receivers: Vec<ReceiverConfig>,
}

/// One receiver, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReceiverConfig {
    /// Prometheus Alertmanager: `POST {url}/api/v2/alerts`.
    Alertmanager(AlertmanagerReceiver),
    /// Any HTTP endpoint: one JSON object per alert, optionally signed.
    Webhook(WebhookReceiver),
    /// One JSON object per line on standard output, for the node's log shipper.
    Stdout(StdoutReceiver),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerReceiver {
    pub name: String,
    /// Base URL, such as `http://127.0.0.1:9093`.
    pub url: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_queue")]
    pub queue: usize,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookReceiver {
    pub name: String,
    pub url: String,
    /// Signs each body: `X-Paddock-Signature: sha256=<hex HMAC-SHA256>`.
    pub hmac_secret: Option<Secret>,
    /// The secret read from a file (one trailing newline is ignored).
    pub hmac_secret_file: Option<PathBuf>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_queue")]
    pub queue: usize,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutReceiver {
    pub name: String,
}

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl AlertmanagerReceiver {
    /// A receiver at `url` with every other setting at its default.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        AlertmanagerReceiver {
            name: name.into(),
            url: url.into(),
            timeout_ms: default_timeout_ms(),
            queue: default_queue(),
            max_retries: default_max_retries(),
        }
    }
}

impl WebhookReceiver {
    /// A receiver at `url`, unsigned, with every other setting at its default.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        WebhookReceiver {
            name: name.into(),
            url: url.into(),
            hmac_secret: None,
            hmac_secret_file: None,
            timeout_ms: default_timeout_ms(),
            queue: default_queue(),
            max_retries: default_max_retries(),
        }
    }
}

fn default_timeout_ms() -> u64 {
    2000
}
fn default_queue() -> usize {
    1024
}
fn default_max_retries() -> u32 {
    8
}

/// The longest queue a receiver may have: alerts wait there while it is slow or down.
pub const MAX_QUEUE: usize = 65536;

/// Queue size of a stdout receiver, which has no setting for it.
pub const STDOUT_QUEUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alerts.receivers[{index}] ({receiver:?}): {field} = {value}: {rule}")]
pub struct InvalidReceiver {
    /// Position in `[[alerts.receivers]]`, from 0.
    pub index: usize,
    pub receiver: String,
    pub field: &'static str,
    pub value: String,
    pub rule: &'static str,
}

impl ReceiverConfig {
    pub fn name(&self) -> &str {
        match self {
            ReceiverConfig::Alertmanager(r) => &r.name,
            ReceiverConfig::Webhook(r) => &r.name,
            ReceiverConfig::Stdout(r) => &r.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ReceiverConfig::Alertmanager(_) => "alertmanager",
            ReceiverConfig::Webhook(_) => "webhook",
            ReceiverConfig::Stdout(_) => "stdout",
        }
    }

    /// (url, timeout_ms, queue) of an HTTP receiver.
    fn http(&self) -> Option<(&str, u64, usize)> {
        match self {
            ReceiverConfig::Alertmanager(r) => Some((&r.url, r.timeout_ms, r.queue)),
            ReceiverConfig::Webhook(r) => Some((&r.url, r.timeout_ms, r.queue)),
            ReceiverConfig::Stdout(_) => None,
        }
    }
}

impl AlertsConfig {
    /// Check every receiver; the error names the receiver and the field.
    pub fn validate(&self) -> Result<(), InvalidReceiver> {
        let mut names = HashSet::new();
        for (index, receiver) in self.receivers.iter().enumerate() {
            let name = receiver.name();
            let invalid = |field, value: &str, rule| InvalidReceiver {
                index,
                receiver: name.to_owned(),
                field,
                value: value.to_owned(),
                rule,
            };
            if name.trim().is_empty() {
                return Err(invalid("name", &format!("{name:?}"), "must not be empty"));
            }
            if !names.insert(name) {
                return Err(invalid("name", &format!("{name:?}"), "is used by another receiver"));
            }
            if let Some((url, timeout_ms, queue)) = receiver.http() {
                if !is_http_url(url) {
                    return Err(invalid("url", url, "must be an http:// or https:// URL"));
                }
                if timeout_ms == 0 {
                    return Err(invalid("timeout_ms", "0", "must be at least 1"));
                }
                if queue == 0 || queue > MAX_QUEUE {
                    return Err(invalid(
                        "queue",
                        &queue.to_string(),
                        "must be 1 to 65536 alerts (each a few KiB of memory while queued)",
                    ));
                }
            }
            if let ReceiverConfig::Webhook(w) = receiver {
                if let (Some(_), Some(file)) = (&w.hmac_secret, &w.hmac_secret_file) {
                    return Err(invalid(
                        "hmac_secret_file",
                        &file.display().to_string(),
                        "set either hmac_secret or hmac_secret_file, not both",
                    ));
                }
                if w.hmac_secret.as_ref().is_some_and(|s| s.0.is_empty()) {
                    return Err(invalid("hmac_secret", "\"\"", "must not be empty when set"));
                }
            }
        }
        Ok(())
    }
}

fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
