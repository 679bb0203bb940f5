//! What the daemon says as it runs: which pinned state it took over, what it retired, records
//! the kernel lost; and the investigations' counters sampled for their envelopes.
use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{api::state::State, kernel::Kernel, workloads::Tracker};

/// Log records the kernel could not deliver, as they happen (never silent).
pub(super) async fn report_losses(state: Arc<State>, shutdown: CancellationToken) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let lost = state.lost();
        let total: u64 = lost.values().sum();
        if total > last {
            tracing::warn!(lost_since_last_report = total - last, lost_total = total, by_kind = ?lost,
                "kernel ring buffer full: records lost");
            last = total;
        }
    }
}

/// Read each running investigation's counters once a second, for its envelope.
pub(super) async fn sample(tracker: Arc<Tracker>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => tracker.sample().await,
            () = shutdown.cancelled() => return,
        }
    }
}

/// Say which pinned state this daemon runs on.
pub(super) fn report_generation(kernel: &Kernel) {
    let g = &kernel.generation;
    match (g.maps_adopted, g.programs_adopted) {
        (true, true) => {
            tracing::info!(programs = %g.links_dir.display(), maps = %g.maps_dir.display(),
            "adopted the running programs and their maps: no gap in tracking or enforcement")
        }
        (true, false) => {
            tracing::info!(programs = %g.links_dir.display(), maps = %g.maps_dir.display(),
            "adopted the maps; attached this build's programs beside the running ones (those go once the investigations are adopted)")
        }
        (false, _) if !g.carried_from.is_empty() => {
            tracing::info!(maps = %g.maps_dir.display(), from = ?g.carried_from,
            "new map layout: carried the earlier maps' state over; earlier programs keep enforcing until this generation is filled")
        }
        (false, _) => {
            tracing::info!(programs = %g.links_dir.display(), maps = %g.maps_dir.display(),
            "attached new programs and maps")
        }
    }
    if g.maps_adopted {
        let lost: u64 = kernel.maps.lost().map(|l| l.iter().sum()).unwrap_or(0);
        if lost > 0 {
            tracing::warn!(
                lost_records = lost,
                "records the kernel could not keep while no daemon read them (or earlier): lost, counted against their investigations"
            );
        }
    }
}

pub(super) fn report_retired(retired: &crate::kernel::Retired) {
    for dir in &retired.links {
        tracing::info!(programs = %dir.display(), "detached an earlier generation of programs");
    }
    for dir in &retired.unreadable {
        tracing::warn!(maps = %dir.display(),
            "an earlier generation's maps had another layout version: the records its programs wrote while no daemon ran are not read, and processes it tracked outside their investigations' cgroups are not carried over");
    }
}
