//! cgroup v2 directories of investigations: make, read, watch until empty, remove.
use std::{
    collections::HashMap,
    io,
    os::unix::fs::MetadataExt as _,
    path::Path,
    sync::{Arc, Mutex},
};

use futures_util::StreamExt as _;
use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::sync::watch;

/// The cgroup id the kernel reports for `dir` (its inode number).
pub fn cgroup_id(dir: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(dir)?.ino())
}

/// Whether any process runs in `dir` or below it (`populated` in `cgroup.events`).
pub fn populated(dir: &Path) -> io::Result<bool> {
    let events = std::fs::read_to_string(dir.join("cgroup.events"))?;
    parse_populated(&events).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}/cgroup.events has no populated line", dir.display()),
        )
    })
}

fn parse_populated(events: &str) -> Option<bool> {
    events.lines().find_map(|line| match line.split_once(' ') {
        Some(("populated", v)) => Some(v.trim() == "1"),
        _ => None,
    })
}

/// The processes (tgids) in `dir` and every cgroup below it.
/// The cgroup v2 path of process `pid` (`/a/b`, relative to the hierarchy's root), from the
/// `0::` line of `/proc/<pid>/cgroup`.
pub fn of_process(pid: u32) -> io::Result<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other(format!("process {pid} has no cgroup v2 path")))
}

pub fn processes(dir: &Path) -> io::Result<Vec<u32>> {
    let mut tgids = Vec::new();
    for (i, dir) in tree(dir)?.into_iter().enumerate() {
        match std::fs::read_to_string(dir.join("cgroup.procs")) {
            Ok(procs) => tgids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
            // A cgroup below removed meanwhile: nothing runs there any more.
            Err(e) if i > 0 && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(tgids)
}

/// `dir` and every cgroup below it, parents before children.
pub fn tree(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut all = vec![dir.to_path_buf()];
    let mut next = 0;
    while next < all.len() {
        let entries = match std::fs::read_dir(&all[next]) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && next > 0 => {
                next += 1;
                continue;
            }
            other => other?,
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                all.push(entry.path());
            }
        }
        next += 1;
    }
    Ok(all)
}

/// Remove `dir` and every cgroup below it, deepest first. The cgroups must be empty.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    let mut children = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            children.push(entry.path());
        }
    }
    for child in children {
        remove_tree(&child)?;
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// One inotify instance for every watched `cgroup.events` file; each watch wakes a
/// `watch::Receiver` when its file changes.
#[derive(Clone)]
pub struct EventsWatcher {
    watches: Arc<Mutex<Watches>>,
    senders: Arc<Mutex<HashMap<WatchDescriptor, watch::Sender<u64>>>>,
}

/// Removes the inotify watch when dropped.
pub struct EventsWatch {
    registered: Option<(EventsWatcher, WatchDescriptor)>,
    /// For a watch of nothing: the sender, kept so that `changed` never fires.
    _quiet: Option<watch::Sender<u64>>,
    pub changed: watch::Receiver<u64>,
}

impl EventsWatch {
    /// A watch that never fires (for a cgroup that could not be watched: its owner looks
    /// again now and then).
    pub fn quiet() -> EventsWatch {
        let (tx, changed) = watch::channel(0);
        EventsWatch { registered: None, _quiet: Some(tx), changed }
    }
}

impl Drop for EventsWatch {
    fn drop(&mut self) {
        if let Some((watcher, wd)) = self.registered.take() {
            watcher.senders.lock().unwrap_or_else(|e| e.into_inner()).remove(&wd);
            let _ = watcher.watches.lock().unwrap_or_else(|e| e.into_inner()).remove(wd);
        }
    }
}

impl EventsWatcher {
    /// Start the watcher's task.
    pub fn spawn() -> io::Result<EventsWatcher> {
        let inotify = Inotify::init()?;
        let watches = inotify.watches();
        let mut stream = inotify.into_event_stream(vec![0u8; 4096])?;
        let senders: Arc<Mutex<HashMap<WatchDescriptor, watch::Sender<u64>>>> = Arc::default();
        let dispatch = senders.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if let Some(tx) =
                            dispatch.lock().unwrap_or_else(|e| e.into_inner()).get(&event.wd)
                        {
                            tx.send_modify(|n| *n += 1);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "inotify read failed"),
                }
            }
        });
        Ok(EventsWatcher { watches: Arc::new(Mutex::new(watches)), senders })
    }

    /// Watch `dir/cgroup.events`.
    pub fn watch(&self, dir: &Path) -> io::Result<EventsWatch> {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        let wd = self
            .watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(dir.join("cgroup.events"), WatchMask::MODIFY)?;
        let (tx, changed) = watch::channel(0);
        senders.insert(wd.clone(), tx);
        Ok(EventsWatch { registered: Some((self.clone(), wd)), _quiet: None, changed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_populated_from_cgroup_events() {
        assert_eq!(parse_populated("populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(parse_populated("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_populated("frozen 0\n"), None);
    }

    #[test]
    fn remove_tree_goes_deepest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("inv");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("c")).unwrap();
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        remove_tree(&root).unwrap(); // already gone is fine
    }
}
