//! Where a pod's and its containers' cgroups live, for the layouts kubelets make:
//!
//! | driver | pod cgroup (below the kubepods root's parent) | container |
//! | --- | --- | --- |
//! | systemd | `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice` (Guaranteed: `kubepods.slice/kubepods-pod<uid_>.slice`) | `cri-containerd-<id>.scope`, `crio-<id>.scope` |
//! | cgroupfs | `kubepods/<qos>/pod<uid>` (Guaranteed: `kubepods/pod<uid>`) | `<id>` |
//!
//! `<uid_>` is the pod uid with `-` replaced by `_` (systemd slice names); `<qos>` is
//! `burstable` or `besteffort`.
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Systemd,
    Cgroupfs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn from_status(class: &str) -> Option<Qos> {
        match class {
            "Guaranteed" => Some(Qos::Guaranteed),
            "Burstable" => Some(Qos::Burstable),
            "BestEffort" => Some(Qos::BestEffort),
            _ => None,
        }
    }

    fn dir(self) -> Option<&'static str> {
        match self {
            Qos::Guaranteed => None,
            Qos::Burstable => Some("burstable"),
            Qos::BestEffort => Some("besteffort"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    CriO,
}

/// A container id as the API reports it (`containerd://<id>`, `cri-o://<id>`).
pub fn parse_container_id(id: &str) -> Option<(Runtime, &str)> {
    let (scheme, id) = id.split_once("://")?;
    let runtime = match scheme {
        "containerd" => Runtime::Containerd,
        "cri-o" => Runtime::CriO,
        _ => return None,
    };
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit())).then_some((runtime, id))
}

/// Longest pod uid taken: a UUID has 36 characters; the longest cgroup name made of one
/// (`kubepods-besteffort-pod<uid_>.slice`) stays far below a file name's 255 bytes.
pub const MAX_POD_UID: usize = 128;

/// Whether `uid` can name a pod's cgroup: 1 to [`MAX_POD_UID`] ASCII letters, digits and
/// `-` (the API server makes UUIDs). Anything else (a `/`, `..`) could name a directory
/// outside the kubepods tree, where paddock would then track and kill.
pub fn usable_pod_uid(uid: &str) -> bool {
    (1..=MAX_POD_UID).contains(&uid.len())
        && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The pod's cgroup, relative to the directory holding `kubepods.slice` / `kubepods`;
/// `pod_uid` is one [`usable_pod_uid`] accepts.
pub fn pod_cgroup(driver: Driver, qos: Qos, pod_uid: &str) -> PathBuf {
    match driver {
        Driver::Systemd => {
            let uid = pod_uid.replace('-', "_");
            match qos.dir() {
                None => PathBuf::from(format!("kubepods.slice/kubepods-pod{uid}.slice")),
                Some(q) => PathBuf::from(format!(
                    "kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{uid}.slice"
                )),
            }
        }
        Driver::Cgroupfs => match qos.dir() {
            None => PathBuf::from(format!("kubepods/pod{pod_uid}")),
            Some(q) => PathBuf::from(format!("kubepods/{q}/pod{pod_uid}")),
        },
    }
}

/// A container's cgroup, relative to its pod's.
pub fn container_cgroup(driver: Driver, runtime: Runtime, id: &str) -> PathBuf {
    match (driver, runtime) {
        (Driver::Systemd, Runtime::Containerd) => {
            PathBuf::from(format!("cri-containerd-{id}.scope"))
        }
        (Driver::Systemd, Runtime::CriO) => PathBuf::from(format!("crio-{id}.scope")),
        (Driver::Cgroupfs, _) => PathBuf::from(id),
    }
}

/// The driver the kubelet of this node uses, from what exists below `parent`.
pub fn detect_driver(parent: &Path) -> Option<Driver> {
    if parent.join("kubepods.slice").is_dir() {
        Some(Driver::Systemd)
    } else if parent.join("kubepods").is_dir() {
        Some(Driver::Cgroupfs)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b6c2a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c";

    #[test]
    fn systemd_layouts() {
        assert_eq!(
            pod_cgroup(Driver::Systemd, Qos::Burstable, UID),
            Path::new(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b6c2a9e_1d2f_4e3a_9b8c_7d6e5f4a3b2c.slice"
            )
        );
        assert_eq!(
            pod_cgroup(Driver::Systemd, Qos::BestEffort, UID),
            Path::new(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b6c2a9e_1d2f_4e3a_9b8c_7d6e5f4a3b2c.slice"
            )
        );
        assert_eq!(
            pod_cgroup(Driver::Systemd, Qos::Guaranteed, UID),
            Path::new("kubepods.slice/kubepods-pod0b6c2a9e_1d2f_4e3a_9b8c_7d6e5f4a3b2c.slice")
        );
        assert_eq!(
            container_cgroup(Driver::Systemd, Runtime::Containerd, "ab12"),
            Path::new("cri-containerd-ab12.scope")
        );
        assert_eq!(
            container_cgroup(Driver::Systemd, Runtime::CriO, "ab12"),
            Path::new("crio-ab12.scope")
        );
    }

    #[test]
    fn cgroupfs_layouts() {
        assert_eq!(
            pod_cgroup(Driver::Cgroupfs, Qos::Burstable, UID),
            Path::new(&format!("kubepods/burstable/pod{UID}"))
        );
        assert_eq!(
            pod_cgroup(Driver::Cgroupfs, Qos::BestEffort, UID),
            Path::new(&format!("kubepods/besteffort/pod{UID}"))
        );
        assert_eq!(
            pod_cgroup(Driver::Cgroupfs, Qos::Guaranteed, UID),
            Path::new(&format!("kubepods/pod{UID}"))
        );
        for runtime in [Runtime::Containerd, Runtime::CriO] {
            assert_eq!(container_cgroup(Driver::Cgroupfs, runtime, "ab12"), Path::new("ab12"));
        }
    }

    #[test]
    fn container_ids_name_their_runtime() {
        assert_eq!(
            parse_container_id("containerd://3f2a9c"),
            Some((Runtime::Containerd, "3f2a9c"))
        );
        assert_eq!(parse_container_id("cri-o://3f2a9c"), Some((Runtime::CriO, "3f2a9c")));
        assert_eq!(parse_container_id("docker://3f2a9c"), None);
        assert_eq!(parse_container_id("containerd://"), None);
        assert_eq!(parse_container_id("containerd://../../etc"), None, "never a path");
        assert_eq!(parse_container_id("3f2a9c"), None);
    }

    #[test]
    fn only_uids_that_name_one_directory_are_usable() {
        assert!(usable_pod_uid(UID));
        assert!(usable_pod_uid("u-1"));
        for bad in ["", "../../", "a/b", "..", "x\0y", "é", &"a".repeat(MAX_POD_UID + 1)] {
            assert!(!usable_pod_uid(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_driver_is_read_from_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect_driver(dir.path()), None);
        std::fs::create_dir(dir.path().join("kubepods")).unwrap();
        assert_eq!(detect_driver(dir.path()), Some(Driver::Cgroupfs));
        std::fs::create_dir(dir.path().join("kubepods.slice")).unwrap();
        assert_eq!(detect_driver(dir.path()), Some(Driver::Systemd));
    }
}
