//! `paddock status`.
use std::path::Path;

use super::client::Client;
use crate::api::protocol::{Reply, Request, StatusReport};

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: StatusArgs, socket: &Path) -> anyhow::Result<i32> {
    let mut client = Client::connect(socket)?;
    client.send(&Request::Status)?;
    let Reply::Status(report) = client.expect_reply()? else {
        anyhow::bail!("the daemon answered something other than a status report");
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(0)
}

fn render(r: &StatusReport) -> String {
    let mut out = format!(
        "paddock {} (pid {}), up since {}\n",
        r.version,
        r.pid,
        r.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    out += &format!("metrics and query API: http://{}\n", r.http);
    out += &format!("probes attached: {}\n", r.probes.len());
    for probe in &r.probes {
        out += &format!("  {probe}\n");
    }
    out += &format!(
        "investigations tracked: {} ({} cgroups)\n",
        r.investigations.len(),
        r.tracked_cgroups
    );
    for i in &r.investigations {
        out += &format!(
            "  {} [{}] {} syscalls ({} distinct), {} egress bytes, cgroup {}\n",
            i.id,
            i.phase,
            i.syscalls,
            i.distinct_syscalls,
            i.egress_bytes,
            i.cgroup.display()
        );
        if let Some(pod) = &i.pod {
            out += &format!("    pod {pod}, job {}\n", i.job.as_deref().unwrap_or("(none)"));
        }
    }
    out += &format!(
        "events: {} records read, {} events published, {} malformed, {} unattributed\n",
        r.records_read, r.events_published, r.malformed_records, r.unattributed_records
    );
    out += &format!("lost in the kernel (ring buffer full): {}", r.lost_total);
    if !r.lost_records.is_empty() {
        let parts: Vec<String> = r.lost_records.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out += &format!(" ({})", parts.join(", "));
    }
    out += "\n";
    for (sink, dropped) in &r.sink_drops {
        out += &format!("sink {sink}: {dropped} events dropped\n");
    }
    out
}
