//! What verdicts do in the cluster: a Warning Event on the Job (`PaddockDeviation`) for a
//! flagged deviation; for a kill, the Job deleted (propagation Background, so its
//! controller does not start it again) and a `PaddockKill` Event. The daemon has already
//! killed the processes; this only makes the cluster agree.
//!
//! A hub sink turns events into commands without waiting; one worker carries them out,
//! with a rate limit per (object, reason) and retries with backoff on its own bounded
//! queue. Nothing here can slow the event path.
use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::{batch::v1::Job, core::v1::Event as KubeEvent};
use kube::api::{Api, DeleteParams, PostParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    directory::{Directory, PodRecord},
    notice::{self, Notice, REASON_BASELINE_CAPPED, REASON_DEVIATION, REASON_KILL, Target},
    pods::JobRef,
    ratelimit::{RateLimiter, WINDOW},
};
use crate::{
    events::{Event, EventKind},
    outcome::Outcome,
    sinks::alerts::ReceiverStats,
};

/// Commands waiting for the worker.
const QUEUE: usize = 1024;
/// Failed calls waiting for their retry.
const RETRY_QUEUE: usize = 256;
const MAX_ATTEMPTS: u32 = 6;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Notice(Notice),
    /// Delete the Job (Background propagation).
    DeleteJob(JobRef),
}

/// Where the daemon's parts hand Kubernetes actions over.
#[derive(Clone)]
pub struct Actions {
    queue: mpsc::Sender<Command>,
    pub stats: Arc<ReceiverStats>,
}

impl Actions {
    /// Queue `command`; never waits. A full queue drops it, counted as a failure.
    pub fn submit(&self, command: Command) {
        if let Err(e) = self.queue.try_send(command) {
            self.stats.add_failed(1);
            tracing::warn!(command = ?e.into_inner(), "Kubernetes action queue full: dropped");
        }
    }
}

/// The commands a hub event asks for, for pod-backed investigations.
pub fn commands(event: &Event, directory: &Directory, delete_jobs: bool) -> Vec<Command> {
    if let EventKind::BaselineCapped { set, cap, subject } = &event.kind {
        return capped(event, directory, set, *cap, subject);
    }
    let EventKind::Verdict { deviation, subject, reason, mode, outcome, .. } = &event.kind else {
        return Vec::new();
    };
    let killed = *outcome == Outcome::Killed;
    let mut out = Vec::new();
    let mut jobs = HashSet::new();
    for pod in directory.pods(&event.investigation) {
        let target = target(&pod);
        if !jobs.insert(target.uid.clone()) {
            continue; // parallel pods of one Job: one Event for the Job
        }
        let what = format!(
            "investigation {} ({} phase, {mode} mode) strayed from its baseline: {deviation} {subject}: {reason}; pod {}/{}",
            event.investigation, event.phase, pod.namespace, pod.name
        );
        if killed {
            let deleted = match (&pod.job, delete_jobs) {
                (Some(job), true) => {
                    out.push(Command::DeleteJob(job.clone()));
                    "; its processes were killed and the Job deleted"
                }
                _ => "; its processes were killed",
            };
            out.push(Command::Notice(Notice {
                target,
                reason: REASON_KILL,
                message: format!("paddock killed {what}{deleted}"),
            }));
        } else {
            out.push(Command::Notice(Notice { target, reason: REASON_DEVIATION, message: what }));
        }
    }
    out
}

/// A baseline set at its cap while the investigation's phase learns: a Warning Event on
/// each of its Jobs (or pods), so whoever runs them knows their behaviour was not all
/// learned.
fn capped(
    event: &Event,
    directory: &Directory,
    set: &str,
    cap: u64,
    subject: &str,
) -> Vec<Command> {
    let mut out = Vec::new();
    let mut targets = HashSet::new();
    for pod in directory.pods(&event.investigation) {
        let target = target(&pod);
        if !targets.insert(target.uid.clone()) {
            continue;
        }
        let message = format!(
            "paddock did not learn all of investigation {} (pod {}/{}): the {} phase's baseline \
             set {set} is at its cap of {cap} ([baseline] {set} in paddock.toml), so {subject} \
             and anything else new there was not learned; raise the cap or review the baseline \
             before the phase flags or enforces",
            event.investigation, pod.namespace, pod.name, event.phase
        );
        out.push(Command::Notice(Notice { target, reason: REASON_BASELINE_CAPPED, message }));
    }
    out
}

/// The Job of the pod, or the pod itself when it has no Job.
fn target(pod: &PodRecord) -> Target {
    match &pod.job {
        Some(job) => Target::job(job),
        None => Target::pod(&pod.namespace, &pod.name, &pod.uid),
    }
}

/// Start the worker; the returned handle queues commands for it.
pub fn start(
    client: kube::Client,
    node: String,
    shutdown: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Actions {
    let (queue, rx) = mpsc::channel(QUEUE);
    let stats = Arc::new(ReceiverStats::new("kubernetes", "kubernetes"));
    let worker = Worker {
        client,
        node,
        stats: stats.clone(),
        limiter: RateLimiter::new(WINDOW),
        retries: VecDeque::new(),
        deleted: HashSet::new(),
    };
    tasks.spawn(worker.run(rx, shutdown));
    Actions { queue, stats }
}

/// The hub sink: verdicts of pod-backed investigations become commands.
pub async fn sink(
    mut events: mpsc::Receiver<Arc<Event>>,
    directory: Arc<Directory>,
    actions: Actions,
    delete_jobs: bool,
) {
    while let Some(event) = events.recv().await {
        for command in commands(&event, &directory, delete_jobs) {
            actions.submit(command);
        }
    }
}

struct Retry {
    due: Instant,
    attempt: u32,
    command: Command,
    count: u32,
}

struct Worker {
    client: kube::Client,
    node: String,
    stats: Arc<ReceiverStats>,
    limiter: RateLimiter<(String, &'static str), Notice>,
    retries: VecDeque<Retry>,
    /// Jobs already deleted (a kill often comes with several verdicts).
    deleted: HashSet<String>,
}

#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl CallError {
    /// Whether trying again may help: refusals (4xx other than conflict and throttling)
    /// will not.
    fn retryable(&self) -> bool {
        match self {
            CallError::Api(kube::Error::Api(status)) => {
                !(400..500).contains(&status.code) || matches!(status.code, 409 | 429)
            }
            _ => true,
        }
    }
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(command) => self.take(command).await,
                    None => return,
                },
                _ = tick.tick() => self.on_tick().await,
                () = shutdown.cancelled() => {
                    let left = self.retries.len() + rx.len();
                    if left > 0 {
                        self.stats.add_failed(left);
                        tracing::warn!(left, "Kubernetes actions not done at shutdown");
                    }
                    return;
                }
            }
        }
    }

    async fn take(&mut self, command: Command) {
        match command {
            Command::Notice(notice) => {
                let key = (notice.target.uid.clone() + &notice.target.name, notice.reason);
                if let Some((notice, count)) = self.limiter.admit(key, notice, Instant::now()) {
                    self.attempt(Command::Notice(notice), count, 1).await;
                }
            }
            Command::DeleteJob(job) => {
                if self.deleted.len() > 4096 {
                    self.deleted.clear();
                }
                if self.deleted.insert(job.uid.clone()) {
                    self.attempt(Command::DeleteJob(job), 1, 1).await;
                }
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        for (notice, count) in self.limiter.expired(now) {
            self.attempt(Command::Notice(notice), count, 1).await;
        }
        let due: Vec<Retry> = {
            let (due, later): (VecDeque<Retry>, VecDeque<Retry>) =
                std::mem::take(&mut self.retries).into_iter().partition(|r| r.due <= now);
            self.retries = later;
            due.into()
        };
        for retry in due {
            self.stats.add_retry();
            self.attempt(retry.command, retry.count, retry.attempt).await;
        }
    }

    async fn call(&self, command: &Command, count: u32) -> Result<(), CallError> {
        let work = async {
            match command {
                Command::Notice(n) => {
                    let api: Api<KubeEvent> =
                        Api::namespaced(self.client.clone(), &n.target.namespace);
                    api.create(&PostParams::default(), &notice::event(n, &self.node, count))
                        .await
                        .map(drop)
                }
                Command::DeleteJob(job) => {
                    let api: Api<Job> = Api::namespaced(self.client.clone(), &job.namespace);
                    match api.delete(&job.name, &DeleteParams::background()).await {
                        Ok(_) => Ok(()),
                        // Gone already: what we wanted.
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, work).await {
            Ok(result) => result.map_err(CallError::from),
            Err(_) => Err(CallError::Timeout(CALL_TIMEOUT)),
        }
    }

    async fn attempt(&mut self, command: Command, count: u32, attempt: u32) {
        match self.call(&command, count).await {
            Ok(()) => {
                self.stats.add_delivered(1);
                tracing::info!(?command, "Kubernetes action done");
            }
            Err(e)
                if e.retryable() && attempt < MAX_ATTEMPTS && self.retries.len() < RETRY_QUEUE =>
            {
                let backoff = Duration::from_millis(500 << attempt.min(6));
                tracing::warn!(?command, error = %e, attempt, retry_in = ?backoff, "Kubernetes action failed; will retry");
                self.retries.push_back(Retry {
                    due: Instant::now() + backoff,
                    attempt: attempt + 1,
                    command,
                    count,
                });
            }
            Err(e) => {
                self.stats.add_failed(1);
                tracing::error!(?command, error = %e, attempt, "Kubernetes action failed; given up");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{DeviationKind, Mode},
        identity::Phase,
    };

    fn verdict(outcome: &str) -> Event {
        Event {
            time: chrono::Utc::now(),
            investigation: "inv-7".parse().unwrap(),
            phase: Phase::ReadOnly,
            instance: 1,
            pid: 9,
            tid: None,
            ppid: 1,
            uid: 0,
            comm: "actor".into(),
            kind: EventKind::Verdict {
                deviation: DeviationKind::Exec,
                subject: "/bin/false".into(),
                reason: "not in the baseline".into(),
                mode: if outcome == "killed" { Mode::Enforce } else { Mode::Flag },
                outcome: outcome.parse().unwrap(),
                baseline_revision: 3,
                action_time: chrono::Utc::now(),
            },
        }
    }

    fn directory(job: bool) -> Directory {
        let d = Directory::default();
        let job = job.then(|| JobRef {
            namespace: "agents".into(),
            name: "inv-7".into(),
            uid: "j-1".into(),
        });
        for (instance, name) in [(1, "inv-7-a"), (2, "inv-7-b")] {
            d.begin(
                "inv-7".parse().unwrap(),
                PodRecord {
                    instance,
                    phase: Phase::ReadOnly,
                    namespace: "agents".into(),
                    name: name.into(),
                    uid: format!("uid-{name}"),
                    job: job.clone(),
                    ended: None,
                },
            );
        }
        d
    }

    #[test]
    fn a_flag_verdict_is_one_event_on_the_job() {
        let cmds = commands(&verdict("flagged"), &directory(true), true);
        let [Command::Notice(n)] = cmds.as_slice() else { panic!("{cmds:?}") };
        assert_eq!(
            (n.target.kind, n.target.name.as_str(), n.reason),
            ("Job", "inv-7", REASON_DEVIATION)
        );
        assert!(
            n.message.contains("/bin/false")
                && n.message.contains("inv-7")
                && n.message.contains("read-only"),
            "{}",
            n.message
        );
    }

    #[test]
    fn a_kill_deletes_the_job_unless_told_not_to() {
        let cmds = commands(&verdict("killed"), &directory(true), true);
        assert!(matches!(&cmds[0], Command::DeleteJob(j) if j.name == "inv-7"), "{cmds:?}");
        assert!(
            matches!(&cmds[1], Command::Notice(n) if n.reason == REASON_KILL && n.message.contains("Job deleted"))
        );
        let cmds = commands(&verdict("killed"), &directory(true), false);
        assert!(
            matches!(cmds.as_slice(), [Command::Notice(n)] if n.reason == REASON_KILL),
            "{cmds:?}"
        );
    }

    #[test]
    fn refusals_are_not_retried_but_conflicts_throttling_and_outages_are() {
        let api = |code: u16| {
            CallError::Api(kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "y").with_code(code),
            )))
        };
        for code in [400, 403, 404, 422] {
            assert!(!api(code).retryable(), "{code}");
        }
        for code in [409, 429, 500, 503] {
            assert!(api(code).retryable(), "{code}");
        }
        assert!(CallError::Timeout(CALL_TIMEOUT).retryable());
    }

    #[test]
    fn pods_without_a_job_get_the_event_and_others_nothing() {
        let cmds = commands(&verdict("flagged"), &directory(false), true);
        assert_eq!(cmds.len(), 2, "one per pod");
        assert!(cmds.iter().all(|c| matches!(c, Command::Notice(n) if n.target.kind == "Pod")));
        assert!(
            commands(&verdict("flagged"), &Directory::default(), true).is_empty(),
            "a local run"
        );
        let mut started = verdict("flagged");
        started.kind =
            EventKind::Started { source: "kubernetes".into(), cgroup: "/x".into(), pod: None };
        assert!(commands(&started, &directory(true), true).is_empty());
    }

    #[test]
    fn a_capped_baseline_is_one_event_per_job() {
        let mut event = verdict("flagged");
        event.kind = EventKind::BaselineCapped {
            set: "egress".into(),
            cap: 2048,
            subject: "tcp 10.0.0.9 port 22".into(),
        };
        let cmds = commands(&event, &directory(true), true);
        let [Command::Notice(n)] = cmds.as_slice() else { panic!("{cmds:?}") };
        assert_eq!((n.target.kind, n.reason), ("Job", REASON_BASELINE_CAPPED));
        assert!(
            n.message.contains("egress is at its cap of 2048")
                && n.message.contains("tcp 10.0.0.9 port 22")
                && n.message.contains("read-only"),
            "{}",
            n.message
        );
        assert_eq!(commands(&event, &directory(false), true).len(), 2, "one per pod");
        assert!(commands(&event, &Directory::default(), true).is_empty(), "a local run");
    }
}
