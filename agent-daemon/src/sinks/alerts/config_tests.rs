use super::*;

/// The daemon's file nests the section under `[alerts]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    alerts: AlertsConfig,
}

fn parse(text: &str) -> Result<AlertsConfig, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    file.alerts.validate().map_err(|e| e.to_string())?;
    Ok(file.alerts)
}

#[test]
fn no_section_means_no_receivers() {
    assert_eq!(parse("").unwrap(), AlertsConfig::default());
}

#[test]
fn receivers_of_each_kind_parse_with_defaults() {
    let config = parse(
        r#"
        [alerts]
        node = "node-a"

        [[alerts.receivers]]
        kind = "alertmanager"
        name = "am"
        url = "http://127.0.0.1:9093"

        [[alerts.receivers]]
        kind = "webhook"
        name = "soc"
        url = "https://soc.example/hook"
        hmac_secret = "s3cret"
        timeout_ms = 500
        queue = 16
        max_retries = 2

        [[alerts.receivers]]
        kind = "stdout"
        name = "log"
        "#,
    )
    .unwrap();
    assert_eq!(config.node.as_deref(), Some("node-a"));
    assert_eq!(
        config.receivers[0],
        ReceiverConfig::Alertmanager(AlertmanagerReceiver {
            name: "am".into(),
            url: "http://127.0.0.1:9093".into(),
            timeout_ms: 2000,
            queue: 1024,
            max_retries: 8,
        })
    );
    let ReceiverConfig::Webhook(hook) = &config.receivers[1] else { panic!("{config:?}") };
    assert_eq!(hook.hmac_secret, Some(Secret("s3cret".into())));
    assert_eq!((hook.timeout_ms, hook.queue, hook.max_retries), (500, 16, 2));
    assert_eq!(config.receivers[2], ReceiverConfig::Stdout(StdoutReceiver { name: "log".into() }));
    assert_eq!(
        config.receivers.iter().map(|r| r.kind()).collect::<Vec<_>>(),
        ["alertmanager", "webhook", "stdout"]
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let config = parse(&receiver(
        "kind = \"webhook\"\nname = \"w\"\nurl = \"http://h/\"\nhmac_secret = \"s3cret\"",
    ))
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[test]
fn unknown_fields_and_kinds_are_rejected() {
    let err = parse("[[alerts.receivers]]\nkind = \"stdout\"\nname = \"a\"\nurl = \"http://h\"\n")
        .unwrap_err();
    assert!(err.contains("url"), "{err}");
    let err =
        parse(&receiver("kind = \"alertmanager\"\nname = \"a\"\nurl = \"http://h\"\nqueu = 3"))
            .unwrap_err();
    assert!(err.contains("queu"), "{err}");
    let err = parse("[[alerts.receivers]]\nkind = \"pager\"\nname = \"a\"\n").unwrap_err();
    assert!(err.contains("pager"), "{err}");
    let err = parse("[[alerts.receivers]]\nname = \"a\"\n").unwrap_err();
    assert!(err.contains("kind"), "{err}");
    let err = parse("[alerts]\nnodes = \"x\"\n").unwrap_err();
    assert!(err.contains("nodes"), "{err}");
}

fn receiver(body: &str) -> String {
    format!("[[alerts.receivers]]\n{body}\n")
}

#[test]
fn invalid_receivers_name_the_receiver_and_the_field() {
    let cases = [
        (receiver("kind = \"stdout\"\nname = \"\""), "name", "must not be empty"),
        (
            receiver("kind = \"stdout\"\nname = \"x\"")
                + &receiver("kind = \"stdout\"\nname = \"x\""),
            "alerts.receivers[1] (\"x\"): name",
            "another receiver",
        ),
        (
            receiver("kind = \"alertmanager\"\nname = \"am\"\nurl = \"ftp://h\""),
            "(\"am\"): url = ftp://h",
            "http",
        ),
        (receiver("kind = \"webhook\"\nname = \"w\"\nurl = \"not a url\""), "url", "http"),
        (
            receiver("kind = \"webhook\"\nname = \"w\"\nurl = \"http://h\"\nqueue = 0"),
            "(\"w\"): queue = 0",
            "must be 1 to 65536",
        ),
        (
            receiver(
                "kind = \"alertmanager\"\nname = \"am\"\nurl = \"http://h\"\nqueue = 10000000",
            ),
            "(\"am\"): queue = 10000000",
            "must be 1 to 65536",
        ),
        // Found by `config_props`: accepted, then the daemon panicked making its queue.
        (
            receiver(
                "kind = \"alertmanager\"\nname = \"am\"\nurl = \"http://h\"\n\
                 queue = 2305843009213693952",
            ),
            "(\"am\"): queue = 2305843009213693952",
            "must be 1 to 65536",
        ),
        (
            receiver("kind = \"webhook\"\nname = \"w\"\nurl = \"http://h\"\ntimeout_ms = 0"),
            "timeout_ms = 0",
            "at least 1",
        ),
        (
            receiver(
                "kind = \"webhook\"\nname = \"w\"\nurl = \"http://h\"\nhmac_secret = \"a\"\n\
                 hmac_secret_file = \"/etc/s\"",
            ),
            "(\"w\"): hmac_secret_file = /etc/s",
            "not both",
        ),
        (
            receiver("kind = \"webhook\"\nname = \"w\"\nurl = \"http://h\"\nhmac_secret = \"\""),
            "hmac_secret",
            "not be empty",
        ),
    ];
    for (text, field, rule) in cases {
        let err = parse(&text).unwrap_err();
        assert!(err.contains(field) && err.contains(rule), "{text}\n-> {err}");
    }
}
