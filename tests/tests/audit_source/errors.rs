//! A bad source is refused with the setting to fix: bad URLs, passwords in them, nothing
//! listening, a database without the exporter's schema, wrong passwords, TLS that does not
//! verify; and the configured default source.
use std::process::Command;

use paddock_tests::{
    paddock_bin,
    postgres::{PgOptions, Postgres},
    skip_unless_root,
};

use super::support::{exporter_schema, fails, ok, password_file};

#[test]
fn a_bad_source_is_named_with_what_to_fix() {
    skip_unless_root!();
    // Bad URLs, and passwords inside them, are refused before any connection.
    let err = fails(&["audit", "list", "--source", "mysql://paddock@127.0.0.1/paddock"]);
    assert!(
        err.contains("--source mysql://paddock@127.0.0.1/paddock: is not a postgres:// URL"),
        "{err}"
    );
    let err = fails(&["audit", "list", "--source", "postgres://paddock:hunter2@127.0.0.1/paddock"]);
    assert!(
        err.contains("--source postgres://paddock:***@127.0.0.1/paddock: the URL holds a password"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let err = fails(&["audit", "list", "--source", "postgres://paddock@127.0.0.1/p?sslmode=allow"]);
    assert!(
        err.contains("sslmode=allow: expected disable, prefer, require or verify-full"),
        "{err}"
    );
    let err = fails(&["audit", "check", "--source", "postgres://paddock@127.0.0.1/p"]);
    assert!(err.contains("audit check reads this node's store file only"), "{err}");

    // Nothing listening.
    let port = paddock_tests::monitoring::free_port();
    let nobody = format!("postgres://paddock@127.0.0.1:{port}/paddock?connect_timeout=5");
    let err = fails(&["audit", "list", "--source", &nobody]);
    assert!(err.contains(&format!("--source {nobody}: cannot connect: ")), "{err}");

    // A database the exporter never wrote to.
    let pg = Postgres::start();
    let err = fails(&["audit", "list", "--source", &pg.url()]);
    assert!(
        err.contains(&format!(
            "--source {}: no paddock schema in database paddock: has an [[export]] written to it?",
            pg.url()
        )),
        "{err}"
    );
    exporter_schema(&pg);
    let empty = ok(&["audit", "list", "--source", &pg.url()]);
    assert!(empty.starts_with("NODE "), "{empty}");
    assert_eq!(empty.lines().count(), 1, "{empty}");

    // The configured default: [audit] source, with its own password file.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paddock.toml");
    std::fs::write(&config, format!("[audit]\nsource = {:?}\n", pg.url())).unwrap();
    let config = config.display().to_string();
    let listed = ok(&["audit", "list", "--config", &config]);
    assert_eq!(listed, empty);
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[audit]\nsource = \"postgres://paddock:hunter2@h/paddock\"\n")
        .unwrap();
    let err = fails(&["audit", "list", "--config", &bad_config.display().to_string()]);
    assert!(
        err.contains(
            "audit.source = \"postgres://paddock:***@h/paddock\": must not hold a password"
        ),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    drop(pg);

    // A server that wants a password: the right one from a file or $PGPASSWORD, the wrong
    // one refused.
    let pg = Postgres::with(PgOptions { password: Some("right-one".into()), ..Default::default() });
    exporter_schema(&pg);
    let url = pg.url();
    let wrong = password_file(pg.scratch(), "wrong", "wrong-one");
    let right = password_file(pg.scratch(), "right", "right-one");
    let err = fails(&["audit", "list", "--source", &url, "--source-password-file", &wrong]);
    assert!(err.contains(&format!("--source {url}: cannot connect: ")), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    let err = fails(&["audit", "list", "--source", &url]);
    assert!(err.contains("cannot connect"), "{err}");
    ok(&["audit", "list", "--source", &url, "--source-password-file", &right]);
    let out = Command::new(paddock_bin())
        .args(["audit", "list", "--source", &url])
        .env("PGPASSWORD", "right-one")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let missing = pg.scratch().join("missing").display().to_string();
    let err = fails(&["audit", "list", "--source", &url, "--source-password-file", &missing]);
    assert!(err.contains(&format!("--source {url}: password file {missing}: ")), "{err}");
    drop(pg);

    // TLS: the server's certificate must chain to the CA file, its name included.
    let pg = Postgres::with(PgOptions { tls: true, ..Default::default() });
    exporter_schema(&pg);
    let certs = pg.tls.clone().unwrap();
    let url = format!("{}?sslmode=verify-full", pg.url());
    let ca = certs.ca.display().to_string();
    let listed = ok(&["audit", "list", "--source", &url, "--source-ca-file", &ca]);
    assert!(listed.starts_with("NODE "), "{listed}");
    let err = fails(&[
        "audit",
        "list",
        "--source",
        &url,
        "--source-ca-file",
        &certs.other_ca.display().to_string(),
    ]);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let err = fails(&["audit", "list", "--source", &url]);
    assert!(err.contains("cannot connect"), "{err}");
    let not_pem = password_file(pg.scratch(), "not-a-ca", "hello");
    let err = fails(&["audit", "list", "--source", &url, "--source-ca-file", &not_pem]);
    assert!(err.contains(&format!("CA file {not_pem}: holds no PEM certificate")), "{err}");
    // a server without TLS refuses sslmode=require
    let plain = Postgres::start();
    exporter_schema(&plain);
    let err = fails(&[
        "audit",
        "list",
        "--source",
        &format!("{}?sslmode=require", plain.url()),
        "--source-ca-file",
        &ca,
    ]);
    assert!(err.contains("cannot connect"), "{err}");
}
