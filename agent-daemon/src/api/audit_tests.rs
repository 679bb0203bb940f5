//! The query API over HTTP, on a real listener and a real store file (no root needed).
use std::sync::{Arc, atomic::AtomicBool};

use serde_json::Value;

use super::http::{self, HttpState};
use crate::sinks::audit::testutil::{run, store};

struct Server {
    base: String,
    _dir: tempfile::TempDir,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A server over a store holding `a` (ok, 5 opens, instance 1) and `b` (running, 2 opens).
async fn server(token: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = store(dir.path());
        store.write_batch(&run("a", 1, 0, 5, Some("ok"))).unwrap();
        store.write_batch(&run("b", 2, 100, 2, None)).unwrap();
    }
    let state = Arc::new(HttpState {
        registry: prometheus_client::registry::Registry::default(),
        ready: Arc::new(AtomicBool::new(true)),
        phases: None,
        token: token.map(str::to_owned),
        audit: Some(dir.path().join("audit.db")),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(http::serve(listener, http::router(state, super::audit::routes()), stop.clone()));
    Server { base, _dir: dir, stop }
}

async fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ids(body: &Value) -> Vec<&str> {
    body["investigations"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn runs_are_listed_and_filtered() {
    let s = server(None).await;
    let (status, body) = get(&s, "/v1/investigations", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["b", "a"], "newest first");
    let (_, body) = get(&s, "/v1/investigations?outcome=running", None).await;
    assert_eq!(ids(&body), ["b"]);
    let (_, body) = get(&s, "/v1/investigations?phase=shadow", None).await;
    assert_eq!(ids(&body), Vec::<&str>::new());
    let (_, body) = get(&s, "/v1/investigations?limit=1", None).await;
    assert_eq!(ids(&body), ["b"]);
}

#[tokio::test]
async fn pages_of_events_follow_the_cursor_to_the_end() {
    let s = server(None).await;
    let (status, all) = get(&s, "/v1/investigations/a/events", None).await;
    assert_eq!(status, 200, "{all}");
    let all = all["events"].as_array().unwrap().clone();
    assert_eq!(all.len(), 7, "started, 5 opens, ended");
    let mut paged = Vec::new();
    let mut path = "/v1/investigations/a/events?limit=2".to_owned();
    loop {
        let (status, page) = get(&s, &path, None).await;
        assert_eq!(status, 200, "{page}");
        paged.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/investigations/a/events?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let (_, opens) = get(&s, "/v1/investigations/a/events?kind=open", None).await;
    assert_eq!(opens["events"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn bad_parameters_are_400_unknown_investigations_404() {
    let s = server(None).await;
    for (path, names) in [
        ("/v1/investigations?phase=admin", "phase"),
        ("/v1/investigations?outcome=dead", "outcome"),
        ("/v1/investigations?limit=0", "limit"),
        ("/v1/investigations?since=yesterday", "since"),
        ("/v1/investigations?order=asc", "order"),
        ("/v1/investigations/a/events?kind=exec%27%20OR%201%3D1%20--", "kind"),
        ("/v1/investigations/a/events?cursor=abc", "cursor"),
        ("/v1/investigations/a/events?run=zero", "run"),
        ("/v1/investigations/Bad%20Id/events", "investigation id"),
    ] {
        let (status, body) = get(&s, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(names), "{path}: {error}");
    }
    let (status, body) = get(&s, "/v1/investigations/nobody/events", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "no investigation nobody in the audit store");
    let (status, _) = get(&s, "/v1/investigations/a/tree?run=99", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_token_guards_the_api_but_not_the_metrics() {
    let s = server(Some("s3cret")).await;
    let (status, body) = get(&s, "/v1/investigations", None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("a bearer token is required")));
    let (status, body) = get(&s, "/v1/investigations", Some("wrong")).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("wrong bearer token")));
    let (status, body) = get(&s, "/v1/investigations", Some("s3cret")).await;
    assert_eq!(status, 200, "{body}");
    let metrics = reqwest::get(format!("{}/metrics", s.base)).await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
}
