//! The kernel's own account of each BPF program's cost (`kernel.bpf_stats_enabled`): total
//! run time and run count, read before and after a measurement; the difference over the
//! difference is the mean nanoseconds a program took per run in that measurement.
use std::collections::BTreeMap;

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Stats on while this lives, back to what they were after.
pub struct StatsOn(String);

impl StatsOn {
    pub fn new() -> anyhow::Result<StatsOn> {
        let before = std::fs::read_to_string(SYSCTL)?.trim().to_owned();
        std::fs::write(SYSCTL, "1")?;
        Ok(StatsOn(before))
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

/// (run time ns, run count) per program name (as the kernel keeps it: 15 characters) of the
/// loaded programs whose name starts with `prefix`, summed over programs of one name.
pub fn snapshot(prefix: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for info in aya::programs::loaded_programs().filter_map(Result::ok) {
        let Some(name) = info.name_as_str() else { continue };
        if !name.starts_with(prefix) {
            continue;
        }
        let entry = out.entry(name.to_owned()).or_default();
        entry.0 += info.run_time().as_nanos() as u64;
        entry.1 += info.run_count();
    }
    out
}

/// Mean ns per run of each program between two snapshots (programs that ran).
pub fn per_run(
    before: &BTreeMap<String, (u64, u64)>,
    after: &BTreeMap<String, (u64, u64)>,
) -> BTreeMap<String, (f64, u64)> {
    after
        .iter()
        .filter_map(|(name, (ns, runs))| {
            let (ns0, runs0) = before.get(name).copied().unwrap_or((0, 0));
            let runs = runs.saturating_sub(runs0);
            (runs > 0).then(|| (name.clone(), (ns.saturating_sub(ns0) as f64 / runs as f64, runs)))
        })
        .collect()
}
