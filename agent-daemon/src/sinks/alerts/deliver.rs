//! Sending a batch of alerts to one receiver: HTTP with a timeout and retries with
//! exponential backoff, or a line on standard output.
use std::{
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::Duration,
};

use hmac::{Hmac, Mac};
use reqwest::{StatusCode, header};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{alert::Alert, stats::ReceiverStats};

pub const SIGNATURE_HEADER: &str = "X-Paddock-Signature";
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The most response body a refused request logs.
const LOGGED_BODY: usize = 1024;

/// How alerts are laid out in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Alertmanager's v2 array; a batch goes in one request.
    Alertmanager,
    /// One object per request.
    Object,
}

pub struct Http {
    pub client: reqwest::Client,
    pub url: String,
    pub format: Format,
    pub mac: Option<Hmac<Sha256>>,
    pub max_retries: u32,
}

pub enum Target {
    Http(Http),
    Lines(Box<dyn AsyncWrite + Send + Unpin>),
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Failed,
    /// The daemon stopped first.
    Stopped,
}

/// One HTTP attempt.
enum Attempt {
    Accepted,
    /// Worth another try (unreachable, timed out, 5xx, 429), maybe after a hinted delay.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Refused for good (4xx other than 429, or anything else not 2xx).
    Refused {
        status: StatusCode,
        body: String,
    },
}

impl Target {
    /// How many alerts one request may carry.
    pub fn batch_limit(&self) -> usize {
        match self {
            Target::Http(Http { format: Format::Alertmanager, .. }) => 64,
            _ => 1,
        }
    }

    pub async fn deliver(
        &mut self,
        batch: &[Arc<Alert>],
        stats: &ReceiverStats,
        stop: &CancellationToken,
    ) -> Outcome {
        match self {
            Target::Http(http) => http.deliver(batch, stats, stop).await,
            Target::Lines(out) => tokio::select! {
                biased;
                _ = stop.cancelled() => Outcome::Stopped,
                outcome = write_lines(out, batch, stats) => outcome,
            },
        }
    }
}

impl Http {
    async fn deliver(
        &self,
        batch: &[Arc<Alert>],
        stats: &ReceiverStats,
        stop: &CancellationToken,
    ) -> Outcome {
        let value = match (self.format, batch) {
            (Format::Object, [one]) => one.object_json(),
            (Format::Object, _) => Value::Array(batch.iter().map(|a| a.object_json()).collect()),
            (Format::Alertmanager, _) => Alert::alertmanager_body(batch),
        };
        let body = match serde_json::to_vec(&value) {
            Ok(body) => body,
            Err(e) => {
                warn!(receiver = %stats.name, error = %e, "cannot encode alert");
                return Outcome::Failed;
            }
        };
        let signature = self.mac.as_ref().map(|mac| signature(mac, &body));
        let mut why = String::new();
        for retry in 0..=self.max_retries {
            if retry > 0 {
                stats.add_retry();
            }
            let attempt = tokio::select! {
                biased;
                _ = stop.cancelled() => return Outcome::Stopped,
                a = self.attempt(&body, signature.as_deref()) => a,
            };
            let hint = match attempt {
                Attempt::Accepted => {
                    if retry > 0 {
                        info!(receiver = %stats.name, retries = retry, "alert delivered late");
                    }
                    return Outcome::Delivered;
                }
                Attempt::Refused { status, body } => {
                    warn!(receiver = %stats.name, %status, response = %body, "alert refused");
                    return Outcome::Failed;
                }
                Attempt::Retry { why: w, after } => {
                    debug!(receiver = %stats.name, retry, error = %w, "alert not delivered yet");
                    why = w;
                    after
                }
            };
            if retry == self.max_retries {
                break;
            }
            let delay = backoff(retry).max(hint.unwrap_or_default().min(MAX_BACKOFF));
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Outcome::Stopped,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        warn!(
            receiver = %stats.name, alerts = batch.len(), attempts = self.max_retries + 1,
            error = %why, "alert dropped: out of retries"
        );
        Outcome::Failed
    }

    async fn attempt(&self, body: &[u8], signature: Option<&str>) -> Attempt {
        let mut request = self
            .client
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Attempt::Retry { why: error_chain(&e), after: None },
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Accepted;
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                .map(Duration::from_secs);
            return Attempt::Retry { why: format!("HTTP {status}"), after };
        }
        let mut body = response.text().await.unwrap_or_default();
        if body.len() > LOGGED_BODY {
            let cut = (0..=LOGGED_BODY).rev().find(|&i| body.is_char_boundary(i)).unwrap_or(0);
            body.truncate(cut);
            body.push_str("...");
        }
        Attempt::Refused { status, body }
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(mac: &Hmac<Sha256>, body: &[u8]) -> String {
    let tag = mac.clone().chain_update(body).finalize().into_bytes();
    format!("sha256={}", hex::encode(tag))
}

/// The wait before retry `retry + 1`: 100 ms doubling to 10 s, less up to a quarter at
/// random so that many nodes do not retry in step.
pub fn backoff(retry: u32) -> Duration {
    let full = FIRST_BACKOFF.saturating_mul(1 << retry.min(16)).min(MAX_BACKOFF);
    let jitter = RandomState::new().hash_one(retry) % 256;
    full - full.mul_f64(jitter as f64 / 1024.0)
}

/// A reqwest error with its causes (`error sending request: ... Connection refused`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn write_lines(
    out: &mut (dyn AsyncWrite + Send + Unpin),
    batch: &[Arc<Alert>],
    stats: &ReceiverStats,
) -> Outcome {
    let mut text = Vec::new();
    for alert in batch {
        if serde_json::to_writer(&mut text, &alert.object_json()).is_err() {
            return Outcome::Failed;
        }
        text.push(b'\n');
    }
    match async { out.write_all(&text).await.and(out.flush().await) }.await {
        Ok(()) => Outcome::Delivered,
        Err(e) => {
            warn!(receiver = %stats.name, error = %e, "cannot write alert line");
            Outcome::Failed
        }
    }
}
