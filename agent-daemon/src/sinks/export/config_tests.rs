use super::*;
use crate::sinks::export::jsonl_config::JsonlConfig;

fn parse(text: &str) -> Result<Vec<ExportConfig>, String> {
    #[derive(Deserialize)]
    struct File {
        export: Vec<ExportConfig>,
    }
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    validate(&file.export).map_err(|e| e.to_string())?;
    Ok(file.export)
}

const GOOD: &str = "[[export]]\nname = \"pg\"\nkind = \"postgres\"\n\
     url = \"postgres://paddock@db.example:5432/paddock?sslmode=verify-full\"\n\
     ca_file = \"/etc/paddock/ca.pem\"\npassword_file = \"/etc/paddock/pg-password\"\n";

#[test]
fn a_postgres_export_reads_with_its_defaults() {
    let exports = parse(GOOD).unwrap();
    let ExportConfig::Postgres(p) = &exports[0] else { panic!("{exports:?}") };
    assert_eq!(p.name, "pg");
    assert_eq!(p.batch_events, DEFAULT_BATCH_EVENTS);
    assert_eq!(p.retention_days, 0);
    assert_eq!(p.node, None);
    let target = PgTarget::parse(p).unwrap();
    assert_eq!(target.tls, super::super::postgres::target::TlsMode::VerifyFull);
    assert_eq!(target.config.get_user(), Some("paddock"));
    assert_eq!(target.config.get_dbname(), Some("paddock"));
    assert_eq!(target.config.get_ports(), [5432]);
}

#[test]
fn sslmode_decides_tls() {
    use super::super::postgres::target::TlsMode;
    for (query, mode) in [
        ("?sslmode=disable", TlsMode::Disable),
        ("?sslmode=require", TlsMode::Require),
        ("", TlsMode::Require),
    ] {
        let text = format!(
            "[[export]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://paddock@127.0.0.1:5432/paddock{query}\"\n"
        );
        let exports = parse(&text).unwrap();
        let ExportConfig::Postgres(p) = &exports[0] else { panic!("{exports:?}") };
        assert_eq!(PgTarget::parse(p).unwrap().tls, mode, "{query}");
    }
}

#[test]
fn bad_settings_name_the_table_and_field() {
    let cases = [
        (GOOD.replace("paddock@db", "paddock:secret@db"), "export[0].url = ", "password"),
        (GOOD.replace("?sslmode", "?password=secret&sslmode"), "export[0].url = ", "password"),
        (GOOD.replace("postgres://", "mysql://"), "export[0].url = ", "postgres://"),
        (GOOD.replace("paddock@", ""), "export[0].url = ", "role"),
        (GOOD.replace(":5432/paddock", ":5432"), "export[0].url = ", "database"),
        (GOOD.replace("verify-full", "verify-ca"), "export[0].url = ", "verify-full"),
        (
            GOOD.replace("ca_file = \"/etc/paddock/ca.pem\"\n", ""),
            "export[0].ca_file = ",
            "verify-full",
        ),
        (GOOD.replace("verify-full", "disable"), "export[0].ca_file = ", "only with"),
        (
            GOOD.replace("/etc/paddock/pg-password", "pg-password"),
            "export[0].password_file = ",
            "absolute",
        ),
        (GOOD.replace("name = \"pg\"", "name = \"Pg Main\""), "export[0].name = ", "a-z"),
        (GOOD.to_owned() + "batch_events = 0\n", "export[0].batch_events = 0", "1 to 100000"),
        (GOOD.to_owned() + "retention_days = 40000\n", "export[0].retention_days = 40000", "36500"),
        (GOOD.to_owned() + "node = \" \"\n", "export[0].node = ", "1 to 253"),
        (GOOD.to_owned() + GOOD, "export[1].name = \"pg\"", "earlier"),
    ];
    for (text, prefix, rule) in cases {
        let err = parse(&text).unwrap_err();
        assert!(err.starts_with(prefix) && err.contains(rule), "{prefix}: {err}\n{text}");
        assert!(!err.contains("secret"), "a password never shows: {err}");
    }
}

#[test]
fn unknown_kinds_and_fields_are_refused() {
    let err = parse(&GOOD.replace("kind = \"postgres\"", "kind = \"mysql\"")).unwrap_err();
    assert!(err.contains("mysql"), "{err}");
    let err = parse(&(GOOD.to_owned() + "password = \"x\"\n")).unwrap_err();
    assert!(err.contains("password"), "{err}");
}

const JSONL: &str =
    "[[export]]\nname = \"siem\"\nkind = \"jsonl\"\npath = \"/var/log/paddock/events.jsonl\"\n";

fn jsonl(name: &str, path: &str, more: &str) -> String {
    format!("[[export]]\nname = {name:?}\nkind = \"jsonl\"\npath = {path:?}\n{more}")
}

#[test]
fn a_jsonl_export_reads_with_its_defaults_beside_postgres() {
    let exports = parse(&(GOOD.to_owned() + JSONL)).unwrap();
    assert_eq!(exports[0].kind(), "postgres");
    let ExportConfig::Jsonl(j) = &exports[1] else { panic!("{exports:?}") };
    assert_eq!((exports[1].kind(), exports[1].name()), ("jsonl", "siem"));
    assert_eq!(j.writer_config(), JsonlConfig::file("/var/log/paddock/events.jsonl"));
    assert_eq!((j.batch_events, j.node.as_deref()), (DEFAULT_BATCH_EVENTS, None));
    let set =
        parse(&jsonl("s", "-", "max_bytes = 8192\nkeep = 0\nbatch_events = 9\nnode = \"n1\"\n"))
            .unwrap();
    let ExportConfig::Jsonl(j) = &set[0] else { panic!("{set:?}") };
    assert!(j.writer_config().is_stdout());
    assert_eq!((j.max_bytes, j.keep, j.batch_events), (8192, 0, 9));
    assert_eq!(set[0].node(), Some("n1"));
}

#[test]
fn bad_jsonl_settings_name_the_table_and_field() {
    let cases = [
        (
            GOOD.to_owned() + &jsonl("j", "events.jsonl", ""),
            "export[1].path = \"events.jsonl\"",
            "absolute",
        ),
        (jsonl("j", "/var/log/", ""), "export[0].path = ", "name a file"),
        (jsonl("j", "/x", "max_bytes = 100\n"), "export[0].max_bytes = 100", "at least 4096"),
        (jsonl("j", "/x", "keep = 1001\n"), "export[0].keep = 1001", "at most 1000"),
        (jsonl("j", "/x", "batch_events = 0\n"), "export[0].batch_events = 0", "1 to 100000"),
        (jsonl("J", "/x", ""), "export[0].name = ", "a-z"),
        (JSONL.to_owned() + JSONL, "export[1].name = \"siem\"", "earlier"),
        // Two exports, one file (spelt differently), or one's rotated file.
        (
            jsonl("a", "/x/e.jsonl", "") + &jsonl("b", "/x/./e.jsonl", ""),
            "export[1].path = \"/x/./e.jsonl\"",
            "export[0] (\"a\") writes this file too",
        ),
        (
            jsonl("a", "/x/e.jsonl", "keep = 3\n") + &jsonl("b", "/x/e.jsonl.3", ""),
            "export[1].path = ",
            "export[0] (\"a\") writes this file too",
        ),
        (
            jsonl("a", "/x/e.jsonl.1", "") + &jsonl("b", "/x/e.jsonl", ""),
            "export[1].path = ",
            "export[0] (\"a\") writes this file too",
        ),
        (
            jsonl("a", "-", "") + &jsonl("b", "-", ""),
            "export[1].path = \"-\"",
            "export[0] (\"a\") writes standard output too",
        ),
    ];
    for (text, prefix, rule) in cases {
        let err = parse(&text).unwrap_err();
        assert!(err.starts_with(prefix) && err.contains(rule), "{prefix}: {err}\n{text}");
    }
    // Files apart, or rotated files beyond what `keep` holds, are fine.
    parse(&(jsonl("a", "/x/e.jsonl", "keep = 2\n") + &jsonl("b", "/x/e.jsonl.3", ""))).unwrap();
    parse(&(jsonl("a", "-", "") + &jsonl("b", "/x/e.jsonl", ""))).unwrap();
}

#[test]
fn unknown_jsonl_keys_are_refused() {
    let err = parse(&(JSONL.to_owned() + "max_size = 5\n")).unwrap_err();
    assert!(err.contains("unknown field `max_size`") && err.contains("max_bytes"), "{err}");
    let err = parse(&(JSONL.to_owned() + "url = \"postgres://x\"\n")).unwrap_err();
    assert!(err.contains("unknown field `url`"), "{err}");
}

#[test]
fn standard_output_is_shared_with_no_stdout_receiver() {
    #[derive(Deserialize)]
    struct File {
        export: Vec<ExportConfig>,
        alerts: crate::sinks::alerts::AlertsConfig,
    }
    let check = |export: &str| {
        let text = format!(
            "{export}[alerts]\n[[alerts.receivers]]\nkind = \"webhook\"\nname = \"hook\"\n\
             url = \"http://127.0.0.1:9/\"\n[[alerts.receivers]]\nkind = \"stdout\"\nname = \"log\"\n"
        );
        let file: File = toml::from_str(&text).unwrap();
        validate_stdout(&file.export, &file.alerts.receivers).map_err(|e| e.to_string())
    };
    assert_eq!(
        check(&(JSONL.to_owned() + &jsonl("out", "-", ""))).unwrap_err(),
        "export[1].path = \"-\": alerts.receivers[1] (\"log\") is of kind \"stdout\" and \
         writes standard output too: write the export to a file, or remove that receiver"
    );
    check(JSONL).unwrap();
    check(GOOD).unwrap();
}
