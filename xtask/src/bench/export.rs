//! Export throughput: `paddock-bench export` fills a store with a million realistic events
//! and exports it whole to a throwaway PostgreSQL (Debian's package, started here as the
//! `postgres` user on a free loopback port), with 1 and then N concurrent exporters (as N
//! nodes), each run on a fresh database.
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;
use serde_json::Value;

use crate::util::{output, run, target_bin};

/// A PostgreSQL cluster in a temporary directory, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("/usr/lib/postgresql: the postgresql package is missing (cargo xtask setup)")?
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

fn as_postgres(line: &str) -> anyhow::Result<()> {
    run(Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", line]))
}

fn shown(p: &Path) -> String {
    format!("'{}'", p.display())
}

impl Cluster {
    fn start() -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("paddock-bench-pg-").tempdir()?;
        let bin = bin_dir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir.path()))?;
        let data = dir.path().join("data");
        as_postgres(&format!(
            "{} -D {} -A trust -U postgres -E UTF8 --no-sync >/dev/null",
            shown(&bin.join("initdb")),
            shown(&data)
        ))?;
        as_postgres(&format!(
            "{} -D {} -l {} -w start -o '-p {port} -k {} -c listen_addresses=127.0.0.1 \
             -c shared_buffers=512MB -c max_wal_size=4GB' >/dev/null",
            shown(&bin.join("pg_ctl")),
            shown(&data),
            shown(&dir.path().join("server.log")),
            dir.path().display()
        ))?;
        Ok(Cluster { dir, bin, port })
    }

    fn psql(&self, sql: &str) -> anyhow::Result<String> {
        output(
            Command::new(self.bin.join("psql"))
                .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]),
        )
    }

    /// A fresh database `name` owned by a fresh role `name`: its URL.
    fn database(&self, name: &str) -> anyhow::Result<String> {
        self.psql(&format!("CREATE ROLE {name} LOGIN"))?;
        self.psql(&format!("CREATE DATABASE {name} OWNER {name}"))?;
        Ok(format!("postgres://{name}@127.0.0.1:{}/{name}?sslmode=disable", self.port))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&format!(
            "{} -D {} stop -m immediate -w >/dev/null 2>&1",
            shown(&self.bin.join("pg_ctl")),
            shown(&self.dir.path().join("data"))
        ));
    }
}

pub fn run_bench(events: u64, exporters: &[u32]) -> anyhow::Result<()> {
    let cluster = Cluster::start()?;
    println!(
        "{:>9} {:>10} {:>9} {:>10} {:>12} {:>14}",
        "exporters", "events", "store MiB", "export s", "events/s", "per exporter/s"
    );
    for (i, &n) in exporters.iter().enumerate() {
        let url = cluster.database(&format!("bench{i}"))?;
        let text = output(Command::new(target_bin(true, "paddock-bench")).args([
            "export",
            "--events",
            &events.to_string(),
            "--url",
            &url,
            "--exporters",
            &n.to_string(),
        ]))?;
        let r: Value = serde_json::from_str(text.trim())
            .with_context(|| format!("paddock-bench export printed {text:?}"))?;
        println!(
            "{:>9} {:>10} {:>9} {:>10.1} {:>12.0} {:>14.0}",
            n,
            r["events"],
            r["store_mib"],
            r["export_seconds"].as_f64().unwrap_or(f64::NAN),
            r["events_per_second"].as_f64().unwrap_or(f64::NAN),
            r["events_per_second_per_exporter"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
