//! Where attributed events go out: a short in-memory history, live followers (a broadcast;
//! a follower that falls behind is told how many it missed), and named sinks (bounded
//! queues; what a full queue cannot take is counted, never waited for).
use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::{metrics::MetricType, registry::Registry};
use tokio::sync::{broadcast, mpsc};

use crate::{events::Event, scrape};

struct Sink {
    name: &'static str,
    queue: mpsc::Sender<Arc<Event>>,
    dropped: AtomicU64,
}

/// Events a live follower may fall behind by before it is told how many it missed (they
/// stay in memory that long, shared with the history and the sinks).
pub const FOLLOWER_BACKLOG: usize = 16 * 1024;

pub struct Hub {
    recent: Mutex<VecDeque<Arc<Event>>>,
    capacity: usize,
    live: broadcast::Sender<Arc<Event>>,
    sinks: Mutex<Vec<Arc<Sink>>>,
    pub published: AtomicU64,
}

impl Hub {
    pub fn new(recent_capacity: usize) -> Arc<Hub> {
        let (live, _) = broadcast::channel(FOLLOWER_BACKLOG);
        Arc::new(Hub {
            recent: Mutex::new(VecDeque::with_capacity(recent_capacity.min(1 << 16))),
            capacity: recent_capacity,
            live,
            sinks: Mutex::new(Vec::new()),
            published: AtomicU64::new(0),
        })
    }

    /// A bounded queue fed with every event from now on.
    pub fn add_sink(&self, name: &'static str, depth: usize) -> mpsc::Receiver<Arc<Event>> {
        let (queue, rx) = mpsc::channel(depth);
        let sink = Arc::new(Sink { name, queue, dropped: AtomicU64::new(0) });
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).push(sink);
        rx
    }

    /// The recent history, oldest first.
    pub fn recent(&self) -> Vec<Arc<Event>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// Subscribe and take the history in one step, so nothing falls between the two.
    pub fn recent_then_follow(&self) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.live.subscribe();
        (recent.iter().cloned().collect(), live)
    }

    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == self.capacity {
                recent.pop_front();
            }
            recent.push_back(event.clone());
            // Sent under the history lock: `recent_then_follow` sees each event once.
            let _ = self.live.send(event.clone());
        }
        for sink in self.sinks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if sink.queue.try_send(event.clone()).is_err() {
                sink.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// (sink name, events it could not take).
    pub fn sink_drops(&self) -> Vec<(&'static str, u64)> {
        self.sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| (s.name, s.dropped.load(Ordering::Relaxed)))
            .collect()
    }

    /// The hub's families: each sink's drops.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let hub = self.clone();
        scrape::register(registry, "hub", move |e| {
            let mut family = scrape::family(
                e,
                "sink_dropped_events",
                "Events a sink's queue could not take, by sink",
                MetricType::Counter,
            )?;
            for (sink, dropped) in hub.sink_drops() {
                scrape::add_counter(&mut family, &[("sink", sink)], dropped)?;
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn event(n: u32) -> Event {
        Event {
            time: chrono::Utc::now(),
            investigation: "inv-1".parse().unwrap(),
            phase: crate::identity::Phase::Shadow,
            instance: 1,
            pid: n,
            tid: None,
            ppid: 1,
            uid: 0,
            comm: "flood".into(),
            kind: EventKind::Fork { child_pid: n + 1 },
        }
    }

    #[test]
    fn history_and_sink_queues_are_bounded_and_what_they_drop_is_counted() {
        let hub = Hub::new(100);
        let mut queue = hub.add_sink("slow", 10);
        let (_, mut live) = hub.recent_then_follow();
        let n = FOLLOWER_BACKLOG as u32 + 1000;
        for i in 0..n {
            hub.publish(event(i));
        }
        let recent = hub.recent();
        assert_eq!(recent.len(), 100, "the history keeps the newest");
        assert_eq!((recent[0].pid, recent[99].pid), (n - 100, n - 1));
        assert_eq!(hub.sink_drops(), [("slow", n as u64 - 10)]);
        let mut queued = 0;
        while queue.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 10);
        // A follower that fell behind is told how many it missed, not handed them all.
        assert!(matches!(live.try_recv(), Err(broadcast::error::TryRecvError::Lagged(_))));
        assert_eq!(hub.published.load(Ordering::Relaxed), n as u64);
    }
}
