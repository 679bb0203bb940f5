//! Who is at the other end of the control socket, and what it may ask.
//!
//! Every connection is identified by its peer's credentials (`SO_PEERCRED`: the process that
//! connected, its uid and gid) and by what paddock itself knows of that process: whether the
//! kernel tracks it for an investigation (wherever it is), or it sits in one's cgroup. A
//! process of any investigation may never change paddock: it is refused every admin
//! request, `run` (no investigation starts another), and the events of any investigation
//! but its own. Admin requests need root or the socket's group.
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{metrics::MetricType, registry::Registry};

use super::protocol::Request;
use crate::{
    scrape,
    workloads::{Active, Tracker},
};

/// The peer of one control connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub pid: u32,
    pub uid: u32,
    /// Its primary and supplementary groups.
    pub groups: Vec<u32>,
    /// The investigation it belongs to, if any.
    pub investigation: Option<Active>,
}

impl Peer {
    pub fn identify(cred: &tokio::net::unix::UCred, tracker: &Tracker) -> Peer {
        let pid = cred.pid().unwrap_or(0).max(0) as u32;
        let mut groups = vec![cred.gid()];
        groups.extend(supplementary_groups(pid));
        let investigation = if pid == 0 { None } else { tracker.investigation_of(pid) };
        Peer { pid, uid: cred.uid(), groups, investigation }
    }

    /// Root, or a member of `admin_gid`.
    pub fn is_admin(&self, admin_gid: Option<u32>) -> bool {
        self.uid == 0 || admin_gid.is_some_and(|g| self.groups.contains(&g))
    }
}

/// The `Groups:` line of `/proc/<pid>/status`.
fn supplementary_groups(pid: u32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// A request refused, and why (for the peer, the log and the verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub request: &'static str,
    pub reason: String,
}

/// The name of a request, for logs and the refusal counter.
pub fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Run { .. } => "run",
        Request::Exited { .. } => "exited",
        Request::Rejoin { .. } => "rejoin",
        Request::Events { .. } => "events",
        Request::Status => "status",
        Request::Admin { .. } => "admin",
    }
}

/// Whether `peer` may make `request`. Status is allowed to everyone who can connect (a
/// process of an investigation is shown only its own).
pub fn check(peer: &Peer, request: &Request, admin_gid: Option<u32>) -> Result<(), Refusal> {
    let refuse = |reason: String| Err(Refusal { request: request_name(request), reason });
    match (request, &peer.investigation) {
        (Request::Run { .. }, Some(own)) => {
            refuse(format!("a process of investigation {} cannot start an investigation", own.id))
        }
        (Request::Rejoin { .. }, Some(own)) => refuse(format!(
            "a process of investigation {} cannot speak for a `paddock run` client",
            own.id
        )),
        (Request::Admin { .. }, Some(own)) => refuse(format!(
            "a process of investigation {} cannot change paddock's phases or baselines",
            own.id
        )),
        (Request::Admin { .. }, None) if !peer.is_admin(admin_gid) => {
            refuse(format!("uid {} is neither root nor in the control socket's group", peer.uid))
        }
        (Request::Events { investigation, .. }, Some(own))
            if investigation.as_deref() != Some(own.id.as_str()) =>
        {
            refuse(format!(
                "a process of investigation {} may follow only its own events (--investigation {})",
                own.id, own.id
            ))
        }
        _ => Ok(()),
    }
}

/// Requests refused, by request.
#[derive(Debug, Default)]
pub struct Refusals {
    run: AtomicU64,
    admin: AtomicU64,
    events: AtomicU64,
    other: AtomicU64,
}

impl Refusals {
    pub fn count(&self, request: &'static str) {
        let counter = match request {
            "run" => &self.run,
            "admin" => &self.admin,
            "events" => &self.events,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (request, refusals) for the metrics.
    pub fn snapshot(&self) -> [(&'static str, u64); 4] {
        [
            ("run", self.run.load(Ordering::Relaxed)),
            ("admin", self.admin.load(Ordering::Relaxed)),
            ("events", self.events.load(Ordering::Relaxed)),
            ("other", self.other.load(Ordering::Relaxed)),
        ]
    }

    /// The control socket's family: refusals by request.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let refusals = self.clone();
        scrape::register(registry, "control", move |e| {
            let mut family = scrape::family(
                e,
                "control_refusals",
                "Control socket requests refused, by request (a process of an investigation \
                 asking to change paddock, or a caller that is neither root nor in the group)",
                MetricType::Counter,
            )?;
            for (request, n) in refusals.snapshot() {
                scrape::add_counter(&mut family, &[("request", request)], n)?;
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{identity::Phase, lifecycle::admin::AdminRequest, workloads::Active};

    fn active(id: &str) -> Active {
        Active {
            id: id.parse().unwrap(),
            phase: Phase::ReadOnly,
            slot: 0,
            instance: 7,
            cgroup: "/sys/fs/cgroup/paddock/x".into(),
            source: "local",
            started: chrono::Utc::now(),
            pod: None,
            client_uid: None,
            resumed: false,
        }
    }

    fn peer(uid: u32, groups: Vec<u32>, investigation: Option<Active>) -> Peer {
        Peer { pid: 42, uid, groups, investigation }
    }

    #[test]
    fn a_process_of_an_investigation_changes_nothing_and_sees_only_its_own() {
        let inside = peer(0, vec![0], Some(active("inv-1")));
        let admin = Request::Admin { request: AdminRequest::List };
        let run = Request::Run { investigation_id: "x".into(), phase: "shadow".into() };
        let others = Request::Events { follow: true, investigation: Some("inv-2".into()) };
        let all = Request::Events { follow: true, investigation: None };
        let own = Request::Events { follow: true, investigation: Some("inv-1".into()) };
        for request in [admin, run, others, all] {
            let refusal = check(&inside, &request, Some(1000)).unwrap_err();
            assert!(refusal.reason.contains("inv-1"), "{refusal:?}");
        }
        assert_eq!(check(&inside, &own, None), Ok(()));
        assert_eq!(check(&inside, &Request::Status, None), Ok(()));
    }

    #[test]
    fn admin_requests_need_root_or_the_group() {
        let admin = Request::Admin { request: AdminRequest::List };
        assert_eq!(check(&peer(0, vec![0], None), &admin, None), Ok(()));
        assert_eq!(check(&peer(1000, vec![1000, 1001], None), &admin, Some(1001)), Ok(()));
        let refused = check(&peer(1000, vec![1000], None), &admin, Some(1001)).unwrap_err();
        assert_eq!(refused.request, "admin");
        assert!(check(&peer(1000, vec![1000], None), &admin, None).is_err());
        let run = Request::Run { investigation_id: "x".into(), phase: "shadow".into() };
        assert_eq!(check(&peer(1000, vec![1000], None), &run, None), Ok(()));
    }
}
