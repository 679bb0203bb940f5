use super::*;

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
    let ExportConfig::Postgres(p) = &exports[0];
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
        let ExportConfig::Postgres(p) = &exports[0];
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
