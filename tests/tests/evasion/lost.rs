//! Evasion 2, Lost records never open a gap: the kernel decides before it reports, records lost for
//! an enforcing investigation fail it closed (by default), and one investigation's flood
//! cannot blind paddock to another.
use super::*;

/// The benign form: a few new files (records that decide nothing) and the usual exec.
fn benign(dir: &Path) -> Vec<String> {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    vec!["exec:/bin/true".into(), format!("touch-many:{}:20", files.display())]
}

/// A one-page ring buffer and no rate limit: a few thousand new files at once overflow it.
fn tiny_ring(fail_closed: bool) -> Config {
    let mut config = config();
    config.kernel.ring_buffer_bytes = 4096;
    config.limits.records_per_second = 0;
    config.enforcement.fail_closed = fail_closed;
    config
}

/// `phase` learned from `benign` in a daemon with room to spare (a one-page ring would
/// lose first uses while learning), then pinned with room in its envelope for a burst of
/// new files, as an operator reviewing it would, and imported into a lab with `settings`:
/// only the loss is left to judge.
fn pinned_lab(phase: &'static str, config: Config) -> Lab {
    let mut teacher = Lab::new(phase);
    teacher.teach(benign);
    let text = teacher.daemon.ok(&["baseline", "export", phase]);
    let lab = Lab::with(phase, config);
    lab.import_widened(&text);
    lab
}

#[test]
fn records_lost_by_an_enforcing_investigation_fail_it_closed() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = pinned_lab("autonomous", tiny_ring(true));
        let dir = work();
        let files = dir.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        let steps = ["exec:/bin/true".to_owned(), format!("touch-many:{}:20000", files.display())];
        let stray = lab.stray(mode, &steps);
        let verdict = stray.verdict("lost_records");
        assert!(verdict["reason"].as_str().unwrap().contains("records lost"), "{verdict}");
        let ended = stray.ended();
        assert!(ended["lost_records"].as_u64().unwrap_or(0) > 0, "{ended}");
        stray.assert_outcome(mode);
    });
}

#[test]
fn with_fail_closed_off_lost_records_are_only_flagged() {
    skip_unless_root!();
    let mut lab = pinned_lab("autonomous", tiny_ring(false));
    let dir = work();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let steps = ["exec:/bin/true".to_owned(), format!("touch-many:{}:20000", files.display())];
    let stray = lab.stray(Mode::Enforce, &steps);
    let verdict = stray.verdict("lost_records");
    assert_eq!(verdict["outcome"], "flagged", "{verdict}");
    assert!(stray.out.status.success(), "{}", dump(&stray.events));
    assert_eq!(stray.ended()["outcome"], "flagged");
}

/// With the ring buffer full of another investigation's records, a forbidden exec is still
/// killed before its first instruction: the kernel's decision does not wait on a record.
#[test]
fn a_full_ring_buffer_does_not_let_a_forbidden_exec_run() {
    skip_unless_root!();
    let mut lab = pinned_lab("read-only", tiny_ring(true));
    let flood = work();
    let flooder = lab
        .daemon
        .cmd(&["run", "--investigation-id", "flooder", "--phase", "shadow", "--"])
        .arg(actor_bin())
        .arg(format!("touch-many:{}:200000", flood.path().display()))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let dir = work();
    let marker = dir.path().join("marker");
    let script = dir.path().join("stray.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho ran > {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut steps = benign(dir.path());
    steps.push(format!("exec:{}", script.display()));
    let stray = lab.stray(Mode::Enforce, &steps);
    stray.assert_outcome(Mode::Enforce);
    assert!(!marker.exists(), "the forbidden executable ran");
    drop(flooder.wait_with_output());
    lab.daemon.events_of("flooder", WAIT);
    let status = lab.daemon.status();
    assert!(status["lost_total"].as_u64().unwrap() > 0, "the ring buffer did overflow: {status}");
}

/// One investigation flooding paddock with new files is throttled at its own rate; another
/// that strays meanwhile is seen whole (nothing of it lost) and judged.
#[test]
fn one_investigations_flood_does_not_blind_paddock_to_another() {
    skip_unless_root!();
    let settings =
        Config { limits: LimitsConfig { records_per_second: 2000, ..config().limits }, ..config() };
    both(|mode| {
        let mut lab = Lab::with("limited-write", settings.clone());
        lab.teach(benign);
        let flood = work();
        let flooder = lab
            .daemon
            .cmd(&["run", "--investigation-id", "flooder", "--phase", "shadow", "--"])
            .arg("/bin/sh")
            .arg("-c")
            .arg(format!(
                "mkdir -p {d}/1 {d}/2; {a} touch-many:{d}/1:30000 & {a} touch-many:{d}/2:30000 & wait",
                a = actor(),
                d = flood.path().display()
            ))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let dir = work();
        let mut steps = benign(dir.path());
        steps.push("exec:/bin/false".into());
        let stray = lab.stray(mode, &steps);
        assert_eq!(stray.verdict("exec")["subject"], "/bin/false");
        stray.assert_outcome(mode);
        assert!(
            stray.ended().get("lost_records").is_none()
                && stray.ended().get("throttled_records").is_none(),
            "the straying investigation lost nothing: {}",
            stray.ended()
        );
        drop(flooder.wait_with_output());
        let flooded = lab.daemon.events_of("flooder", WAIT);
        let ended = of_kind(&flooded, "ended", |_| true)[0].clone();
        assert!(
            ended["throttled_records"].as_u64().unwrap_or(0) > 0,
            "the flood was throttled: {ended}"
        );
        let metrics = lab.daemon.metrics();
        assert!(
            metrics.contains(
                "paddock_investigation_unseen_total{phase=\"shadow\",what=\"throttled_records\"}"
            ),
            "{metrics}"
        );
    });
}
