//! One role per node with row-level security, set up with the SQL of docs/audit-store.md
//! ("One role per node"): a node's role cannot insert, change or delete another node's rows
//! (a node an attacker controls forging another's history), while its own export works and
//! a reader sees every node.
use paddock_tests::{
    Daemon, paddock_bin,
    pg_trail::{assert_same_trail, metric, pg_export, wait_caught_up},
    postgres::Postgres,
    skip_unless_root,
};

use agent_daemon::sinks::export::config::PostgresExport;

use super::{CATCH_UP, daemon_exporting, plain};

/// The first ```sql block of docs/audit-store.md after `marker`.
fn docs_sql(marker: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/audit-store.md");
    let docs = std::fs::read_to_string(path).expect("read docs/audit-store.md");
    let at = docs.find(marker).unwrap_or_else(|| panic!("{marker:?} not in {path}"));
    let rest = &docs[at..];
    let start = rest.find("```sql\n").expect("a ```sql block") + "```sql\n".len();
    let end = rest[start..].find("```").expect("the end of the block");
    rest[start..start + end].to_owned()
}

/// Everything the database holds of `node`, as one digest.
fn fingerprint(pg: &Postgres, node: &str) -> String {
    pg.psql(&format!(
        "SELECT concat_ws(' ', \
           (SELECT count(*) || ':' || md5(string_agg(e::text, ',' ORDER BY seq)) \
              FROM paddock.events e WHERE node = '{node}'), \
           (SELECT count(*) || ':' || md5(string_agg(r::text, ',' ORDER BY run)) \
              FROM paddock.runs r WHERE node = '{node}'), \
           (SELECT string_agg(c::text, ',') FROM paddock.export_cursor c WHERE node = '{node}'))"
    ))
}

/// A run that starts and ends, through the daemon.
fn one_run(daemon: &Daemon, id: &str) {
    let out = daemon.run_actor(id, "read-only", &["exec:/bin/true", "exec:/bin/true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_nodes_own_role_cannot_touch_another_nodes_rows() {
    skip_unless_root!();
    let pg = Postgres::start();
    // node-a exports as the owner, which makes the schema and the partitions.
    let mut a = daemon_exporting([pg_export("pg", &plain(&pg), "node-a")]);
    one_run(&a, "own-a");
    wait_caught_up(&pg, &a, "node-a", CATCH_UP);
    assert!(a.stop().is_some_and(|s| s.success()), "{}", a.log());
    assert_same_trail(&pg, &a, "node-a");

    // The documented setup: node-b's own role, then the owner's grants and policies.
    pg.psql(r#"CREATE ROLE paddock_node NOLOGIN; CREATE ROLE "node-b" LOGIN IN ROLE paddock_node"#);
    let owner = docs_sql("As the owner of the schema `paddock`, once");
    assert!(owner.contains("ENABLE ROW LEVEL SECURITY"), "{owner}");
    pg.psql_as("paddock", "paddock", &owner).expect("the owner's SQL of the docs");
    let a_before = fingerprint(&pg, "node-a");

    // node-b's export, as its own role, works: batches, runs, cursor.
    let url = plain(&pg).replace("paddock@", "node-b@");
    let mut b =
        daemon_exporting([PostgresExport { batch_events: 3, ..pg_export("pg", &url, "node-b") }]);
    one_run(&b, "own-b-1");
    one_run(&b, "own-b-2");
    wait_caught_up(&pg, &b, "node-b", CATCH_UP);
    assert_eq!(metric(&b, "paddock_export_up{export=\"pg\"}"), Some(1.0));
    assert!(b.stop().is_some_and(|s| s.success()), "{}", b.log());
    assert_same_trail(&pg, &b, "node-b");
    let b_before = fingerprint(&pg, "node-b");

    // What a node an attacker controls would try, as node-b's role.
    let store_a = pg.psql("SELECT store_id FROM paddock.export_cursor WHERE node = 'node-a'");
    let run_a = pg.psql("SELECT max(run) FROM paddock.runs WHERE node = 'node-a'");
    let partition = pg.psql(
        "SELECT 'events_' || to_char(max(time) AT TIME ZONE 'UTC', 'YYYYMMDD') \
         FROM paddock.events WHERE node = 'node-a'",
    );
    let cols = "node, store_id, run, seq, time, investigation, phase, kind, pid, ppid, body";
    // node-b's own event, as a new event of node-a
    let forged = |table: &str| {
        format!(
            "INSERT INTO paddock.{table} ({cols}) SELECT 'node-a', '{store_a}', {run_a}, \
             seq + 1000000, time, investigation, phase, kind, pid, ppid, body \
             FROM paddock.events WHERE node = 'node-b'"
        )
    };
    let refused = [
        (forged("events"), "new row violates row-level security policy for table \"events\""),
        (forged(&partition), &format!("permission denied for table {partition}")),
        (
            format!(
                "INSERT INTO paddock.runs (node, store_id, run, instance, investigation, phase, \
                 started, outcome, events) VALUES ('node-a', '{store_a}', {run_a}, 1, 'forged', \
                 'read-only', now(), 'ok', 1) ON CONFLICT (node, store_id, run) DO UPDATE \
                 SET outcome = 'ok'"
            ),
            "new row violates row-level security policy for table \"runs\"",
        ),
        (
            format!(
                "INSERT INTO paddock.export_cursor VALUES ('node-a', '{store_a}', 0, now()) \
                 ON CONFLICT (node, store_id) DO UPDATE SET acked_seq = 0"
            ),
            "new row violates row-level security policy for table \"export_cursor\"",
        ),
        (
            "UPDATE paddock.runs SET node = 'node-a' WHERE node = 'node-b'".into(),
            "new row violates row-level security policy for table \"runs\"",
        ),
        (
            "UPDATE paddock.events SET kind = 'exec' WHERE node = 'node-a'".into(),
            "permission denied for table events",
        ),
        ("DELETE FROM paddock.events WHERE node = 'node-a'".into(), "permission denied"),
        ("DELETE FROM paddock.runs WHERE node = 'node-a'".into(), "permission denied"),
        ("TRUNCATE paddock.events".into(), "permission denied"),
        (format!("DROP TABLE paddock.{partition}"), "must be owner"),
        ("ALTER TABLE paddock.events DISABLE ROW LEVEL SECURITY".into(), "must be owner"),
    ];
    for (sql, why) in &refused {
        match pg.psql_as("node-b", "paddock", sql) {
            Ok(out) => panic!("node-b may: {sql}: {out}"),
            Err(e) => assert!(format!("{e:#}").contains(why), "{sql}: {e:#}"),
        }
    }
    // Other nodes' rows are out of sight: updating them changes nothing.
    for sql in [
        "UPDATE paddock.runs SET outcome = 'ok' WHERE node = 'node-a'",
        "UPDATE paddock.export_cursor SET acked_seq = 0 WHERE node = 'node-a'",
    ] {
        let out = pg.psql_as("node-b", "paddock", sql).expect(sql);
        assert_eq!(out, "UPDATE 0", "{sql}");
    }
    let seen = pg.psql_as("node-b", "paddock", "SELECT count(*) FROM paddock.events").unwrap();
    let own = pg.psql("SELECT count(*) FROM paddock.events WHERE node = 'node-b'");
    assert_eq!(seen, own, "node-b sees its own events only");
    assert_eq!(fingerprint(&pg, "node-a"), a_before, "node-a's history is untouched");
    assert_eq!(fingerprint(&pg, "node-b"), b_before);

    // A reader with the documented policy sees both nodes through `audit --source`.
    pg.psql("CREATE ROLE paddock_reader LOGIN");
    let readers = docs_sql("`paddock_reader` that may read everything");
    pg.psql_as("paddock", "paddock", &readers).expect("the readers' SQL of the docs");
    let reader = format!("postgres://paddock_reader@127.0.0.1:{}/paddock", pg.port());
    let out = std::process::Command::new(paddock_bin())
        .args(["--socket", "/nonexistent/paddock.sock", "audit", "list", "--format", "json"])
        .args(["--source", &reader])
        .env_remove("PADDOCK_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ids: Vec<&str> =
        runs.as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["own-a", "own-b-1", "own-b-2"]);
}
