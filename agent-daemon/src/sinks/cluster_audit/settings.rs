//! The cluster source as people give it: a `postgres://` URL (never with a password in it),
//! a password file or `$PGPASSWORD`, and a CA file for TLS; checked into a client
//! configuration before anything connects.
use std::{path::PathBuf, str::FromStr as _, time::Duration};

use tokio_postgres::config::SslMode;

use super::ClusterError;

/// How long connecting may take when the URL does not say (`connect_timeout=`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to read the cluster's audit store, and from which setting it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    pub url: String,
    pub ca_file: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    /// `--source`, or `[audit] source in FILE`: named in every error.
    pub origin: String,
}

/// TLS as the URL's `sslmode` asks: `disable`; `prefer` (the default: TLS when the server
/// offers it); `require` and `verify-full` (TLS or nothing). Whenever TLS is used the
/// server's certificate is verified, name included, against the CA file or the system's
/// roots: paddock never talks TLS to a server it has not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    Disable,
    Prefer,
    Require,
}

/// What is wrong with a source URL, before any connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    Password,
    Bad(String),
}

/// The client configuration a URL gives, and its TLS mode; the password is not in it yet.
pub fn parse_url(url: &str) -> Result<(tokio_postgres::Config, Tls), UrlProblem> {
    let bad = |p: &str| Err(UrlProblem::Bad(p.to_owned()));
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"))
    else {
        return bad("is not a postgres:// URL (postgres://USER@HOST:PORT/DATABASE?sslmode=...)");
    };
    // sslmode is ours to read: the client knows only disable, prefer and require.
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut tls = Tls::Prefer;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", mode)) => {
                tls = match mode {
                    "disable" => Tls::Disable,
                    "prefer" => Tls::Prefer,
                    "require" | "verify-full" => Tls::Require,
                    "verify-ca" => {
                        return bad(
                            "sslmode=verify-ca: use verify-full (paddock always checks the \
                             server's name as well as its certificate)",
                        );
                    }
                    other => {
                        return Err(UrlProblem::Bad(format!(
                            "sslmode={other}: expected disable, prefer, require or verify-full"
                        )));
                    }
                }
            }
            _ => kept.push(pair),
        }
    }
    let mut rewritten = format!("postgres://{base}");
    if !kept.is_empty() {
        rewritten.push('?');
        rewritten.push_str(&kept.join("&"));
    }
    let mut config = tokio_postgres::Config::from_str(&rewritten)
        .map_err(|e| UrlProblem::Bad(super::describe(&e)))?;
    if config.get_password().is_some() {
        return Err(UrlProblem::Password);
    }
    if config.get_hosts().is_empty() {
        return bad("names no host: postgres://USER@HOST:PORT/DATABASE");
    }
    if config.get_user().is_none() {
        return bad("names no user: postgres://USER@HOST:PORT/DATABASE");
    }
    config.ssl_mode(match tls {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        Tls::Require => SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok((config, tls))
}

/// `url` with any password in it replaced by `***`, fit for messages.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("password", _)) => "password=***".to_owned(),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => tail.to_owned(),
    };
    if scheme.is_empty() {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    }
}

impl SourceSettings {
    /// The client configuration, password included, and the TLS mode.
    pub fn client_config(&self) -> Result<(tokio_postgres::Config, Tls), ClusterError> {
        let origin = || self.origin.clone();
        let (mut config, tls) = parse_url(&self.url).map_err(|p| match p {
            UrlProblem::Password => ClusterError::PasswordInUrl { origin: origin() },
            UrlProblem::Bad(problem) => ClusterError::BadUrl { origin: origin(), problem },
        })?;
        if let Some(password) = self.password()? {
            config.password(password);
        }
        Ok((config, tls))
    }

    /// The password file's first line, else `$PGPASSWORD`, else none.
    fn password(&self) -> Result<Option<String>, ClusterError> {
        let Some(path) = &self.password_file else {
            return Ok(std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()));
        };
        let problem = |problem: String| ClusterError::PasswordFile {
            origin: self.origin.clone(),
            path: path.clone(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
        let password = text.lines().next().unwrap_or("");
        if password.is_empty() {
            return Err(problem("is empty".into()));
        }
        Ok(Some(password.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(url: &str) -> String {
        match parse_url(url).unwrap_err() {
            UrlProblem::Bad(p) => p,
            UrlProblem::Password => "password".into(),
        }
    }

    #[test]
    fn urls_give_a_client_configuration_and_a_tls_mode() {
        let (config, tls) = parse_url("postgres://auditor@db.example:5433/paddock").unwrap();
        assert_eq!(tls, Tls::Prefer);
        assert_eq!(config.get_user(), Some("auditor"));
        assert_eq!(config.get_dbname(), Some("paddock"));
        assert_eq!(config.get_ports(), [5433]);
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer);
        let (config, tls) =
            parse_url("postgresql://a@h/d?sslmode=verify-full&connect_timeout=3").unwrap();
        assert_eq!(tls, Tls::Require);
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(parse_url("postgres://a@h/d?sslmode=require").unwrap().1, Tls::Require);
        let (config, tls) = parse_url("postgres://a@h/d?sslmode=disable").unwrap();
        assert_eq!((tls, config.get_ssl_mode()), (Tls::Disable, SslMode::Disable));
    }

    #[test]
    fn a_password_in_the_url_is_refused() {
        assert_eq!(parse_url("postgres://a:secret@h/d").unwrap_err(), UrlProblem::Password);
        assert_eq!(
            parse_url("postgres://a@h/d?password=secret").unwrap_err(),
            UrlProblem::Password
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(problem("mysql://a@h/d").contains("not a postgres:// URL"));
        assert!(problem("/var/lib/paddock/audit.db").contains("not a postgres:// URL"));
        assert!(problem("postgres://a@h/d?sslmode=verify-ca").contains("verify-full"));
        assert!(problem("postgres://a@h/d?sslmode=allow").contains("sslmode=allow: expected"));
        assert!(
            problem("postgres://h/d").contains("names no user"),
            "{}",
            problem("postgres://h/d")
        );
        assert!(!problem("postgres://a@h/d?sslrootcert=/x").is_empty());
        assert!(!problem("postgres://a@h:port/d").is_empty());
    }

    #[test]
    fn passwords_are_redacted_from_urls_in_messages() {
        assert_eq!(redact("postgres://a:s3cret@h:5432/d"), "postgres://a:***@h:5432/d");
        assert_eq!(redact("postgres://a:s:e@c@h/d?x=1"), "postgres://a:***@h/d?x=1");
        assert_eq!(
            redact("postgres://a@h/d?sslmode=require&password=s3cret"),
            "postgres://a@h/d?sslmode=require&password=***"
        );
        assert_eq!(redact("postgres://a@h/d"), "postgres://a@h/d");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn the_password_comes_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let settings = SourceSettings {
            url: "postgres://a@h/d".into(),
            ca_file: None,
            password_file: Some(file.clone()),
            origin: "--source postgres://a@h/d".into(),
        };
        let (config, _) = settings.client_config().unwrap();
        assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
        std::fs::write(&file, "\n").unwrap();
        let err = settings.client_config().unwrap_err().to_string();
        assert!(err.starts_with("--source postgres://a@h/d: password file "), "{err}");
        assert!(err.ends_with("is empty"), "{err}");
        let err = SourceSettings { url: "postgres://a:pw@h/d".into(), ..settings }
            .client_config()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--source postgres://a@h/d: the URL holds a password"), "{err}");
        assert!(!err.contains(":pw@"), "{err}");
    }
}
