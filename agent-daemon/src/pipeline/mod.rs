//! The event pipeline: kernel records to attributed events (`attribute`), each judged
//! against its phase's baseline (`judging`), published to the hub with any verdicts.
//! Lifecycle and operator messages arrive on their own channel and are always taken before
//! records, so a record never outruns its investigation's begin.
mod admin;
mod attribute;
mod cluster;
mod dns;
mod judging;
mod metrics;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use attribute::{Attribution, Clock};
use chrono::Utc;
use tokio::sync::mpsc;

use crate::{
    enforce::Enforce,
    events::{Action, EventKind},
    hub::Hub,
    judge::Judge,
    kernel::{SlotCounters, reader::FromKernel},
    lifecycle::{Investigation, Lifecycle},
    syscalls,
};

/// One investigation's records turned into events outside the pipeline, as the pipeline
/// does it (for `paddock-bench audit-query`).
pub struct Attributor(Attribution, Clock);

impl Attributor {
    pub fn new(info: Investigation) -> Attributor {
        Attributor(Attribution::new(info), Clock::new())
    }

    pub fn event(&mut self, record: crate::kernel::decode::Record) -> Option<crate::events::Event> {
        self.0.event(record, &mut self.1)
    }
}

#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Records whose slot held no investigation (or another instance of it).
    pub unattributed: AtomicU64,
    /// "First seen" records already seen (two CPUs raced in the kernel).
    pub duplicates: AtomicU64,
}

pub struct Pipeline {
    records: mpsc::Receiver<FromKernel>,
    lifecycle: mpsc::Receiver<Lifecycle>,
    hub: Arc<Hub>,
    stats: Arc<PipelineStats>,
    active: HashMap<u16, Attribution>,
    clock: Clock,
    judge: Judge,
    enforcer: Box<dyn Enforce>,
    /// The phases as last judged, for the metrics collector.
    summaries: Arc<std::sync::Mutex<Vec<crate::judge::PhaseSummary>>>,
}

fn total(counters: &SlotCounters) -> u64 {
    counters.syscalls.iter().map(|(_, n)| n).sum()
}

fn sight(counters: &SlotCounters) -> crate::judge::Sight {
    crate::judge::Sight {
        lost: counters.lost,
        throttled: counters.throttled,
        untracked: counters.refused,
    }
}

impl Pipeline {
    pub fn new(
        records: mpsc::Receiver<FromKernel>,
        lifecycle: mpsc::Receiver<Lifecycle>,
        hub: Arc<Hub>,
        stats: Arc<PipelineStats>,
        judge: Judge,
        enforcer: impl Enforce + 'static,
        summaries: Arc<std::sync::Mutex<Vec<crate::judge::PhaseSummary>>>,
    ) -> Pipeline {
        let pipeline = Pipeline {
            records,
            lifecycle,
            hub,
            stats,
            active: HashMap::new(),
            clock: Clock::new(),
            judge,
            enforcer: Box::new(enforcer),
            summaries,
        };
        pipeline.publish_summaries();
        pipeline
    }

    fn publish_summaries(&self) {
        *self.summaries.lock().unwrap_or_else(|e| e.into_inner()) = self.judge.summaries();
    }

    /// Run until both inputs are closed.
    pub async fn run(mut self) {
        loop {
            tokio::select! {
                biased;
                Some(message) = self.lifecycle.recv() => self.on_lifecycle(message),
                Some(message) = self.records.recv() => match message {
                    FromKernel::Record(record) => self.on_record(record),
                    FromKernel::Barrier(ack) => { let _ = ack.send(()); }
                },
                else => return,
            }
        }
    }

    fn on_lifecycle(&mut self, message: Lifecycle) {
        match message {
            Lifecycle::Begin(info) => {
                self.judge.begin_as(info.instance, info.phase, info.agent.clone());
                let (slot, doomed) = (info.slot, info.doomed);
                let (source, cgroup) = (info.source.to_owned(), info.cgroup.clone());
                let pod = info.pod.clone();
                let (kind, time) = if info.resumed {
                    (EventKind::Resumed { source, cgroup, pod, doomed }, Utc::now())
                } else {
                    (EventKind::Started { source, cgroup, pod }, info.started)
                };
                let attribution = Attribution::new(info);
                let event = attribution.lifecycle_event(time, kind);
                self.active.insert(slot, attribution);
                self.hub.publish(event);
            }
            Lifecycle::Unwatched { slot, instance } => {
                // Doomed while no daemon ran, and no record read since said why.
                if self.active.get(&slot).is_some_and(|a| a.info.instance == instance)
                    && self.judge.killed(instance).is_none()
                {
                    let observation = crate::baseline::Observation::Unwatched;
                    if let Some(verdict) = self.judge.observe(instance, &observation, Action::None)
                    {
                        let event = self.act(slot, verdict, None);
                        self.hub.publish(event);
                    }
                }
            }
            Lifecycle::Sample { slot, instance, counters, at, done } => {
                if self.active.get(&slot).is_some_and(|a| a.info.instance == instance) {
                    let mut verdicts = self.judge.sight(instance, sight(&counters));
                    verdicts.extend(self.judge.sample(
                        instance,
                        total(&counters),
                        counters.egress_bytes,
                        at,
                    ));
                    for verdict in verdicts {
                        let event = self.act(slot, verdict, None);
                        self.hub.publish(event);
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Lifecycle::End { slot, instance, counters, emptied_at, done } => {
                if self.active.get(&slot).is_some_and(|a| a.info.instance == instance) {
                    for verdict in self.judge.sight(instance, sight(&counters)) {
                        let event = self.act(slot, verdict, None);
                        self.hub.publish(event);
                    }
                    let killed = self.judge.killed(instance).map(str::to_owned);
                    let (verdict, outcome) = self.judge.end(
                        instance,
                        total(&counters),
                        counters.egress_bytes,
                        Instant::now(),
                    );
                    if let Some(verdict) = verdict {
                        let event = self.act(slot, verdict, None);
                        self.hub.publish(event);
                    }
                    let attribution = self.active.remove(&slot).expect("checked above");
                    let syscalls: BTreeMap<String, u64> = counters
                        .syscalls
                        .iter()
                        .map(|(nr, count)| (syscalls::count_name(*nr).into_owned(), *count))
                        .collect();
                    let kind = EventKind::Ended {
                        syscalls,
                        egress_bytes: counters.egress_bytes,
                        egress_packets: counters.egress_packets,
                        events: attribution.events + 1,
                        outcome,
                        reason: killed,
                        emptied_at,
                        lost_records: counters.lost,
                        throttled_records: counters.throttled,
                        untracked: counters.refused,
                        escapes: counters.escapes,
                    };
                    self.hub.publish(attribution.lifecycle_event(Utc::now(), kind));
                    self.publish_summaries();
                }
                let _ = done.send(());
            }
            Lifecycle::Tamper { slot, instance, what } => {
                if self.active.get(&slot).is_some_and(|a| a.info.instance == instance) {
                    let observation = crate::baseline::Observation::Control(what);
                    let verdict = self.judge.observe(instance, &observation, Action::None);
                    if let Some(verdict) = verdict {
                        let event = self.act(slot, verdict, None);
                        self.hub.publish(event);
                    }
                }
            }
            Lifecycle::Admin(request, reply) => {
                let _ = reply.send(self.admin(request));
                self.publish_summaries();
            }
            Lifecycle::Cluster(request) => {
                self.cluster(request);
                self.publish_summaries();
            }
        }
    }

    fn on_record(&mut self, record: crate::kernel::decode::Record) {
        let slot = record.header.slot;
        let Some(attribution) =
            self.active.get_mut(&slot).filter(|a| a.info.instance == record.header.instance)
        else {
            self.stats.unattributed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(event) = attribution.event(record, &mut self.clock) else {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let verdicts = self.judge_event(slot, &event);
        self.hub.publish(event);
        for verdict in verdicts {
            self.hub.publish(verdict);
        }
    }
}
