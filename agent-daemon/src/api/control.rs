//! The unix control socket: one task per connection.
use std::sync::Arc;

use tokio::{
    io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::broadcast::error::RecvError,
};
use tokio_util::sync::CancellationToken;

use super::state::State;
use super::{
    lines::{self, LineError},
    peer::{self, Peer},
    protocol::{Reply, Request},
};
use crate::{events::Event, identity::InvestigationId};

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
    let mut input = BufReader::new(read);
    let limit = if peer.investigation.is_none() && peer.is_admin(state.admin_gid) {
        lines::MAX_ADMIN_LINE
    } else {
        lines::MAX_LINE
    };
    loop {
        let line = match lines::next_line(&mut input, limit).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(LineError::Io(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(pid = peer.pid, uid = peer.uid, error = %e, "control connection dropped");
                return send(&mut write, &error(format!("bad request: {e}"))).await;
            }
        };
        let request: Request = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(e) => {
                send(&mut write, &error(format!("bad request: {e}"))).await?;
                continue;
            }
        };
        if shutdown.is_cancelled() {
            // A stopping daemon answers nothing more: what it would say may already be out
            // of date (records it will not read), and a client asks the next daemon.
            return Ok(());
        }
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
            Request::Admin { request } => match state.admin(request).await {
                Ok(answer) => send(&mut write, &Reply::Admin { answer }).await?,
                Err(e) => send(&mut write, &error(e)).await?,
            },
            Request::Exited { .. } => {
                send(&mut write, &error("`exited` outside a run session")).await?
            }
            Request::Rejoin { investigation_id, instance, status } => {
                let reply = rejoin(&state, &peer, &investigation_id, instance, status).await;
                if shutdown.is_cancelled() {
                    return Ok(()); // judged by a daemon that stopped reading: ask the next
                }
                send(&mut write, &reply).await?
            }
            Request::Run { investigation_id, phase } => {
                let session = match state
                    .local
                    .start(&state.tracker, &investigation_id, &phase, peer.uid)
                    .await
                {
                    Ok(session) => session,
                    Err(e) => return send(&mut write, &error(e)).await,
                };
                let ready = Reply::Ready {
                    cgroup: session.active.cgroup.clone(),
                    instance: session.active.instance,
                    pids_cgroup: session.pids_cgroup.clone(),
                };
                send(&mut write, &ready).await?;
                loop {
                    // A stopping daemon hangs up: the client rejoins the next one.
                    let line = tokio::select! {
                        line = lines::next_line(&mut input, lines::MAX_LINE) => line,
                        () = shutdown.cancelled() => Ok(None),
                    };
                    let line = match line {
                        Ok(Some(line)) => line,
                        Ok(None) => break,
                        Err(LineError::Io(e)) => return Err(e),
                        Err(e) => {
                            return send(&mut write, &error(format!("bad request: {e}"))).await;
                        }
                    };
                    match serde_json::from_str(&line) {
                        Ok(Request::Exited { status }) => {
                            tracing::debug!(investigation = %session.active.id, status, "command exited");
                            // Every record and counter up to now judged: a kill (by the
                            // kernel too, failing closed) is known by now.
                            state.tracker.judge_now(&session.active).await;
                            if shutdown.is_cancelled() {
                                // Its last records may be unread: the client rejoins the
                                // next daemon, which reads them.
                                return Ok(());
                            }
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
                let mut read = input.into_inner();
                return stream_events(&state, &mut read, &mut write, follow, filter, shutdown)
                    .await;
            }
        }
    }
    Ok(())
}

/// A `paddock run` client back after its daemon went away: how its investigation went, as
/// `exited` would have said (once every record up to now is judged), if this daemon ran or
/// adopted it. Only root or the client that started it may ask.
async fn rejoin(state: &State, peer: &Peer, id: &str, instance: u32, status: i32) -> Reply {
    let Ok(id) = id.parse::<InvestigationId>() else {
        return error(format!("bad investigation id {id:?}"));
    };
    let running = state.tracker.active().into_iter().find(|a| a.instance == instance && a.id == id);
    let owner = match &running {
        Some(active) => Some(active.client_uid),
        None => state.tracker.ended_lately(instance, &id),
    };
    let Some(owner) = owner else {
        // Ended under a daemon that stopped before its client heard: the audit store says.
        return match state.stored_outcome(instance, &id).await {
            Some(stored) => {
                tracing::info!(investigation = %id, instance, outcome = stored.outcome.as_str(),
                    "a paddock run client rejoined an investigation that ended under an earlier daemon");
                Reply::Outcome { killed: stored.killed }
            }
            None => error(format!(
                "investigation {id} (instance {instance}) is not known to this daemon: it was not \
                 adopted (its saved state was cleared) and the audit store has no ended run of it"
            )),
        };
    };
    if peer.uid != 0 && owner != Some(peer.uid) {
        let refusal = peer::Refusal {
            request: "rejoin",
            reason: format!("uid {} did not start investigation {id}", peer.uid),
        };
        refused(state, peer, &refusal).await;
        return error(format!("refused: {}", refusal.reason));
    }
    tracing::info!(investigation = %id, instance, status, "a paddock run client rejoined");
    if let Some(active) = running {
        state.tracker.judge_now(&active).await;
    }
    Reply::Outcome { killed: state.outcomes.killed(instance) }
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
