//! The forensic query API under `/v1/`, read from the audit store:
//!
//! - `GET /v1/investigations?id=&phase=&since=&outcome=&limit=`: runs, newest first;
//! - `GET /v1/investigations/{id}/events?run=&kind=&since=&until=&cursor=&limit=`: one page
//!   of an investigation's timeline, oldest first, with the cursor of the next page;
//! - `GET /v1/investigations/{id}/tree?run=`: the process tree of its latest (or given) run.
//!
//! Each request opens its own read-only connection on a blocking thread: in WAL mode a
//! reader never blocks the writer, and sees committed batches only.
use std::{path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::http::HttpState;
use crate::{
    identity::InvestigationId,
    sinks::audit::{AuditError, AuditStore, params},
};

/// An error as the API answers it: a status and `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<params::ParamError> for ApiError {
    fn from(e: params::ParamError) -> Self {
        ApiError(StatusCode::BAD_REQUEST, e.to_string())
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        let status = match &e {
            AuditError::UnknownInvestigation(_) | AuditError::UnknownRun(_) => {
                StatusCode::NOT_FOUND
            }
            AuditError::UnknownKind { .. }
            | AuditError::BadCursor { .. }
            | AuditError::BadLimit { .. }
            | AuditError::TimeOutOfRange(_) => StatusCode::BAD_REQUEST,
            _ => {
                tracing::warn!(error = %e, "audit query failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError(status, e.to_string())
    }
}

type Pairs = Query<Vec<(String, String)>>;

/// Run `query` on a fresh read-only connection, off the async threads.
async fn with_store<T: Send + 'static>(
    path: Option<PathBuf>,
    query: impl FnOnce(&AuditStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let path = path.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "the audit store is disabled (audit.enabled = false)".into(),
        )
    })?;
    tokio::task::spawn_blocking(move || {
        let store = AuditStore::open_read_only(&path)?;
        query(&store)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("query task failed: {e}")))?
}

fn investigation_id(given: &str) -> Result<InvestigationId, ApiError> {
    given.parse().map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("investigation id: {e}")))
}

async fn list(
    State(state): State<Arc<HttpState>>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let filter = params::list_filter(&pairs, chrono::Utc::now())?;
    let runs =
        with_store(state.audit.clone(), move |store| Ok(store.list_investigations(&filter)?))
            .await?;
    Ok(Json(json!({ "investigations": runs })).into_response())
}

async fn events(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let id = investigation_id(&id)?;
    let request = params::events_request(&pairs, chrono::Utc::now())?;
    let page = with_store(state.audit.clone(), move |store| {
        Ok(store.events(&id, &request.filter, request.cursor, request.limit)?)
    })
    .await?;
    Ok(Json(page).into_response())
}

async fn tree(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let id = investigation_id(&id)?;
    let run = params::tree_run(&pairs)?;
    let tree =
        with_store(state.audit.clone(), move |store| Ok(store.investigation_tree(&id, run)?))
            .await?;
    Ok(Json(tree).into_response())
}

/// The `/v1` routes (the token check is layered on by `http::router`).
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/investigations", get(list))
        .route("/investigations/{id}/events", get(events))
        .route("/investigations/{id}/tree", get(tree))
}
