//! An `[[export]]` table of kind `postgres` checked into what connecting needs: the
//! connection settings, how TLS is verified, and where the secrets are read from.
use std::path::PathBuf;

use super::super::config::PostgresExport;

/// How the connection is protected (`sslmode` in the URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP: only on a trusted network.
    Disable,
    /// Encrypted, the server's certificate not checked (anyone in the path can pose as it).
    Require,
    /// Encrypted, the certificate checked against `ca_file` and the URL's host name.
    VerifyFull,
}

#[derive(Debug, Clone)]
pub struct PgTarget {
    /// Host, port, role, database and other connection parameters; never a password.
    pub config: tokio_postgres::Config,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    /// The URL as configured (it holds no password), for messages.
    pub url: String,
}

/// A bad setting of a `postgres` export, named by its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub field: &'static str,
    pub value: String,
    pub rule: String,
}

const SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// `url` with any password in it replaced by `***`, for messages.
fn redacted(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match SCHEMES.iter().find_map(|s| base.strip_prefix(s).map(|rest| (s, rest))) {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((user, host)) if user.contains(':') => {
                    let name = user.split(':').next().unwrap_or("");
                    format!("{scheme}{name}:***@{host}{path}")
                }
                _ => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    match query {
        None => base,
        Some(query) => {
            let pairs: Vec<String> =
                query
                    .split('&')
                    .map(|p| {
                        if p.starts_with("password=") {
                            "password=***".into()
                        } else {
                            p.to_owned()
                        }
                    })
                    .collect();
            format!("{base}?{}", pairs.join("&"))
        }
    }
}

impl PgTarget {
    pub fn parse(export: &PostgresExport) -> Result<PgTarget, TargetError> {
        let url = export.url.as_str();
        let bad = |rule: &str| TargetError {
            field: "url",
            value: format!("{:?}", redacted(url)),
            rule: rule.to_owned(),
        };
        let Some(rest) = SCHEMES.iter().find_map(|s| url.strip_prefix(s)) else {
            return Err(bad("must be postgres://ROLE@HOST:PORT/DATABASE[?sslmode=...]"));
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.rsplit_once('@').is_some_and(|(user, _)| user.contains(':')) {
            return Err(bad(
                "holds a password: leave it out of the URL and the config, and put it in the \
                 file named by password_file",
            ));
        }
        let mut sslmode = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => sslmode = Some(value),
                "password" => {
                    return Err(bad(
                        "holds a password: leave it out of the URL and the config, and put it \
                         in the file named by password_file",
                    ));
                }
                _ => kept.push(pair),
            }
        }
        let plain =
            if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        let mut config: tokio_postgres::Config = plain
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(&format!("cannot be read: {e}")))?;
        if config.get_password().is_some() {
            return Err(bad("holds a password: put it in the file named by password_file"));
        }
        if config.get_user().is_none_or(str::is_empty) {
            return Err(bad("must name the role: postgres://ROLE@HOST:PORT/DATABASE"));
        }
        if config.get_hosts().is_empty() {
            return Err(bad("must name the host: postgres://ROLE@HOST:PORT/DATABASE"));
        }
        if config.get_dbname().is_none_or(str::is_empty) {
            return Err(bad("must name the database: postgres://ROLE@HOST:PORT/DATABASE"));
        }
        let tls = match (sslmode, &export.ca_file) {
            (Some("disable"), None) => TlsMode::Disable,
            (Some("require"), None) => TlsMode::Require,
            (Some("verify-full"), Some(_)) | (None, Some(_)) => TlsMode::VerifyFull,
            (None, None) => TlsMode::Require,
            (Some("verify-full"), None) => {
                return Err(TargetError {
                    field: "ca_file",
                    value: "(unset)".into(),
                    rule: "is needed with sslmode=verify-full: the PEM file of the CA that signed \
                           the server's certificate"
                        .into(),
                });
            }
            (Some("disable" | "require"), Some(ca)) => {
                return Err(TargetError {
                    field: "ca_file",
                    value: format!("{:?}", ca.display().to_string()),
                    rule: "is used only with sslmode=verify-full (or no sslmode)".into(),
                });
            }
            (Some(other), _) => {
                return Err(bad(&format!(
                    "sslmode={other}: must be disable, require or verify-full"
                )));
            }
        };
        config.ssl_mode(match tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Require | TlsMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        config.application_name("paddock-export");
        config.connect_timeout(std::time::Duration::from_secs(10));
        config.keepalives_idle(std::time::Duration::from_secs(30));
        Ok(PgTarget {
            config,
            tls,
            ca_file: export.ca_file.clone(),
            password_file: export.password_file.clone(),
            url: url.to_owned(),
        })
    }
}
