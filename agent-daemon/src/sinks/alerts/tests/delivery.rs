//! What each kind of receiver is sent when all is well.
use std::{io::Write, sync::Mutex, time::Duration};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWrite, BufReader};

use super::{server::Server, *};
use crate::sinks::alerts::config::{StdoutReceiver, WebhookReceiver};

const SOON: Duration = Duration::from_secs(5);

#[tokio::test]
async fn alertmanager_gets_the_v2_array_of_verdicts_only() {
    let mut server = Server::start(|_| 200).await;
    let running = start(vec![alertmanager("am", &format!("{}/", server.url()))]);
    running.events.send(started()).await.unwrap();
    running.events.send(verdict("killed")).await.unwrap();

    let request = server.next().await;
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/api/v2/alerts"));
    assert_eq!(request.headers["content-type"], "application/json");
    let body = request.json();
    let alerts = body.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body}");
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["alertname"], "PaddockKill");
    assert_eq!(labels["investigation"], "inv-7");
    assert_eq!(labels["phase"], "read-only");
    assert_eq!(labels["node"], "node-a");
    assert_eq!(labels["kind"], "exec");
    assert_eq!(labels["severity"], "critical");
    let annotations = &alerts[0]["annotations"];
    assert_eq!(
        annotations["summary"],
        "investigation inv-7 (read-only) killed: exec of /usr/bin/curl"
    );
    assert!(annotations["evidence"].as_str().unwrap().contains("pid 4242"), "{annotations}");
    assert_eq!(alerts[0]["startsAt"], "2026-11-26T15:00:01.125Z");

    let am = &running.stats[0];
    within(SOON, "delivered counted", || am.delivered() == 1).await;
    assert_eq!(
        (am.name.as_str(), am.kind, am.failed(), am.retries()),
        ("am", "alertmanager", 0, 0)
    );
}

#[tokio::test]
async fn alertmanager_takes_what_is_queued_in_one_request() {
    let mut server = Server::start(|_| 200).await;
    let router = AlertRouter::new(&config(vec![alertmanager("am", &server.url())])).unwrap();
    for outcome in ["flagged", "killed", "flagged"] {
        assert!(router.submit(&verdict(outcome)));
    }
    let running = run(router);
    let alerts = server.next().await.json();
    let names: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["PaddockDeviation", "PaddockKill", "PaddockDeviation"]);
    within(SOON, "three delivered", || running.stats[0].delivered() == 3).await;
    assert_eq!(server.hits(), 1);
}

fn expected_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn webhook_bodies_are_signed_with_the_secret_or_the_secret_file() {
    let mut plain = Server::start(|_| 204).await;
    let mut signed = Server::start(|_| 200).await;
    let mut from_file = Server::start(|_| 200).await;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "file-secret").unwrap();
    let ReceiverConfig::Webhook(with_file) = webhook("file", &from_file.url(), 8, None) else {
        unreachable!()
    };
    let with_file = WebhookReceiver { hmac_secret_file: Some(file.path().into()), ..with_file };
    let running = start(vec![
        webhook("plain", &plain.url(), 8, None),
        webhook("signed", &format!("{}/hooks/paddock", signed.url()), 8, Some("s3cret")),
        ReceiverConfig::Webhook(with_file),
    ]);
    running.events.send(verdict("flagged")).await.unwrap();

    let request = plain.next().await;
    assert!(!request.headers.contains_key("x-paddock-signature"));
    let body = request.json();
    assert_eq!(body["alert"], "PaddockDeviation");
    assert_eq!(body["labels"]["severity"], "warning");
    assert_eq!(body["event"]["kind"], "verdict");
    assert_eq!(body["event"]["subject"], "/usr/bin/curl");

    let request = signed.next().await;
    assert_eq!(request.path, "/hooks/paddock");
    let signature = &request.headers["x-paddock-signature"];
    assert_eq!(signature, &expected_signature(b"s3cret", &request.body));
    assert_ne!(signature, &expected_signature(b"other", &request.body));

    let request = from_file.next().await;
    let signature = &request.headers["x-paddock-signature"];
    assert_eq!(signature, &expected_signature(b"file-secret", &request.body));
    within(SOON, "all delivered", || running.stats.iter().all(|s| s.delivered() == 1)).await;
}

#[tokio::test]
async fn a_missing_secret_file_is_an_error_naming_the_receiver() {
    let ReceiverConfig::Webhook(hook) = webhook("soc", "http://127.0.0.1:9/", 8, None) else {
        unreachable!()
    };
    let hook = WebhookReceiver { hmac_secret_file: Some("/nonexistent/secret".into()), ..hook };
    let Err(err) = AlertRouter::new(&config(vec![ReceiverConfig::Webhook(hook)])) else {
        panic!("a missing secret file must fail")
    };
    let err = err.to_string();
    assert!(err.contains("\"soc\"") && err.contains("/nonexistent/secret"), "{err}");
}

#[test]
fn a_router_is_made_outside_the_runtime_and_queues_until_run() {
    let receivers = vec![
        alertmanager("am", "http://127.0.0.1:9/"),
        webhook("hook", "https://127.0.0.1:9/", 8, Some("s")),
        ReceiverConfig::Stdout(StdoutReceiver { name: "log".into() }),
    ];
    let router = AlertRouter::new(&config(receivers)).unwrap();
    assert_eq!(router.node(), "node-a");
    assert!(router.submit(&verdict("killed")));
    assert!(!router.submit(&started()));
    assert!(router.stats().iter().all(|s| s.failed() == 0 && s.delivered() == 0));
}

/// Test output: the first stdout receiver writes to `writer`.
fn output(
    writer: impl AsyncWrite + Send + Unpin + 'static,
) -> impl Fn() -> Box<dyn AsyncWrite + Send + Unpin> {
    let writer = Mutex::new(Some(writer));
    move || match writer.lock().unwrap().take() {
        Some(w) => Box::new(w),
        None => Box::new(tokio::io::sink()),
    }
}

#[tokio::test]
async fn stdout_gets_one_json_object_per_line() {
    let (writer, reader) = tokio::io::duplex(1 << 16);
    let receivers = vec![ReceiverConfig::Stdout(StdoutReceiver { name: "log".into() })];
    let router = AlertRouter::with_output(&config(receivers), &output(writer)).unwrap();
    let running = run(router);
    for event in [verdict("flagged"), started(), verdict("killed")] {
        running.events.send(event).await.unwrap();
    }
    let mut lines = BufReader::new(reader).lines();
    let mut alerts = Vec::new();
    for _ in 0..2 {
        let line = finishes(SOON, "a line", lines.next_line()).await.unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        alerts.push(value["alert"].as_str().unwrap().to_owned());
        assert_eq!(value["event"]["investigation"], "inv-7");
    }
    assert_eq!(alerts, ["PaddockDeviation", "PaddockKill"]);
    within(SOON, "two delivered", || running.stats[0].delivered() == 2).await;
    assert_eq!(running.stats[0].kind, "stdout");
}
