//! A throwaway PostgreSQL cluster from Debian's `postgresql` package, for the integration
//! tests and `cargo xtask bench export`: `initdb` and `pg_ctl` run as the `postgres` user
//! (PostgreSQL refuses to run as root) on a temporary data directory it owns, on a free
//! loopback port, its socket in that directory; stopped and removed when dropped. It has a
//! database `paddock` owned by the role `paddock`.
//!
//! The `try_` functions and [`Postgres::database`] say what failed; the others, for tests,
//! panic with it (and the server's log).
mod tls;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
pub use tls::PgTls;

/// How a cluster is set up.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The roles' password: connections over TCP must give it (scram-sha-256); without
    /// one they are trusted.
    pub password: Option<String>,
    /// Serve TLS with a server certificate for 127.0.0.1 signed by a test CA.
    pub tls: bool,
    /// Server settings, `name=value`, each given as `-c name=value`.
    pub settings: Vec<String>,
}

impl Default for PgOptions {
    /// No password, no TLS; fast and small: `fsync=off`, `max_connections=50`.
    fn default() -> PgOptions {
        PgOptions {
            password: None,
            tls: false,
            settings: vec!["fsync=off".into(), "max_connections=50".into()],
        }
    }
}

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    options: PgOptions,
    pub tls: Option<PgTls>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("/usr/lib/postgresql: install the postgresql package (cargo xtask setup)")?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).context("no /usr/lib/postgresql/*/bin/initdb")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn quoted(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// Run `cmd`; its error output when it fails.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Run `command` (a shell line) as the `postgres` user.
fn as_postgres(command: &str) -> anyhow::Result<()> {
    run(Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", command]))
        .with_context(|| format!("as postgres: {command}"))
}

impl Postgres {
    /// A cluster with the default options; panics when it cannot start.
    pub fn start() -> Postgres {
        Postgres::with(PgOptions::default())
    }

    /// A cluster with `options`; panics when it cannot start.
    pub fn with(options: PgOptions) -> Postgres {
        Postgres::try_start(options).unwrap_or_else(|e| panic!("throwaway PostgreSQL: {e:#}"))
    }

    pub fn try_start(options: PgOptions) -> anyhow::Result<Postgres> {
        let dir = tempfile::Builder::new().prefix("paddock-pg-").tempdir().context("temp dir")?;
        let bin = bin_dir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data = dir.path().join("data");
        let mut settings = options.settings.clone();
        let tls = if options.tls {
            let (certs, ssl) = tls::make(&dir.path().join("tls"))?;
            settings.extend(ssl);
            Some(certs)
        } else {
            None
        };
        run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir.path()))?;
        if let Some(tls) = &tls {
            run(Command::new("chmod").arg("600").arg(tls.ca.with_file_name("server.key")))?;
        }
        as_postgres(&format!(
            "{} -D {} -A trust -U postgres -E UTF8 --no-sync >/dev/null",
            quoted(&bin.join("initdb")),
            quoted(&data)
        ))?;
        let host_auth = if options.password.is_some() { "scram-sha-256" } else { "trust" };
        let hba = data.join("pg_hba.conf");
        std::fs::write(
            &hba,
            format!(
                "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
                 host all all 127.0.0.1/32 {host_auth}\n"
            ),
        )
        .with_context(|| format!("write {}", hba.display()))?;
        let flags: String = settings.iter().map(|s| format!(" -c {s}")).collect();
        // The server's options, kept for `start_again`.
        let kept = dir.path().join("options");
        std::fs::write(
            &kept,
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1{flags}", dir.path().display()),
        )
        .with_context(|| format!("write {}", kept.display()))?;
        let pg = Postgres { dir, bin, port, options, tls };
        pg.try_start_again()?;
        pg.database("paddock")?;
        Ok(pg)
    }

    /// A new role `name` (with the cluster's password, if any) owning a new database `name`:
    /// `postgres://NAME@127.0.0.1:PORT/NAME`.
    pub fn database(&self, name: &str) -> anyhow::Result<String> {
        let password = match &self.options.password {
            Some(p) => format!(" PASSWORD '{}'", p.replace('\'', "''")),
            None => String::new(),
        };
        self.try_psql_in("postgres", &format!("CREATE ROLE {name} LOGIN{password}"))?;
        self.try_psql_in("postgres", &format!("CREATE DATABASE {name} OWNER {name}"))?;
        Ok(format!("postgres://{name}@127.0.0.1:{}/{name}", self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://paddock@127.0.0.1:PORT/paddock`.
    pub fn url(&self) -> String {
        format!("postgres://paddock@127.0.0.1:{}/paddock", self.port)
    }

    /// Run `sql` as the superuser in database `paddock`: `psql -At` output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("paddock", sql)
    }

    pub fn psql_in(&self, database: &str, sql: &str) -> String {
        self.try_psql_in(database, sql)
            .unwrap_or_else(|e| panic!("psql {sql}: {e:#}\n{}", self.log()))
    }

    /// `psql` in database `paddock`; its error (stderr) when it fails.
    pub fn try_psql(&self, sql: &str) -> anyhow::Result<String> {
        self.try_psql_in("paddock", sql)
    }

    /// Run `sql` as the superuser in `database`: `psql -At` output, trimmed.
    pub fn try_psql_in(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        self.psql_as("postgres", database, sql)
    }

    /// Run `sql` as `role` (through the socket, trusted) in `database`: `psql -At`
    /// output, trimmed; PostgreSQL's error when it fails.
    pub fn psql_as(&self, role: &str, database: &str, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", role, "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .env("PGTZ", "UTC")
            .output()
            .context("cannot start psql")?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr).trim_end());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// Stop the server (clients are disconnected); `start_again` brings it back.
    pub fn stop(&self) {
        self.pg_ctl("stop -m fast -w").unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()));
    }

    pub fn start_again(&self) {
        self.try_start_again().unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()));
    }

    fn try_start_again(&self) -> anyhow::Result<()> {
        let options = std::fs::read_to_string(self.dir.path().join("options"))?;
        self.pg_ctl(&format!(
            "start -w -t 60 -l {} -o {}",
            quoted(&self.dir.path().join("server.log")),
            quote(&options)
        ))
        .with_context(|| format!("the server did not start:\n{}", self.log()))
    }

    fn pg_ctl(&self, args: &str) -> anyhow::Result<()> {
        as_postgres(&format!(
            "{} -D {} {args} >/dev/null",
            quoted(&self.bin.join("pg_ctl")),
            quoted(&self.dir.path().join("data"))
        ))
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A directory the tests may write files in (password files).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop -m immediate -w");
    }
}
