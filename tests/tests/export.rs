//! Export to PostgreSQL: every event of the local audit trail lands in a real PostgreSQL
//! (Debian's package, a throwaway cluster per test) exactly once, field for field, through
//! a server stopped and started again and a daemon killed with SIGKILL; bad settings give
//! clear errors and the daemon keeps storing locally; TLS verifies the server; with one
//! role per node and row-level security, a node cannot touch another's rows. Needs root.
#[path = "export/own_rows.rs"]
mod own_rows;

use std::time::Duration;

use agent_daemon::{
    config::Config,
    sinks::export::config::{ExportConfig, PostgresExport},
};
use paddock_tests::{
    Daemon, config,
    pg_trail::{
        Stream, acked, assert_same_trail, audit_path, last_seq_given, metric, pg_export,
        wait_caught_up,
    },
    postgres::{PgOptions, Postgres},
    scenario, skip_unless_root, wait_until,
};

const CATCH_UP: Duration = Duration::from_secs(60);

fn daemon_exporting(exports: impl IntoIterator<Item = PostgresExport>) -> Daemon {
    let export = exports.into_iter().map(ExportConfig::Postgres).collect();
    Daemon::start_with(Config { export, ..config() })
}

fn plain(pg: &Postgres) -> String {
    format!("{}?sslmode=disable", pg.url())
}

/// Wait until `wanted` holds, polling; else fail saying `what`, with the daemon's log.
fn wait_for(within: Duration, what: &str, daemon: &Daemon, wanted: impl FnMut() -> bool) {
    let every = Duration::from_millis(200);
    wait_until(within, every, wanted, || {
        format!("{what}: not after {within:?}:\n{}", daemon.log())
    });
}

#[test]
fn the_database_holds_exactly_the_local_trail_and_its_runs() {
    skip_unless_root!();
    let pg = Postgres::start();
    // Two exports of one store as two nodes: they share the database, apart by node.
    let mut daemon = daemon_exporting([
        PostgresExport { batch_events: 7, ..pg_export("pg-a", &plain(&pg), "node-a") },
        pg_export("pg-b", &plain(&pg), "node-b"),
    ]);
    let story = scenario::play(&daemon, "read-only", "export");
    wait_caught_up(&pg, &daemon, "node-a", CATCH_UP);
    wait_caught_up(&pg, &daemon, "node-b", CATCH_UP);
    // The story's runs are there with their outcomes, and the investigation index answers.
    let outcome = |id: &str| {
        pg.psql(&format!(
            "SELECT outcome FROM paddock.runs WHERE node = 'node-a' AND investigation = '{id}'"
        ))
    };
    assert_eq!(outcome(&story.killed), "killed");
    assert_eq!(outcome(&story.flagged), "flagged");
    for id in &story.learned {
        assert_eq!(outcome(id), "ok");
    }
    let across = pg.psql(&format!(
        "SELECT count(DISTINCT node) FROM paddock.events WHERE investigation = '{}'",
        story.killed
    ));
    assert_eq!(across, "2");
    let batches = metric(&daemon, "paddock_export_batches_total{export=\"pg-a\"}").unwrap();
    let events = metric(&daemon, "paddock_export_events_total{export=\"pg-a\"}").unwrap();
    assert_eq!(events as i64, last_seq_given(&audit_path(&daemon)));
    assert!(batches >= events / 7.0, "batches of at most 7 events: {batches} for {events}");
    assert_eq!(metric(&daemon, "paddock_export_lag_events{export=\"pg-a\"}"), Some(0.0));
    assert_eq!(metric(&daemon, "paddock_export_lag_seconds{export=\"pg-a\"}"), Some(0.0));
    assert_eq!(metric(&daemon, "paddock_export_up{export=\"pg-a\"}"), Some(1.0));
    // A clean stop exports what was stored before it: nothing can come after.
    assert!(daemon.stop().is_some_and(|s| s.success()), "{}", daemon.log());
    assert_same_trail(&pg, &daemon, "node-a");
    assert_same_trail(&pg, &daemon, "node-b");
    // Daily partitions, the schema's version.
    let partitions =
        pg.psql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'paddock.events'::regclass");
    assert!(partitions.parse::<u32>().unwrap() >= 3, "today and two days ahead: {partitions}");
    assert_eq!(pg.psql("SELECT max(version) FROM paddock.schema_version"), "1");
}

#[test]
fn a_stopped_server_loses_and_duplicates_nothing() {
    skip_unless_root!();
    let pg = Postgres::start();
    let mut daemon = daemon_exporting([PostgresExport {
        batch_events: 500,
        ..pg_export("pg", &plain(&pg), "node-a")
    }]);
    let stream = Stream::start(&daemon.socket, "down");
    wait_for(CATCH_UP, "a first batch", &daemon, || acked(&pg, "node-a") > 0);
    pg.stop();
    let stored_at_stop = last_seq_given(&audit_path(&daemon));
    // Events keep being stored; the lag grows; the export retries.
    let connect = "paddock_export_failures_total{export=\"pg\",reason=\"connect\"}";
    wait_for(CATCH_UP, "lag while the server is down", &daemon, || {
        metric(&daemon, "paddock_export_lag_events{export=\"pg\"}").is_some_and(|lag| lag >= 1000.0)
            && last_seq_given(&audit_path(&daemon)) > stored_at_stop + 1000
            && metric(&daemon, connect).is_some_and(|n| n >= 3.0)
    });
    assert_eq!(metric(&daemon, "paddock_export_up{export=\"pg\"}"), Some(0.0));
    assert!(metric(&daemon, "paddock_export_lag_seconds{export=\"pg\"}").unwrap() > 0.0);
    pg.start_again();
    std::thread::sleep(Duration::from_secs(2));
    stream.stop();
    wait_caught_up(&pg, &daemon, "node-a", CATCH_UP);
    wait_for(CATCH_UP, "lag back to 0", &daemon, || {
        metric(&daemon, "paddock_export_lag_events{export=\"pg\"}") == Some(0.0)
    });
    assert_eq!(metric(&daemon, "paddock_export_up{export=\"pg\"}"), Some(1.0));
    assert!(daemon.stop().is_some_and(|s| s.success()), "{}", daemon.log());
    assert_same_trail(&pg, &daemon, "node-a");
    // Said once per change of error, not once per retry.
    let log = daemon.log();
    let said: Vec<&str> =
        log.lines().filter_map(|l| l.split_once("export[0] (pg): ").map(|(_, m)| m)).collect();
    assert!(said.len() >= 2, "the failure and the recovery:\n{log}");
    assert!(said.windows(2).all(|w| w[0] != w[1]), "a message repeated:\n{log}");
}

#[test]
fn a_daemon_killed_while_exporting_sends_each_event_once() {
    skip_unless_root!();
    let pg = Postgres::start();
    let mut daemon = daemon_exporting([PostgresExport {
        batch_events: 50,
        ..pg_export("pg", &plain(&pg), "node-a")
    }]);
    let stream = Stream::start(&daemon.socket, "kill");
    for round in 0..3 {
        let before = acked(&pg, "node-a");
        wait_for(CATCH_UP, "batches going in", &daemon, || acked(&pg, "node-a") > before + 200);
        daemon.kill9();
        let stored = last_seq_given(&audit_path(&daemon));
        assert!(acked(&pg, "node-a") <= stored, "round {round}");
        daemon = daemon.restart();
    }
    std::thread::sleep(Duration::from_secs(1));
    stream.stop();
    wait_caught_up(&pg, &daemon, "node-a", CATCH_UP);
    assert!(daemon.stop().is_some_and(|s| s.success()), "{}", daemon.log());
    assert_same_trail(&pg, &daemon, "node-a");
}

/// The daemon stays up and keeps storing: a run's events reach the local store.
fn still_stores_locally(daemon: &Daemon) {
    let before = last_seq_given(&audit_path(daemon));
    let out = daemon.run_actor("still-storing", "read-only", &["exec:/bin/true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(CATCH_UP, "local store grows", daemon, || {
        last_seq_given(&audit_path(daemon)) > before
    });
}

/// Events to export, an error said and counted, and the daemon storing on.
fn wait_for_error(daemon: &Daemon, reason: &str, text: &str) {
    still_stores_locally(daemon);
    let series = format!("paddock_export_failures_total{{export=\"pg\",reason=\"{reason}\"}}");
    wait_for(CATCH_UP, &format!("{series} and {text:?} in the log"), daemon, || {
        metric(daemon, &series).is_some_and(|n| n >= 1.0)
            && daemon.log().lines().any(|l| l.contains("export[0] (pg)") && l.contains(text))
    });
    assert_eq!(metric(daemon, "paddock_export_up{export=\"pg\"}"), Some(0.0));
    still_stores_locally(daemon);
}

#[test]
fn bad_url_wrong_password_and_missing_privileges_are_said_and_counted() {
    skip_unless_root!();
    // Nothing listens there.
    let port = paddock_tests::monitoring::free_port();
    let url = format!("postgres://paddock@127.0.0.1:{port}/paddock?sslmode=disable");
    let daemon = daemon_exporting([pg_export("pg", &url, "node-a")]);
    wait_for_error(&daemon, "connect", "Connection refused");
    drop(daemon);

    let pg = Postgres::with(PgOptions { password: Some("right".into()), ..Default::default() });
    let file = pg.scratch().join("password");
    std::fs::write(&file, "wrong\n").unwrap();
    let daemon = daemon_exporting([PostgresExport {
        password_file: Some(file.clone()),
        ..pg_export("pg", &plain(&pg), "node-a")
    }]);
    wait_for_error(&daemon, "auth", "password authentication failed for user \"paddock\"");
    drop(daemon);
    // The right password works.
    std::fs::write(&file, "right\n").unwrap();
    let daemon = daemon_exporting([PostgresExport {
        password_file: Some(file.clone()),
        ..pg_export("pg", &plain(&pg), "node-a")
    }]);
    still_stores_locally(&daemon);
    wait_caught_up(&pg, &daemon, "node-a", CATCH_UP);
    drop(daemon);

    // A role that may read the tables but not write them.
    pg.psql(
        "CREATE ROLE reader LOGIN PASSWORD 'reader'; GRANT USAGE ON SCHEMA paddock TO reader; \
         GRANT SELECT ON ALL TABLES IN SCHEMA paddock TO reader",
    );
    std::fs::write(&file, "reader").unwrap();
    let url = plain(&pg).replace("paddock@", "reader@");
    let daemon = daemon_exporting([PostgresExport {
        password_file: Some(file.clone()),
        ..pg_export("pg", &url, "node-b")
    }]);
    wait_for_error(&daemon, "permission", "permission denied for table");
    assert_eq!(acked(&pg, "node-b"), 0);
}

#[test]
fn tls_verifies_the_server_against_the_ca_file() {
    skip_unless_root!();
    let pg = Postgres::with(PgOptions { tls: true, ..Default::default() });
    let tls = pg.tls.clone().unwrap();
    let url = format!("{}?sslmode=verify-full", pg.url());
    let daemon = daemon_exporting([PostgresExport {
        ca_file: Some(tls.other_ca.clone()),
        ..pg_export("pg", &url, "node-a")
    }]);
    wait_for_error(&daemon, "connect", "invalid peer certificate");
    drop(daemon);
    assert_eq!(acked(&pg, "node-a"), -1, "nothing was written");

    let mut daemon = daemon_exporting([PostgresExport {
        ca_file: Some(tls.ca.clone()),
        ..pg_export("pg", &url, "node-a")
    }]);
    still_stores_locally(&daemon);
    wait_caught_up(&pg, &daemon, "node-a", CATCH_UP);
    let ssl = pg.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE s.ssl AND a.usename = 'paddock'",
    );
    assert_eq!(ssl, "1", "the export's connection is encrypted");
    assert!(daemon.stop().is_some_and(|s| s.success()), "{}", daemon.log());
    assert_same_trail(&pg, &daemon, "node-a");
}
