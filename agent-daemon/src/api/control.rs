//! The unix control socket: one task per connection.
use std::sync::Arc;

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::broadcast::error::RecvError,
};
use tokio_util::sync::CancellationToken;

use super::{
    peer::{self, Peer},
    protocol::{Reply, Request},
};
use crate::{daemon::State, events::Event, identity::InvestigationId};

pub async fn serve(listener: UnixListener, state: Arc<State>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (state, shutdown) = (state.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, state, shutdown).await {
                            tracing::debug!(error = %e, "control connection ended");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
            },
            () = shutdown.cancelled() => return,
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(out: &mut W, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await
}

fn error(message: impl ToString) -> Reply {
    Reply::Error { message: message.to_string() }
}

/// Log, count and, for a process of an investigation, judge a refused request.
async fn refused(state: &State, peer: &Peer, refusal: &peer::Refusal) {
    tracing::warn!(
        pid = peer.pid,
        uid = peer.uid,
        investigation = peer.investigation.as_ref().map(|a| a.id.to_string()).unwrap_or_default(),
        request = refusal.request,
        reason = %refusal.reason,
        "control request refused"
    );
    state.refusals.count(refusal.request);
    if let Some(own) = &peer.investigation {
        state
            .tracker
            .tampered(own, format!("{} request: {}", refusal.request, refusal.reason))
            .await;
    }
}

async fn handle(
    stream: UnixStream,
    state: Arc<State>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let peer = Peer::identify(&stream.peer_cred()?, &state.tracker);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let request: Request = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(e) => {
                send(&mut write, &error(format!("bad request: {e}"))).await?;
                continue;
            }
        };
        if let Err(refusal) = peer::check(&peer, &request, state.admin_gid) {
            refused(&state, &peer, &refusal).await;
            send(&mut write, &error(format!("refused: {}", refusal.reason))).await?;
            continue;
        }
        match request {
            Request::Status => {
                let mut status = state.status();
                // A process of an investigation sees only its own.
                if let Some(own) = &peer.investigation {
                    status.investigations.retain(|i| i.instance == own.instance);
                }
                send(&mut write, &Reply::Status(Box::new(status))).await?
            }
            Request::Admin { request } => match state.tracker.admin(request).await {
                Ok(answer) => send(&mut write, &Reply::Admin { answer }).await?,
                Err(message) => send(&mut write, &Reply::Error { message }).await?,
            },
            Request::Exited { .. } => {
                send(&mut write, &error("`exited` outside a run session")).await?
            }
            Request::Run { investigation_id, phase } => {
                let session =
                    match state.local.start(&state.tracker, &investigation_id, &phase).await {
                        Ok(session) => session,
                        Err(e) => return send(&mut write, &error(e)).await,
                    };
                let ready = Reply::Ready {
                    cgroup: session.active.cgroup.clone(),
                    instance: session.active.instance,
                    pids_cgroup: session.pids_cgroup.clone(),
                };
                send(&mut write, &ready).await?;
                while let Some(line) = lines.next_line().await? {
                    match serde_json::from_str(&line) {
                        Ok(Request::Exited { status }) => {
                            tracing::debug!(investigation = %session.active.id, status, "command exited");
                            // Every record and counter up to now judged: a kill (by the
                            // kernel too, failing closed) is known by now.
                            state.tracker.judge_now(&session.active).await;
                            let killed = state.outcomes.killed(session.active.instance);
                            send(&mut write, &Reply::Outcome { killed }).await?;
                        }
                        _ => {
                            send(&mut write, &error("only `exited` is understood in a run session"))
                                .await?
                        }
                    }
                }
                return Ok(()); // dropping the session tells the lifecycle the client is gone
            }
            Request::Events { follow, investigation } => {
                let filter = match investigation.map(|i| i.parse::<InvestigationId>()).transpose() {
                    Ok(filter) => filter,
                    Err(e) => return send(&mut write, &error(e)).await,
                };
                let mut read = lines.into_inner().into_inner();
                return stream_events(&state, &mut read, &mut write, follow, filter, shutdown)
                    .await;
            }
        }
    }
    Ok(())
}

async fn stream_events(
    state: &State,
    read: &mut tokio::net::unix::OwnedReadHalf,
    write: &mut tokio::net::unix::OwnedWriteHalf,
    follow: bool,
    filter: Option<InvestigationId>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let wanted = |e: &Event| filter.as_ref().is_none_or(|id| *id == e.investigation);
    let reply = |e: &Event| Reply::Event { event: Box::new(e.clone()) };
    if !follow {
        for event in state.hub.recent().iter().filter(|e| wanted(e)) {
            send(write, &reply(event)).await?;
        }
        return Ok(());
    }
    let (recent, mut live) = state.hub.recent_then_follow();
    for event in recent.iter().filter(|e| wanted(e)) {
        send(write, &reply(event)).await?;
    }
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) if wanted(&event) => send(write, &reply(&event)).await?,
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => send(write, &Reply::Lagged { missed }).await?,
                Err(RecvError::Closed) => return Ok(()),
            },
            n = read.read(&mut scratch) => if n.unwrap_or(0) == 0 { return Ok(()) },
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}
