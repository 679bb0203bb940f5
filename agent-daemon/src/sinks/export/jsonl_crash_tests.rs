//! Property: whatever batches are written and wherever the writer crashes (the current
//! file cut at any byte, or a rotation stopped after its renames), an exporter that reopens
//! and goes on from `acknowledged() + 1` leaves every event exactly once, in order, across
//! the rotated files.
use proptest::prelude::*;

use super::{
    jsonl::{JsonlWriter, rotated},
    jsonl_tests::{STORE, all_seqs, config, events, runs},
};

const KEEP: u32 = 1000;

#[derive(Debug, Clone)]
enum Crash {
    /// The current file cut at this fraction of its length (a torn write, or lines the
    /// disk never got).
    Cut(f64),
    /// The current file renamed to `.1` (after shifting the others), no new one made.
    MidRotation,
}

fn crash() -> impl Strategy<Value = Option<Crash>> {
    prop_oneof![
        3 => Just(None),
        2 => (0.0..=1.0f64).prop_map(|f| Some(Crash::Cut(f))),
        1 => Just(Some(Crash::MidRotation)),
    ]
}

fn apply(path: &std::path::Path, crash: &Crash) {
    match crash {
        Crash::Cut(fraction) => {
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let len = file.metadata().unwrap().len();
            file.set_len((len as f64 * fraction) as u64).unwrap();
        }
        Crash::MidRotation => {
            for n in (1..KEEP).rev() {
                let _ = std::fs::rename(rotated(path, n), rotated(path, n + 1));
            }
            std::fs::rename(path, rotated(path, 1)).unwrap();
        }
    }
}

proptest! {
    // Each case syncs files many times: a fixed count, not the parsers' long run.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_event_is_written_exactly_once_across_crashes(
        gaps in prop::collection::vec(1..4i64, 1..120),
        steps in prop::collection::vec((1..25usize, crash()), 1..30),
        max_bytes in 4096..12_000u64,
    ) {
        let seqs: Vec<i64> = gaps.iter().scan(0, |s, g| { *s += g; Some(*s) }).collect();
        let all = events(seqs.iter().copied());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let cfg = config(&path, max_bytes, KEEP);
        let mut writer = JsonlWriter::open(&cfg, 0).unwrap();
        let mut next = 0;
        let mut step = 0;
        while next < all.len() {
            let (size, crash) = &steps[step % steps.len()];
            // Crashes on the first pass only: the second always gets to the end.
            let crash = if step < steps.len() { crash } else { &None };
            step += 1;
            let end = (next + size).min(all.len());
            writer.write(&all[next..end], &runs(), "node-1", STORE).unwrap();
            next = end;
            if let Some(crash) = crash {
                drop(writer);
                apply(&path, crash);
                writer = JsonlWriter::open(&cfg, 0).unwrap();
                let acknowledged = writer.acknowledged(STORE);
                next = all.iter().position(|e| acknowledged.is_none_or(|a| e.seq > a)).unwrap_or(all.len());
            }
            prop_assert!(step < 10_000, "no progress");
        }
        prop_assert_eq!(all_seqs(&path, KEEP), seqs);
        for n in 1..=KEEP {
            let Ok(meta) = std::fs::metadata(rotated(&path, n)) else { break };
            prop_assert!(meta.len() <= max_bytes);
        }
    }
}
