//! paddock as its operators see it: a real Prometheus scrapes it through a scripted story
//! (learn, flag, kill) and answers with the right counts (a JSON-lines export's too), every
//! query of the Grafana dashboard (`deploy/monitoring/`) with a series, and loads the alerting rules, which
//! evaluate without error and raise nothing; a real Alertmanager and a signed
//! webhook receive the alerts; a dead receiver costs no event and no audit record, and
//! delivery resumes when it is back. Real kernel, real daemon, real servers; needs root.
use std::{collections::BTreeMap, path::Path, time::Duration};

use agent_daemon::sinks::{
    alerts::{AlertmanagerReceiver, ReceiverConfig, Secret, StdoutReceiver, WebhookReceiver},
    export::config::{ExportConfig, JsonlExport},
};
use paddock_tests::{
    Daemon, config,
    monitoring::{
        Alertmanager, Prometheus, Webhook, alerts_in_rules_file, dashboard_queries,
        expected_signature, load_dashboard, monitoring_file,
    },
    poll,
    scenario::{self, Scenario},
    skip_unless_root, wait_until,
};
use serde_json::Value;

const SECRET: &str = "hook-secret";

/// `hook` signing with `SECRET`.
fn signed(hook: WebhookReceiver) -> WebhookReceiver {
    WebhookReceiver { hmac_secret: Some(Secret(SECRET.into())), ..hook }
}

/// Events of the story by (kind), counted from the live stream.
fn count_by_kind(story: &Scenario) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (_, events) in &story.events {
        for e in events {
            *counts.entry(e["kind"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    counts
}

fn value(samples: &[paddock_tests::monitoring::Sample]) -> Option<f64> {
    match samples {
        [one] => Some(one.value),
        _ => None,
    }
}

#[test]
fn prometheus_scrapes_the_counts_of_a_learn_flag_kill_story() {
    skip_unless_root!();
    // An alert receiver and an export, so that the dashboard's delivery and export panels
    // have series.
    let exported = tempfile::tempdir().unwrap();
    let mut config = config();
    config.alerts.receivers = vec![ReceiverConfig::Stdout(StdoutReceiver { name: "log".into() })];
    let jsonl = JsonlExport::new("siem", exported.path().join("events.jsonl"));
    config.export = vec![ExportConfig::Jsonl(jsonl)];
    let daemon = Daemon::start_with(config);
    let target = daemon.http_base().trim_start_matches("http://").to_owned();
    let rules = monitoring_file("paddock-rules.yaml");
    let prometheus = Prometheus::start_with_rules(&target, std::slice::from_ref(&rules));
    prometheus.wait_for("up{job=\"paddock\"}", |r| value(r) == Some(1.0));

    let story = scenario::play(&daemon, "limited-write", "prom");
    let phase = "limited-write";

    for (kind, n) in count_by_kind(&story) {
        let q = format!("paddock_events_total{{phase=\"{phase}\",kind=\"{kind}\"}}");
        prometheus.wait_for(&q, |r| value(r) == Some(n as f64));
    }
    let q =
        format!("sum by (outcome) (paddock_investigations_finished_total{{phase=\"{phase}\"}})");
    let finished = prometheus.wait_for(&q, |r| r.len() == 3);
    let by_outcome: BTreeMap<&str, f64> =
        finished.iter().map(|s| (s.labels["outcome"].as_str(), s.value)).collect();
    assert_eq!(by_outcome, BTreeMap::from([("flagged", 1.0), ("killed", 1.0), ("ok", 3.0)]));
    let q = format!("paddock_verdicts_total{{phase=\"{phase}\",kind=\"exec\"}}");
    let verdicts = prometheus.wait_for(&q, |r| r.len() == 2);
    let by_outcome: BTreeMap<&str, f64> =
        verdicts.iter().map(|s| (s.labels["outcome"].as_str(), s.value)).collect();
    assert_eq!(by_outcome, BTreeMap::from([("flagged", 1.0), ("killed", 1.0)]));
    let q = format!("paddock_kills_total{{phase=\"{phase}\",reason=\"exec\"}}");
    prometheus.wait_for(&q, |r| value(r) == Some(1.0));
    let q = format!("paddock_phase_mode{{phase=\"{phase}\",mode=\"enforce\"}}");
    prometheus.wait_for(&q, |r| value(r) == Some(1.0));
    let q = format!("paddock_baseline_entries{{phase=\"{phase}\",set=\"execs\"}}");
    prometheus.wait_for(&q, |r| value(r) == Some(2.0)); // the actor and /bin/true
    prometheus.wait_for("paddock_investigations_active", |r| r.iter().all(|s| s.value == 0.0));
    prometheus.wait_for("paddock_probes_attached", |r| value(r).is_some_and(|v| v >= 10.0));
    prometheus.wait_for("paddock_ring_buffer_lost_records_total", |r| {
        !r.is_empty() && r.iter().all(|s| s.value == 0.0)
    });
    let stored: u64 = story.events.iter().map(|(_, e)| e.len() as u64).sum();
    prometheus.wait_for("paddock_audit_events_stored_total", |r| value(r) == Some(stored as f64));
    // The export wrote every stored event to its file, and caught up.
    let q = "paddock_export_events_total{export=\"siem\"}";
    prometheus.wait_for(q, |r| value(r) == Some(stored as f64));
    prometheus.wait_for("paddock_export_lag_events", |r| value(r) == Some(0.0));
    prometheus.wait_for("paddock_export_up", |r| value(r) == Some(1.0));
    // Latency is measured for what processes did (kernel records), not for lifecycle events
    // or verdicts, whose time is when the daemon made them.
    let timed = story
        .events
        .iter()
        .flat_map(|(_, e)| e)
        .filter(|e| !["started", "ended", "verdict"].contains(&e["kind"].as_str().unwrap()))
        .count();
    let q = "paddock_event_processing_seconds_count";
    prometheus.wait_for(q, |r| value(r) == Some(timed as f64));
    let q = "paddock_event_processing_seconds_bucket{le=\"+Inf\"}";
    prometheus.wait_for(q, |r| value(r) == Some(timed as f64));

    // Bounded labels only: no series of ours carries an id, a pid or a path.
    for label in ["investigation", "investigation_id", "pid", "path", "comm", "subject"] {
        let q = format!("{{__name__=~\"paddock_.*\",{label}!=\"\"}}");
        assert_eq!(prometheus.query(&q), [], "{label} used as a label");
    }
    let names = prometheus.query("count by (__name__) ({__name__=~\"paddock_.*\"})");
    assert!(names.len() >= 20, "{names:?}\n{}", prometheus.target_health());

    dashboard_queries_answer(&prometheus);
    alerting_rules_load_and_stay_silent(&prometheus, &rules);
}

/// Every query of the dashboard (each panel's, each variable's), with the values Grafana would
/// give its variables for this daemon, answers with at least one series.
fn dashboard_queries_answer(prometheus: &Prometheus) {
    let file = monitoring_file("paddock-dashboard.json");
    let queries = dashboard_queries(&load_dashboard(&file), &prometheus.dashboard_variables())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(queries.len() > 10, "{}: only {queries:#?}", file.display());
    let unanswered = prometheus.unanswered(&queries);
    assert!(
        unanswered.is_empty(),
        "{}: {} of {} queries answer with no series:\n{}",
        file.display(),
        unanswered.len(),
        queries.len(),
        unanswered.join("\n")
    );
}

/// Prometheus loaded every group and rule of the rules file, evaluated each without error,
/// and none is pending or firing after a healthy story.
fn alerting_rules_load_and_stay_silent(prometheus: &Prometheus, rules: &Path) {
    let expected = alerts_in_rules_file(rules);
    assert!(!expected.is_empty(), "no rule groups in {}", rules.display());
    let loaded = prometheus.evaluated_rules();
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in &loaded {
        by_group.entry(rule.group.clone()).or_default().push(rule.name.clone());
    }
    assert_eq!(by_group, expected, "the rules Prometheus loaded from {}", rules.display());
    for rule in &loaded {
        assert!(
            rule.health == "ok" && rule.last_error.is_empty(),
            "{}: group {}, rule {}: health {:?}, last error {:?}",
            rules.display(),
            rule.group,
            rule.name,
            rule.health,
            rule.last_error
        );
    }
    let alerts = prometheus.alerts();
    assert!(alerts.is_empty(), "a healthy story raised {alerts:#?}");
}

#[test]
fn alertmanager_and_a_signed_webhook_receive_the_alerts() {
    skip_unless_root!();
    let alertmanager = Alertmanager::start();
    let webhook = Webhook::start();
    let mut config = config();
    config.alerts.node = Some("node-7".into());
    config.alerts.receivers = vec![
        ReceiverConfig::Alertmanager(AlertmanagerReceiver::new("am", &alertmanager.url)),
        ReceiverConfig::Webhook(signed(WebhookReceiver::new("hook", webhook.url()))),
    ];
    let daemon = Daemon::start_with(config);
    let story = scenario::play(&daemon, "autonomous", "alerting");

    // Alertmanager holds one alert per verdict, with the labels and annotations promised.
    poll(Duration::from_secs(20), Duration::from_millis(200), || alertmanager.alerts().len() >= 2);
    let alerts = alertmanager.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:#?}\n{}", daemon.log());
    for (name, id, severity) in [
        ("PaddockDeviation", &story.flagged, "warning"),
        ("PaddockKill", &story.killed, "critical"),
    ] {
        let alert = alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap_or_else(|| panic!("no {name} in {alerts:#?}"));
        let labels = &alert["labels"];
        assert_eq!(labels["investigation"], id.as_str());
        assert_eq!(labels["phase"], "autonomous");
        assert_eq!(labels["node"], "node-7");
        assert_eq!(labels["kind"], "exec");
        assert_eq!(labels["severity"], severity);
        let annotations = &alert["annotations"];
        let summary = annotations["summary"].as_str().unwrap();
        assert!(
            summary.contains(id.as_str()) && summary.contains("exec of /bin/false"),
            "{summary}"
        );
        assert!(annotations["description"].as_str().unwrap().contains("/bin/false"), "{alert}");
        assert!(annotations["evidence"].as_str().unwrap().contains("pid "), "{alert}");
        assert!(
            annotations["baseline"].as_str().unwrap().starts_with("autonomous baseline revision")
        );
        assert_eq!(alert["status"]["state"], "active");
    }

    // The webhook got the same two, each body signed with the shared secret.
    poll(Duration::from_secs(20), Duration::from_millis(100), || webhook.bodies().len() >= 2);
    let bodies = webhook.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let scratch = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for received in &bodies {
        let signature = received.headers.get("x-paddock-signature").expect("signed");
        assert_eq!(signature, &expected_signature(SECRET, &received.body, scratch.path()));
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(body["event"]["kind"], "verdict");
        assert_eq!(body["labels"]["investigation"], body["event"]["investigation"]);
        let id = body["event"]["investigation"].as_str().unwrap().to_owned();
        seen.push((body["alert"].as_str().unwrap().to_owned(), id));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("PaddockDeviation".to_owned(), story.flagged.clone()),
            ("PaddockKill".to_owned(), story.killed.clone())
        ]
    );
    let metrics = daemon.metrics();
    for line in [
        "paddock_alert_deliveries_total{receiver=\"am\",kind=\"alertmanager\"} 2",
        "paddock_alert_deliveries_total{receiver=\"hook\",kind=\"webhook\"} 2",
        "paddock_alert_failures_total{receiver=\"hook\",kind=\"webhook\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[test]
fn a_dead_receiver_loses_no_event_and_delivery_resumes_when_it_is_back() {
    skip_unless_root!();
    let mut webhook = Webhook::start();
    let mut config = config();
    let hook =
        WebhookReceiver { max_retries: 2, ..signed(WebhookReceiver::new("hook", webhook.url())) };
    config.alerts.receivers = vec![ReceiverConfig::Webhook(hook)];
    let daemon = Daemon::start_with(config);
    webhook.stop();
    let story = scenario::play(&daemon, "shadow", "down");
    let failures = "paddock_alert_failures_total{receiver=\"hook\",kind=\"webhook\"} 2\n";
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || daemon.metrics().contains(failures),
        || format!("{failures} not reached:\n{}", daemon.metrics()),
    );
    let metrics = daemon.metrics();
    assert!(
        metrics.contains("paddock_alert_retries_total{receiver=\"hook\",kind=\"webhook\"} 4\n"),
        "two retries per alert:\n{metrics}"
    );
    assert!(webhook.bodies().is_empty());
    // Nothing else suffered: every event was published and stored.
    for (id, live) in &story.events {
        let stored: Vec<Value> = daemon
            .ok(&["audit", "show", id, "--format", "jsonl"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(&stored, live, "{id}");
    }
    let status = daemon.status();
    assert_eq!(status["sink_drops"]["audit"], 0, "{status}");
    assert_eq!(status["audit"]["failed"], 0, "{status}");

    // Back up: the next verdict goes through.
    webhook.start_again();
    let dir = tempfile::tempdir().unwrap();
    let steps = scenario::stray(dir.path(), paddock_tests::Listener::start().port);
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = daemon.run_actor("down-after", "shadow", &steps);
    assert_eq!(out.status.code(), Some(99), "shadow is in enforce mode after the story");
    poll(Duration::from_secs(20), Duration::from_millis(100), || !webhook.bodies().is_empty());
    let bodies = webhook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let body: Value = serde_json::from_slice(&bodies[0].body).unwrap();
    assert_eq!(body["labels"]["investigation"], "down-after");
    assert!(
        daemon
            .metrics()
            .contains("paddock_alert_deliveries_total{receiver=\"hook\",kind=\"webhook\"} 1\n")
    );
}
