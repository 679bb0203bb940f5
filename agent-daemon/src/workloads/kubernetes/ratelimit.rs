//! At most one Event per (object, reason) a minute; the ones held back are counted and
//! reported with the next one, or on their own when the minute is over.
use std::{
    collections::HashMap,
    hash::Hash,
    time::{Duration, Instant},
};

pub const WINDOW: Duration = Duration::from_secs(60);

/// Windows kept open at most. Past it (more distinct objects in a minute than that), closed
/// windows are forgotten first; a key that still finds no room is sent at once, unlimited:
/// the worker's bounded queue and one call at a time then hold the pace.
pub const MAX_OPEN: usize = 4096;

struct Window<T> {
    opened: Instant,
    /// Held back since the window opened, and the latest of them.
    held: u32,
    latest: Option<T>,
}

pub struct RateLimiter<K, T> {
    window: Duration,
    open: HashMap<K, Window<T>>,
}

impl<K: Eq + Hash + Clone, T> RateLimiter<K, T> {
    pub fn new(window: Duration) -> Self {
        RateLimiter { window, open: HashMap::new() }
    }

    /// `Some((item, count))` to send now (`count` includes held-back ones), or `None` when
    /// the item is held back.
    pub fn admit(&mut self, key: K, item: T, now: Instant) -> Option<(T, u32)> {
        match self.open.get_mut(&key) {
            Some(w) if now.duration_since(w.opened) < self.window => {
                w.held += 1;
                w.latest = Some(item);
                None
            }
            Some(w) => {
                let count = 1 + w.held;
                *w = Window { opened: now, held: 0, latest: None };
                Some((item, count))
            }
            None => {
                if self.open.len() >= MAX_OPEN {
                    let window = self.window;
                    self.open
                        .retain(|_, w| now.duration_since(w.opened) < window || w.latest.is_some());
                }
                if self.open.len() < MAX_OPEN {
                    self.open.insert(key, Window { opened: now, held: 0, latest: None });
                }
                Some((item, 1))
            }
        }
    }

    /// Windows that closed with items held back: their latest item and how many were held.
    /// Closed windows without any are forgotten.
    pub fn expired(&mut self, now: Instant) -> Vec<(T, u32)> {
        let mut out = Vec::new();
        let window = self.window;
        self.open.retain(|_, w| {
            if now.duration_since(w.opened) < window {
                return true;
            }
            if let Some(latest) = w.latest.take() {
                out.push((latest, w.held));
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_key_and_window_the_rest_counted() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(WINDOW);
        assert_eq!(r.admit(("job-a", "dev"), "first", t0), Some(("first", 1)));
        assert_eq!(r.admit(("job-a", "dev"), "second", t0 + Duration::from_secs(1)), None);
        assert_eq!(r.admit(("job-a", "dev"), "third", t0 + Duration::from_secs(2)), None);
        // Other keys are not held back.
        assert_eq!(r.admit(("job-a", "kill"), "k", t0), Some(("k", 1)));
        assert_eq!(r.admit(("job-b", "dev"), "b", t0), Some(("b", 1)));
        // The next one after the window carries the held-back count.
        assert_eq!(r.admit(("job-a", "dev"), "fourth", t0 + WINDOW), Some(("fourth", 3)));
        assert!(r.expired(t0 + WINDOW).is_empty(), "job-a/dev reopened; the rest held none");
    }

    #[test]
    fn held_back_ones_are_reported_when_the_window_closes() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(WINDOW);
        r.admit("job-a", 1, t0);
        r.admit("job-a", 2, t0);
        r.admit("job-a", 3, t0);
        assert!(r.expired(t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(r.expired(t0 + WINDOW), vec![(3, 2)]);
        assert!(r.expired(t0 + WINDOW * 2).is_empty());
        assert_eq!(r.admit("job-a", 4, t0 + WINDOW * 2), Some((4, 1)), "a fresh window");
    }

    #[test]
    fn open_windows_are_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(WINDOW);
        for key in 0..MAX_OPEN + 100 {
            assert_eq!(r.admit(key, key, t0), Some((key, 1)), "a new key is always sent");
        }
        assert_eq!(r.open.len(), MAX_OPEN);
        // Held back while its window is open, as before.
        assert_eq!(r.admit(0, 0, t0), None);
        // Once the windows have closed, room is made for new keys.
        let later = t0 + WINDOW;
        assert_eq!(r.admit(MAX_OPEN + 200, 1, later), Some((1, 1)));
        assert!(r.open.len() <= MAX_OPEN);
        assert!(r.open.contains_key(&(MAX_OPEN + 200)));
    }
}
