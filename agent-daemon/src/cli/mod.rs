//! The `paddock` command line.
mod audit;
mod audit_export;
mod audit_out;
mod baseline;
mod client;
mod events;
mod report;
mod run;
mod status;
mod table;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_SOCKET};

/// Exit status of `paddock run` when paddock itself failed (no daemon, bad arguments).
pub const EXIT_PADDOCK_ERROR: i32 = 125;
/// Exit status of `paddock run` when paddock killed the investigation.
pub const EXIT_KILLED: i32 = 99;

#[derive(Parser, Debug)]
#[command(name = "paddock", version, about = "Runtime guard for autonomous AI agents")]
pub struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, env = "PADDOCK_SOCKET")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load the probes and watch investigations (needs root).
    Daemon(DaemonArgs),
    /// Run a command as a tracked investigation.
    Run(run::RunArgs),
    /// Print recent events, or follow them.
    Events(events::EventsArgs),
    /// What the daemon is doing; exits non-zero when no daemon answers.
    Status(status::StatusArgs),
    /// Trust phases: switch a phase between learn, flag and enforce.
    #[command(subcommand)]
    Phase(baseline::PhaseCommand),
    /// Per-phase baselines: list, show, diff, export, import, reset.
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Forensic queries on the audit store: list, show, tree, check, export.
    Audit(audit::AuditArgs),
}

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// Configuration file (default: /etc/paddock/paddock.toml when it exists).
    #[arg(long, env = "PADDOCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for baselines and the audit store.
    #[arg(long, env = "PADDOCK_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Kernel ring buffer size in bytes (a power of two).
    #[arg(long, env = "PADDOCK_RING_BUFFER_BYTES")]
    pub ring_buffer_bytes: Option<u32>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "PADDOCK_LOG_JSON")]
    pub log_json: bool,
    /// Do not run: remove everything a stopped daemon left pinned (its programs detach,
    /// enforcement stops) and forget the investigations it left running (their processes
    /// are no longer tracked). Refused while a daemon uses the pin directory.
    #[arg(long)]
    pub cleanup: bool,
}

fn socket(cli_socket: Option<PathBuf>) -> PathBuf {
    cli_socket.unwrap_or_else(|| DEFAULT_SOCKET.into())
}

/// Logs to stderr: coloured only on a terminal (a log file or `kubectl logs` gets plain
/// text), JSON lines with `--log-json` (`PADDOCK_LOG_JSON=true`).
fn init_logging(json: bool) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PADDOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn daemon(args: DaemonArgs, socket: Option<PathBuf>) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(socket) = socket {
        config.daemon.socket = socket;
    }
    if let Some(dir) = args.state_dir {
        config.daemon.state_dir = dir;
    }
    if let Some(bytes) = args.ring_buffer_bytes {
        config.kernel.ring_buffer_bytes = bytes;
    }
    config.validate(std::path::Path::new("command line"))?;
    if args.cleanup {
        return crate::daemon::cleanup(&config);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(crate::daemon::run(config))
}

/// Parse the command line and run; returns the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Daemon(args) => daemon(args, cli.socket).map(|()| 0),
        Command::Run(args) => return run::main(args, &socket(cli.socket)),
        Command::Events(args) => events::main(args, &socket(cli.socket)),
        Command::Status(args) => status::main(args, &socket(cli.socket)),
        Command::Phase(command) => baseline::phase_main(command, &socket(cli.socket)),
        Command::Baseline(command) => baseline::baseline_main(command, &socket(cli.socket)),
        Command::Audit(args) => audit::main(args, &socket(cli.socket)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("paddock: {e:#}");
            1
        }
    }
}
