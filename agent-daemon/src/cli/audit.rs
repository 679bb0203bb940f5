//! `paddock audit list | show | tree | check | export`: forensic queries on the audit store, read
//! straight from its file (read-only), so they work with the daemon down too; or, with
//! `--source postgres://...`, on the cluster's store that the exporters fill.
//!
//! The source is `--db FILE`; else `--source` (`local`, or a `postgres://` URL); else the
//! configuration's `[audit] source`; else this node's store file: the one the running daemon
//! writes (asked over its socket), else the one the configuration names. The configuration
//! is `--config`, `$PADDOCK_CONFIG`, or /etc/paddock/paddock.toml when it exists.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::Utc;

use super::{audit_out as out, client::Client};
use crate::{
    api::protocol::{Reply, Request},
    config::{Config, DEFAULT_CONFIG_PATH},
    identity::InvestigationId,
    sinks::{
        audit::{
            AuditStore, params,
            query::MAX_PAGE,
            source::{AuditSource, SourceEventFilter},
        },
        cluster_audit::{ClusterSource, SourceSettings, settings::redact},
    },
};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// The audit database file.
    #[arg(long, global = true)]
    pub db: Option<PathBuf>,
    /// The daemon's configuration, to find the store when no daemon answers.
    #[arg(long, global = true, env = "PADDOCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where to read: `local` (this node's store), or the cluster's store the exporters
    /// fill, `postgres://USER@HOST:PORT/DATABASE[?sslmode=require|verify-full]` (never with
    /// a password in it). Default: the configuration's `[audit] source`, else `local`.
    #[arg(long, global = true, value_name = "local|URL")]
    pub source: Option<String>,
    /// CA certificates (PEM) the source's server certificate must chain to (default: the
    /// configuration's `[audit] source_ca_file`, else the system's roots).
    #[arg(long, global = true, value_name = "FILE")]
    pub source_ca_file: Option<PathBuf>,
    /// A file whose first line is the source's password (default: the configuration's
    /// `[audit] source_password_file`, else $PGPASSWORD).
    #[arg(long, global = true, value_name = "FILE")]
    pub source_password_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Runs of investigations, newest first.
    List {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        phase: Option<String>,
        /// RFC 3339 time, or an age: 90s, 15m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// ok, flagged, killed or running.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, default_value_t = params::DEFAULT_LIMIT)]
        limit: usize,
        #[arg(long, value_enum, default_value = "table")]
        format: out::Format,
    },
    /// The timeline of one investigation: every event, oldest first (across nodes: by time,
    /// then node).
    Show {
        id: String,
        /// Only this run (see `audit list`; across nodes RUN, NODE/RUN or
        /// NODE/STORE_ID/RUN); every run by default.
        #[arg(long)]
        run: Option<String>,
        /// Only events of this kind (exec, open, connect, verdict, ...).
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// At most this many events (1 to 10000), then the cursor of the next page on
        /// stderr (`next cursor: ...`); every event by default.
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this cursor (a `next cursor` printed before).
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: out::Format,
    },
    /// The process tree of one investigation's latest run (or `--run`): forks, execs, exits
    /// and kills.
    Tree {
        id: String,
        #[arg(long)]
        run: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: out::Format,
    },
    /// Check the store file's integrity (SQLite `integrity_check`).
    Check,
    /// Every event after a sequence number, oldest first, as JSON lines: paddock's own
    /// (`--format jsonl`, with `seq` and `run`) or named after OpenTelemetry (`--format otel`).
    Export(super::audit_export::ExportArgs),
}

/// The store file, as the module documentation says.
fn store_path(args: &AuditArgs, socket: &Path) -> anyhow::Result<PathBuf> {
    if let Some(db) = &args.db {
        return Ok(db.clone());
    }
    if let Ok(mut client) = Client::connect(socket)
        && client.send(&Request::Status).is_ok()
        && let Ok(Reply::Status(report)) = client.expect_reply()
    {
        return report.audit.map(|a| a.path).with_context(|| {
            format!(
                "the daemon at {} keeps no audit store (audit.enabled = false)",
                socket.display()
            )
        });
    }
    let config = Config::load(args.config.as_deref())?;
    anyhow::ensure!(config.audit.enabled, "the configuration disables the audit store");
    Ok(config.audit_path())
}

/// Where the queries go.
enum Chosen {
    Local(PathBuf),
    Cluster(SourceSettings),
}

/// The source, as the module documentation says.
fn choose(args: &AuditArgs, socket: &Path) -> anyhow::Result<Chosen> {
    let cluster = |url: &str, origin: String, config: Option<&Config>| {
        let audit = config.map(|c| &c.audit);
        Chosen::Cluster(SourceSettings {
            url: url.to_owned(),
            ca_file: args.source_ca_file.clone().or_else(|| audit?.source_ca_file.clone()),
            password_file: args
                .source_password_file
                .clone()
                .or_else(|| audit?.source_password_file.clone()),
            origin,
        })
    };
    match (&args.db, args.source.as_deref()) {
        (Some(_), Some(source)) if source != "local" => {
            anyhow::bail!(
                "--db reads a local store file and --source {} another store: give one",
                redact(source)
            )
        }
        (Some(db), _) => Ok(Chosen::Local(db.clone())),
        (None, Some("local")) => Ok(Chosen::Local(store_path(args, socket)?)),
        (None, Some(url)) => Ok(cluster(url, format!("--source {}", redact(url)), None)),
        (None, None) => {
            let config = Config::load(args.config.as_deref())?;
            match config.audit.source.as_deref() {
                Some(url) => {
                    let file = args.config.clone().unwrap_or_else(|| DEFAULT_CONFIG_PATH.into());
                    let origin = format!("[audit] source {} in {}", redact(url), file.display());
                    Ok(cluster(url, origin, Some(&config)))
                }
                None => Ok(Chosen::Local(store_path(args, socket)?)),
            }
        }
    }
}

fn pairs(list: &[(&str, &Option<String>)]) -> Vec<(String, String)> {
    list.iter().filter_map(|(k, v)| v.as_ref().map(|v| ((*k).to_owned(), v.clone()))).collect()
}

/// `audit check`: the local file's integrity.
fn check(chosen: Chosen) -> anyhow::Result<i32> {
    let Chosen::Local(path) = chosen else {
        anyhow::bail!(
            "audit check reads this node's store file only: drop --source (or give --source local)"
        );
    };
    let store = AuditStore::open_read_only(&path)?;
    let result = store.integrity_check()?;
    println!("{}: {result}", store.path().display());
    Ok(if result == "ok" { 0 } else { 1 })
}

pub fn main(args: AuditArgs, socket: &Path) -> anyhow::Result<i32> {
    let chosen = choose(&args, socket)?;
    let command = match args.command {
        AuditCommand::Check => return check(chosen),
        AuditCommand::Export(export) => {
            let Chosen::Local(path) = chosen else {
                anyhow::bail!(
                    "audit export reads this node's store file only: drop --source (or give \
                     --source local)"
                );
            };
            return super::audit_export::main(&AuditStore::open_read_only(&path)?, export);
        }
        command => command,
    };
    let cluster = matches!(chosen, Chosen::Cluster(_));
    let mut source: Box<dyn AuditSource> = match chosen {
        Chosen::Local(path) => Box::new(AuditStore::open_read_only(&path)?),
        Chosen::Cluster(settings) => Box::new(ClusterSource::open(&settings)?),
    };
    let now = Utc::now();
    match command {
        AuditCommand::List { id, phase, since, outcome, limit, format } => {
            let mut given =
                pairs(&[("id", &id), ("phase", &phase), ("since", &since), ("outcome", &outcome)]);
            given.push(("limit".into(), limit.to_string()));
            let filter = params::list_filter(&given, now)?;
            out::runs(&source.list_runs(&filter)?, cluster, format)?;
        }
        AuditCommand::Show { id, run, kind, since, until, limit, cursor, format } => {
            let id: InvestigationId = id.parse()?;
            let mut given = pairs(&[("kind", &kind), ("since", &since), ("until", &until)]);
            if let Some(limit) = limit {
                given.push(("limit".into(), limit.to_string()));
            }
            let request = params::events_request(&given, now)?;
            let filter = SourceEventFilter {
                run,
                kind: request.filter.kind,
                since: request.filter.since,
                until: request.filter.until,
            };
            let mut cursor = cursor;
            let mut shown = 0;
            let mut all = Vec::new();
            loop {
                let page_size = limit.map_or(MAX_PAGE, |l| l - shown);
                let page = source.events(&id, &filter, cursor.as_deref(), page_size)?;
                shown += page.events.len();
                for event in page.events {
                    match format {
                        out::Format::Json => all.push(event),
                        _ => out::event(&event, format)?,
                    }
                }
                match page.next {
                    Some(next) if limit.is_some_and(|l| shown >= l) => {
                        eprintln!("next cursor: {next}");
                        break;
                    }
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if format == out::Format::Json {
                out::events_json(&all, cluster)?;
            }
        }
        AuditCommand::Tree { id, run, format } => {
            let id: InvestigationId = id.parse()?;
            out::tree(&source.tree(&id, run.as_deref())?, format)?;
        }
        AuditCommand::Check | AuditCommand::Export(_) => {} // answered above
    }
    Ok(0)
}
