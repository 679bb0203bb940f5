//! `paddock events [--follow] [--investigation ID] [--json]`.
use std::{io::Write as _, path::Path};

use super::client::Client;
use crate::{
    api::protocol::{Reply, Request},
    identity::InvestigationId,
};

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Keep printing new events as they happen.
    #[arg(long, short)]
    pub follow: bool,
    /// Only this investigation's events.
    #[arg(long)]
    pub investigation: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: EventsArgs, socket: &Path) -> anyhow::Result<i32> {
    if let Some(id) = &args.investigation {
        id.parse::<InvestigationId>()?;
    }
    let mut client = Client::connect(socket)?;
    client.send(&Request::Events { follow: args.follow, investigation: args.investigation })?;
    let stdout = std::io::stdout();
    while let Some(reply) = client.receive()? {
        let mut out = stdout.lock();
        let written = match reply {
            Reply::Event { event } if args.json => {
                writeln!(out, "{}", serde_json::to_string(&event)?)
            }
            Reply::Event { event } => writeln!(out, "{event}"),
            Reply::Lagged { missed } => {
                eprintln!("paddock: this reader fell behind and missed {missed} events");
                Ok(())
            }
            other => anyhow::bail!("unexpected reply from the daemon: {other:?}"),
        };
        if written.and_then(|()| out.flush()).is_err() {
            return Ok(0); // stdout closed (a pipe reader went away)
        }
    }
    Ok(0)
}
