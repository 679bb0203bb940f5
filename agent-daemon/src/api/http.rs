//! The daemon's HTTP server: `/metrics` (Prometheus, classic text format), `/healthz`,
//! `/readyz`, and the query API under `/v1/`, which an optional bearer token protects.
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct HttpState {
    pub registry: Registry,
    /// Set once the probes are attached and the workload sources have synced.
    pub ready: Arc<AtomicBool>,
    /// The cluster's trust phases, when they live there: ready once they are in sync.
    pub phases: Option<Arc<crate::cluster::sync::Phases>>,
    pub token: Option<String>,
    /// The audit store the query API reads; `None` when it is disabled.
    pub audit: Option<std::path::PathBuf>,
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut text, &state.registry)
        .map(|()| text)
    {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
            .into_response(),
        Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response();
    }
    match state.phases.as_ref().and_then(|p| p.unsynced()) {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(problem) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {problem}\n")).into_response()
        }
    }
}

/// Whether `given` is `token`, in time that does not depend on where they differ (only on
/// their lengths), so that a wrong guess says nothing about the right one.
fn same(given: &[u8], token: &[u8]) -> bool {
    if given.len() != token.len() {
        return false;
    }
    let diff = given.iter().zip(token).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// Requests to the query API must carry `Authorization: Bearer <token>` when a token is set.
async fn require_token(
    State(state): State<Arc<HttpState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|given| same(given.as_bytes(), token.as_bytes())) {
            let problem =
                if given.is_some() { "wrong bearer token" } else { "a bearer token is required" };
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(serde_json::json!({ "error": problem })),
            )
                .into_response();
        }
    }
    next.run(request).await
}

pub fn router(state: Arc<HttpState>, api: Router<Arc<HttpState>>) -> Router {
    let api = api.layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/v1", api)
        .with_state(state)
}

pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    if let Err(e) =
        axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
    {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

#[cfg(test)]
mod same_tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cres", b"s3cret"));
        assert!(!same(b"s3cret-and-more", b"s3cret"));
        assert!(!same(b"", b"s3cret"));
    }
}
