//! Where one daemon keeps its things, each its own: a temporary directory (socket, state,
//! configuration file, logs) and, named alike, its cgroup parent and pin directory.
use std::{
    io,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One daemon's places; the directory goes when this is dropped.
pub struct Places {
    pub dir: tempfile::TempDir,
    /// `paddock-KIND-PID-N`: no other daemon of this machine has the same name.
    pub name: String,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// The daemon's standard error.
    pub log: PathBuf,
    pub stdout: PathBuf,
    /// `daemon.state_dir`.
    pub state: PathBuf,
    /// `kernel.pin_dir`: `/sys/fs/bpf/<name>`.
    pub pin_dir: PathBuf,
    /// `local.cgroup_parent`: `<name>`.
    pub cgroup_parent: String,
}

impl Places {
    /// New places for a daemon of `kind` (`test`, `demo`, `bench`...).
    pub fn new(kind: &str) -> io::Result<Places> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("paddock-{kind}-{}-{n}", std::process::id());
        let dir = tempfile::Builder::new().prefix(&format!("{name}-")).tempdir()?;
        let at = |file: &str| dir.path().join(file);
        Ok(Places {
            socket: at("paddock.sock"),
            config: at("paddock.toml"),
            log: at("daemon.log"),
            stdout: at("daemon.stdout"),
            state: at("state"),
            pin_dir: PathBuf::from("/sys/fs/bpf").join(&name),
            cgroup_parent: name.clone(),
            name,
            dir,
        })
    }

    /// Put these places in `config`, over what it says: `daemon.socket`, `daemon.state_dir`,
    /// `local.cgroup_parent` and `kernel.pin_dir`.
    pub fn put_in(&self, config: &mut toml::Table) {
        let path = |p: &PathBuf| toml::Value::String(p.display().to_string());
        set(config, "daemon", "socket", path(&self.socket));
        set(config, "daemon", "state_dir", path(&self.state));
        set(config, "local", "cgroup_parent", self.cgroup_parent.clone().into());
        set(config, "kernel", "pin_dir", path(&self.pin_dir));
    }
}

fn set(config: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    let table = config.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(table) = table {
        table.insert(key.to_owned(), value);
    } else {
        *table = toml::Value::Table(toml::Table::from_iter([(key.to_owned(), value)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_each_their_own_and_go_in_over_the_callers() {
        let (a, b) = (Places::new("unit").unwrap(), Places::new("unit").unwrap());
        assert_ne!(a.name, b.name);
        assert_ne!(a.socket, b.socket);
        let mut config: toml::Table =
            "[daemon]\nsocket = \"/run/paddock/paddock.sock\"\nrecent_events = 7\n"
                .parse()
                .unwrap();
        a.put_in(&mut config);
        assert_eq!(config["daemon"]["socket"].as_str(), a.socket.to_str());
        assert_eq!(config["daemon"]["recent_events"].as_integer(), Some(7));
        assert_eq!(config["kernel"]["pin_dir"].as_str(), a.pin_dir.to_str());
        assert_eq!(config["local"]["cgroup_parent"].as_str(), Some(a.name.as_str()));
        assert!(a.pin_dir.starts_with("/sys/fs/bpf") && a.name.starts_with("paddock-unit-"));
    }
}
