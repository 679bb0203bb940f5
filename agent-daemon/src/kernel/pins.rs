//! What stays in the kernel while no daemon runs: the maps and the links of the attached
//! programs, pinned in bpffs under `kernel.pin_dir`, so that tracking and enforcement go on
//! through a restart, a crash or an upgrade.
//!
//! ```text
//! <pin_dir>/
//!   maps_v<version>_<sizes>/PADDOCK_*        every map of one layout
//!   links_v<version>_<sizes>_<object>_<hooks>_<n>/<i>_<program>
//!                                            one generation of attached programs
//!   new_<n>/                                 a generation still being attached
//! ```
//!
//! `<version>` is `agent_common::names::LAYOUT_VERSION`, `<sizes>` a hash of every map's
//! type, key and value sizes, entries and flags, `<object>` a hash of the programs' object,
//! `<hooks>` a hash of where they attach. A daemon uses the maps of its layout if they are
//! pinned (their state is adopted), and the links of a complete generation that matches
//! all four (the programs are adopted, nothing is attached); otherwise it attaches its own
//! generation beside the one running, and retires the old one only after its own is
//! attached and filled (see `load`). bpffs refuses names with dots; these have none.
use std::{
    fs::File,
    os::unix::io::AsRawFd as _,
    path::{Path, PathBuf},
};

use agent_common::{
    hash::fnv1a,
    names::{self, LAYOUT_VERSION},
};

/// Where the map shared by every generation (`names::maps::DOOMED`) is pinned.
pub const DOOMED_PIN: &str = "doomed_slots";

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("cannot make pin directory {path} (is {bpffs} a bpf filesystem?): {source}")]
    Make { path: PathBuf, bpffs: String, source: std::io::Error },
    #[error(
        "another paddock daemon uses pin directory {path} (kernel.pin_dir): one daemon per \
         directory"
    )]
    Busy { path: PathBuf },
    #[error("pin directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot read the kernel object's maps: {0}")]
    Object(String),
}

/// The maps' layout: the version of their formats and a hash of their sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub version: u32,
    pub sizes: u64,
}

impl Layout {
    fn maps_name(self) -> String {
        format!("maps_v{}_{:016x}", self.version, self.sizes)
    }

    fn links_prefix(self, object: u64, hooks: u64) -> String {
        format!("links_v{}_{:016x}_{object:016x}_{hooks:016x}_", self.version, self.sizes)
    }

    /// The layout a `maps_...` or `links_...` directory name carries.
    fn of_name(name: &str) -> Option<Layout> {
        let rest = name.strip_prefix("maps_v").or_else(|| name.strip_prefix("links_v"))?;
        let mut parts = rest.split('_');
        let version = parts.next()?.parse().ok()?;
        let sizes = u64::from_str_radix(parts.next()?, 16).ok()?;
        Some(Layout { version, sizes })
    }
}

/// The layout of the `PADDOCK_*` maps of `object`, with `overrides` (map name, entries)
/// applied as the loader applies them.
pub fn layout(object: &[u8], overrides: &[(&str, u32)]) -> Result<Layout, PinError> {
    let obj = aya_obj::Object::parse(object).map_err(|e| PinError::Object(e.to_string()))?;
    // The doomed map is outside every layout (it never changes).
    let mut maps: Vec<(&String, &aya_obj::Map)> = obj
        .maps
        .iter()
        .filter(|(name, _)| name.starts_with("PADDOCK_") && name.as_str() != names::maps::DOOMED)
        .collect();
    if maps.is_empty() {
        return Err(PinError::Object("no PADDOCK_ maps in the object".into()));
    }
    maps.sort_by_key(|(name, _)| name.as_str());
    let mut text = String::new();
    for (name, map) in maps {
        let entries = overrides
            .iter()
            .find(|(n, _)| n == name)
            .map_or(map.max_entries(), |(_, entries)| *entries);
        text += &format!(
            "{name}:{}:{}:{}:{entries}:{};",
            map.map_type(),
            map.key_size(),
            map.value_size(),
            map.map_flags()
        );
    }
    Ok(Layout { version: LAYOUT_VERSION, sizes: fnv1a(text.as_bytes()) })
}

/// What earlier daemons left, apart from what this one uses.
#[derive(Debug, Default)]
pub struct Previous {
    /// Generations of attached programs (complete or not).
    pub links: Vec<PathBuf>,
    /// Map directories, with their layout when the name says it.
    pub maps: Vec<(PathBuf, Option<Layout>)>,
}

/// The pin directory, locked for this daemon's lifetime.
pub struct Pins {
    pub root: PathBuf,
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PinError + '_ {
    move |source| PinError::Io { path: path.to_path_buf(), source }
}

impl Pins {
    /// Make `root` (below the bpffs mount `bpffs`) if needed and lock it.
    pub fn open(root: &Path, bpffs: &Path) -> Result<Pins, PinError> {
        std::fs::create_dir_all(root).map_err(|source| PinError::Make {
            path: root.to_path_buf(),
            bpffs: bpffs.display().to_string(),
            source,
        })?;
        let lock = File::open(root).map_err(io(root))?;
        // SAFETY: a valid fd; LOCK_NB never blocks. The lock goes with the fd.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(PinError::Busy { path: root.to_path_buf() });
        }
        Ok(Pins { root: root.to_path_buf(), _lock: lock })
    }

    fn names(&self) -> Result<Vec<String>, PinError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Where the maps of `layout` are pinned (made if missing); and whether it was there.
    pub fn maps_dir(&self, layout: Layout) -> Result<(PathBuf, bool), PinError> {
        let dir = self.root.join(layout.maps_name());
        let existed = dir.is_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok((dir, existed))
    }

    /// A complete generation of programs of this layout, object and hooks, if one is pinned.
    pub fn complete_links(
        &self,
        layout: Layout,
        object: u64,
        hooks: u64,
    ) -> Result<Option<PathBuf>, PinError> {
        let prefix = layout.links_prefix(object, hooks);
        Ok(self
            .names()?
            .into_iter()
            .rev()
            .find(|n| n.starts_with(&prefix))
            .map(|n| self.root.join(n)))
    }

    /// A fresh directory for a generation being attached.
    pub fn new_links(&self) -> Result<PathBuf, PinError> {
        let n = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let dir = self.root.join(format!("new_{n}"));
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Name the generation in `dir` complete: every program in it is attached.
    pub fn complete(
        &self,
        dir: &Path,
        layout: Layout,
        object: u64,
        hooks: u64,
    ) -> Result<PathBuf, PinError> {
        let n = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("new_"))
            .unwrap_or("0");
        let done = self.root.join(format!("{}{n}", layout.links_prefix(object, hooks)));
        std::fs::rename(dir, &done).map_err(io(dir))?;
        Ok(done)
    }

    /// Everything pinned here but `links` and `maps`.
    pub fn previous(&self, links: &Path, maps: &Path) -> Result<Previous, PinError> {
        let mut previous = Previous::default();
        for name in self.names()? {
            let path = self.root.join(&name);
            if path == links || path == maps || name == DOOMED_PIN {
                continue;
            }
            if name.starts_with("links_") || name.starts_with("new_") {
                previous.links.push(path);
            } else if name.starts_with("maps_") {
                previous.maps.push((path, Layout::of_name(&name)));
            } else {
                tracing::warn!(path = %path.display(), "unknown entry in the pin directory; left alone");
            }
        }
        Ok(previous)
    }
}

/// Remove a pinned directory or object: links unpinned detach their programs (once no
/// process holds them), maps unpinned are freed once no program uses them.
pub fn remove(path: &Path) -> Result<(), PinError> {
    let removed =
        if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PinError::Io { path: path.to_path_buf(), source }),
    }
}

/// `paddock daemon --cleanup`: unpin everything under `root` (which must not be in use).
/// Returns what was removed.
pub fn cleanup(root: &Path, bpffs: &Path) -> Result<Vec<PathBuf>, PinError> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let pins = Pins::open(root, bpffs)?;
    let mut removed = Vec::new();
    for name in pins.names()? {
        let path = root.join(name);
        remove(&path)?;
        removed.push(path);
    }
    drop(pins);
    // The root too, when nothing else made it meanwhile.
    let _ = std::fs::remove_dir(root);
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_layout() {
        let layout = Layout { version: 3, sizes: 0xabc };
        assert_eq!(layout.maps_name(), "maps_v3_0000000000000abc");
        assert_eq!(Layout::of_name(&layout.maps_name()), Some(layout));
        let links = format!("{}17", layout.links_prefix(1, 2));
        assert_eq!(Layout::of_name(&links), Some(layout));
        assert!(!links.contains('.'), "bpffs refuses dots: {links}");
        assert_eq!(Layout::of_name("maps_vx_1"), None);
        assert_eq!(Layout::of_name("something"), None);
    }
}
