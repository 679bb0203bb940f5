//! Turning a receiver's configuration into something that can send: its URL, HTTP client
//! and signing key, or its output stream.
use std::{path::PathBuf, time::Duration};

use hmac::{Hmac, KeyInit};
use sha2::Sha256;
use tokio::io::AsyncWrite;

use super::{
    config::{InvalidReceiver, ReceiverConfig, STDOUT_QUEUE},
    deliver::{Format, Http, Target},
};

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Invalid(#[from] InvalidReceiver),
    #[error("alerts receiver {receiver:?}: cannot read hmac_secret_file {path}: {source}")]
    SecretFile { receiver: String, path: PathBuf, source: std::io::Error },
    #[error("alerts receiver {receiver:?}: hmac_secret_file {path} is empty")]
    EmptySecret { receiver: String, path: PathBuf },
    #[error("alerts receiver {receiver:?}: cannot make its HTTP client: {source}")]
    Client { receiver: String, source: reqwest::Error },
}

/// Where standard output alerts are written (the process's stdout outside tests).
pub type OpenOutput<'a> = &'a dyn Fn() -> Box<dyn AsyncWrite + Send + Unpin>;

/// The receiver's target and its queue size.
pub fn target(
    receiver: &ReceiverConfig,
    stdout: OpenOutput<'_>,
) -> Result<(Target, usize), AlertsError> {
    let name = receiver.name();
    match receiver {
        ReceiverConfig::Alertmanager(r) => {
            let http = Http {
                client: client(name, r.timeout_ms)?,
                url: format!("{}/api/v2/alerts", r.url.trim_end_matches('/')),
                format: Format::Alertmanager,
                mac: None,
                max_retries: r.max_retries,
            };
            Ok((Target::Http(http), r.queue))
        }
        ReceiverConfig::Webhook(r) => {
            let secret = match (&r.hmac_secret, &r.hmac_secret_file) {
                (Some(secret), _) => Some(secret.0.clone().into_bytes()),
                (None, Some(path)) => Some(read_secret(name, path)?),
                (None, None) => None,
            };
            let http = Http {
                client: client(name, r.timeout_ms)?,
                url: r.url.clone(),
                format: Format::Object,
                // HMAC takes keys of any length, so this never fails.
                mac: secret.and_then(|s| Hmac::<Sha256>::new_from_slice(&s).ok()),
                max_retries: r.max_retries,
            };
            Ok((Target::Http(http), r.queue))
        }
        ReceiverConfig::Stdout(_) => Ok((Target::Lines(stdout()), STDOUT_QUEUE)),
    }
}

fn client(receiver: &str, timeout_ms: u64) -> Result<reqwest::Client, AlertsError> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        // A redirected POST would lose its body or carry the signature elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("paddock/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| AlertsError::Client { receiver: receiver.to_owned(), source })
}

/// The file's bytes less one trailing newline (as `echo` or an editor leaves it).
fn read_secret(receiver: &str, path: &PathBuf) -> Result<Vec<u8>, AlertsError> {
    let mut secret = std::fs::read(path).map_err(|source| AlertsError::SecretFile {
        receiver: receiver.to_owned(),
        path: path.clone(),
        source,
    })?;
    if secret.ends_with(b"\n") {
        secret.pop();
        if secret.ends_with(b"\r") {
            secret.pop();
        }
    }
    if secret.is_empty() {
        return Err(AlertsError::EmptySecret { receiver: receiver.to_owned(), path: path.clone() });
    }
    Ok(secret)
}
