//! A daemon replaced (stopped and started, a new map layout, another layout version)
//! while investigations stray every 25 ms: none of them gets through in the replacement.
use super::*;

/// Investigations waiting on FIFOs, each to stray (connect where the baseline does not
/// allow) when its FIFO is opened.
struct Probes {
    fifos: Vec<PathBuf>,
    clients: Vec<Child>,
}

impl Probes {
    fn start(daemon: &Daemon, work: &Path, forbidden: &Listener, n: usize) -> Probes {
        let mut fifos = Vec::new();
        let mut clients = Vec::new();
        let connect = format!("exec {} connect:127.0.0.1:{}", actor(), forbidden.port);
        for i in 0..n {
            let fifo = work.join(format!("fifo-{i}"));
            mkfifo(&fifo);
            clients.push(start(daemon, &format!("probe-{i}"), &waiting(&fifo, &connect)));
            fifos.push(fifo);
        }
        let ids: Vec<String> = (0..n).map(|i| format!("probe-{i}")).collect();
        daemon.wait_running(&ids.iter().map(String::as_str).collect::<Vec<_>>(), RUNNING);
        Probes { fifos, clients }
    }

    /// Release one probe every `every` from a thread, until `stop` is set or none is left;
    /// returns when each was released.
    fn release_over_time(
        &self,
        every: Duration,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<Vec<Instant>> {
        let fifos = self.fifos.clone();
        std::thread::spawn(move || {
            let mut times = Vec::new();
            for fifo in fifos {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                release(&fifo);
                times.push(Instant::now());
                std::thread::sleep(every);
            }
            times
        })
    }
}

/// How a daemon is replaced in [`replaced_with_no_window`].
enum Replacement {
    /// SIGTERM, then the same daemon again: it adopts programs and maps.
    Restart,
    /// SIGTERM, then a daemon with a bigger process map: a new layout, the state carried.
    NewLayout,
    /// SIGKILL, then a daemon of "another version": what is pinned is renamed to an older
    /// layout version, which a daemon never reads.
    OtherVersion,
}

/// Strays released every 25 ms from before the old daemon stops until after the new one
/// is ready: none gets through, and enough of them fell in the replacement.
fn replaced_with_no_window(replacement: Replacement) {
    let work = tempfile::tempdir().unwrap();
    let (allowed, forbidden) = (Listener::start(), Listener::start());
    let mut daemon = enforcing(config(), work.path(), &allowed);
    let probes = Probes::start(&daemon, work.path(), &forbidden, 100);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let releaser = probes.release_over_time(Duration::from_millis(25), stop.clone());
    std::thread::sleep(Duration::from_millis(100));
    let down = Instant::now();
    match replacement {
        Replacement::Restart | Replacement::NewLayout => {
            let status = daemon.stop().expect("was running");
            assert!(status.success(), "{status}\n{}", daemon.log());
        }
        Replacement::OtherVersion => daemon.kill9(),
    }
    let dead = Instant::now();
    match replacement {
        Replacement::Restart => {}
        Replacement::NewLayout => {
            daemon.reconfigure(|c| c.kernel.max_tracked_processes = 32768);
        }
        Replacement::OtherVersion => {
            let root = daemon.pin_dir.clone();
            for name in pinned(&daemon) {
                let older = older_version(&name);
                std::fs::rename(root.join(&name), root.join(&older)).unwrap();
            }
        }
    }
    let daemon = daemon.restart();
    let up = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let released = releaser.join().unwrap();
    let during = released.iter().filter(|t| **t >= down && **t <= up).count();
    assert_eq!(
        forbidden.accepted(),
        0,
        "a stray connect got through during the replacement\n{}",
        daemon.log()
    );
    assert!(
        during >= 5,
        "only {during} of {} strays fell between the stop and the new daemon's start ({:?}): \
         release more",
        released.len(),
        up - down
    );
    eprintln!("{during} strays released during the {:?} replacement; none got through", up - down);
    let log = daemon.log();
    match replacement {
        Replacement::Restart => {
            assert!(log.contains("adopted the running programs and their maps"), "{log}")
        }
        Replacement::NewLayout => {
            assert!(log.contains("carried the earlier maps' state over"), "{log}")
        }
        Replacement::OtherVersion => assert!(log.contains("another layout version"), "{log}"),
    }
    if !matches!(replacement, Replacement::Restart) {
        assert!(log.contains("detached an earlier generation of programs"), "{log}");
        let left = pinned(&daemon);
        let generations = left.iter().filter(|n| n.starts_with("links_") || n.starts_with("maps_"));
        assert_eq!(generations.count(), 2, "only this generation stays pinned: {left:?}");
    }
    // Every released probe dies, and its client hears it was killed; one the old daemon
    // killed and ended just before a SIGKILL may have had its verdict still queued for the
    // audit store, lost with it: its client is told that nobody can say.
    for (i, client) in probes.clients.into_iter().enumerate() {
        if i < released.len() {
            let out = finish_or(client, Duration::from_secs(30), || daemon.log());
            let unknown = released[i] < dead
                && matches!(replacement, Replacement::OtherVersion)
                && out.status.code() == Some(125)
                && stderr(&out).contains("the audit store has no ended run of it");
            assert!(
                out.status.code() == Some(EXIT_KILLED) || unknown,
                "probe-{i}: {:?} {}\n{}",
                out.status,
                stderr(&out),
                daemon.log()
            );
        } else {
            let mut client = client;
            let _ = client.kill();
            let _ = client.wait();
        }
    }
    for fifo in &probes.fifos[released.len()..] {
        release(fifo);
    }
}

#[test]
fn a_clean_stop_and_start_leave_no_window() {
    skip_unless_root!();
    replaced_with_no_window(Replacement::Restart);
}

#[test]
fn a_new_map_layout_is_attached_before_the_old_one_goes() {
    skip_unless_root!();
    replaced_with_no_window(Replacement::NewLayout);
}

#[test]
fn another_layout_version_is_replaced_with_overlap() {
    skip_unless_root!();
    replaced_with_no_window(Replacement::OtherVersion);
}

/// `name` of a pinned generation (`links_v<N>_...`, `maps_v<N>_...`) as the version before
/// this one would have named it; other names as they are.
fn older_version(name: &str) -> String {
    let Some(at) = name.find("_v") else { return name.to_owned() };
    let digits: String = name[at + 2..].chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u32>() {
        Ok(v) if v > 0 && name[at + 2 + digits.len()..].starts_with('_') => {
            format!("{}_v{}{}", &name[..at], v - 1, &name[at + 2 + digits.len()..])
        }
        _ => name.to_owned(),
    }
}
