//! A throwaway PostgreSQL cluster per test, from Debian's `postgresql` package: `initdb`
//! and `pg_ctl` run as the `postgres` user on a temporary data directory it owns, on a free
//! loopback port, its socket in that directory; stopped and removed when dropped. It has a
//! database `paddock` owned by the role `paddock`.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// How a cluster is set up.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// The `paddock` role's password: connections over TCP must give it (scram-sha-256);
    /// without one they are trusted.
    pub password: Option<String>,
    /// Serve TLS with a server certificate for 127.0.0.1 signed by a test CA.
    pub tls: bool,
}

/// The certificates of a TLS cluster (PEM files).
#[derive(Debug, Clone)]
pub struct PgTls {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server shows.
    pub other_ca: PathBuf,
}

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    options: PgOptions,
    pub tls: Option<PgTls>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql: install the postgresql package (cargo xtask setup)")
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect("no /usr/lib/postgresql/*/bin/initdb")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run `command` (a shell line) as the `postgres` user; panics with its output on failure.
fn as_postgres(command: &str) -> String {
    let out = Command::new("su")
        .args(["postgres", "-s", "/bin/sh", "-c", command])
        .output()
        .expect("spawn su");
    assert!(
        out.status.success(),
        "as postgres: {command}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`name.pem`, `name.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pem")));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN=paddock test {name}"))
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&pem));
    pem
}

/// A server certificate for 127.0.0.1 signed by `ca`: (certificate, key).
fn make_server_cert(dir: &Path, ca: &Path) -> (PathBuf, PathBuf) {
    let (key, csr, pem, ext) = (
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
        dir.join("server.ext"),
    );
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(ca)
        .arg("-CAkey")
        .arg(ca.with_extension("key"))
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&pem));
    (pem, key)
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::with(PgOptions::default())
    }

    pub fn with(options: PgOptions) -> Postgres {
        let dir = tempfile::Builder::new().prefix("paddock-pg-").tempdir().expect("temp dir");
        let bin = bin_dir();
        let port = crate::monitoring::free_port();
        let data = dir.path().join("data");
        let mut tls = None;
        let mut ssl = String::new();
        if options.tls {
            let certs = dir.path().join("tls");
            std::fs::create_dir(&certs).expect("mkdir tls");
            let ca = make_ca(&certs, "ca");
            let other_ca = make_ca(&certs, "other-ca");
            let (cert, key) = make_server_cert(&certs, &ca);
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
            tls = Some(PgTls { ca, other_ca });
        }
        run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir.path()));
        if let Some(tls) = &tls {
            let key = tls.ca.with_file_name("server.key");
            run(Command::new("chmod").arg("600").arg(&key));
        }
        as_postgres(&format!(
            "{} -D {} -A trust -U postgres -E UTF8 --no-sync >/dev/null",
            quote(&bin.join("initdb").to_string_lossy()),
            quote(&data.to_string_lossy())
        ));
        let host_auth = if options.password.is_some() { "scram-sha-256" } else { "trust" };
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 {host_auth}\n"
            ),
        )
        .expect("write pg_hba.conf");
        let pg = Postgres { dir, bin, port, options, tls };
        // The server's options, kept for `start_again`.
        std::fs::write(pg.dir.path().join("options"), format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50{ssl}",
            pg.dir.path().display()
        ))
        .expect("write options");
        pg.start_again();
        let password = match &pg.options.password {
            Some(p) => format!(" PASSWORD {}", quote(p)),
            None => String::new(),
        };
        pg.psql_in("postgres", &format!("CREATE ROLE paddock LOGIN{password}"));
        pg.psql_in("postgres", "CREATE DATABASE paddock OWNER paddock");
        pg
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
            .unwrap_or_else(|e| panic!("psql {sql}: {e}\n{}", self.log()))
    }

    /// `psql`, its error (stderr) when it fails.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.try_psql_in("paddock", sql)
    }

    fn try_psql_in(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .env("PGTZ", "UTC")
            .output()
            .expect("spawn psql");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// Stop the server (clients are disconnected); `start_again` brings it back.
    pub fn stop(&self) {
        self.pg_ctl("stop -m fast -w");
    }

    pub fn start_again(&self) {
        let options = std::fs::read_to_string(self.dir.path().join("options")).expect("options");
        self.pg_ctl(&format!(
            "start -w -t 60 -l {} -o {}",
            quote(&self.dir.path().join("server.log").to_string_lossy()),
            quote(&options)
        ));
    }

    fn pg_ctl(&self, args: &str) {
        as_postgres(&format!(
            "{} -D {} {args} >/dev/null",
            quote(&self.bin.join("pg_ctl").to_string_lossy()),
            quote(&self.dir.path().join("data").to_string_lossy())
        ));
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
        let _ = Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c"])
            .arg(format!(
                "{} -D {} stop -m immediate -w >/dev/null 2>&1",
                quote(&self.bin.join("pg_ctl").to_string_lossy()),
                quote(&self.dir.path().join("data").to_string_lossy())
            ))
            .status();
    }
}
