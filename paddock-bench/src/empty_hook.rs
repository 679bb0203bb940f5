//! `paddock-bench empty-hook`: the cost floor that `cargo xtask bench overhead` measures
//! paddock against, an empty program on `sys_enter` from the benchmarks' own object
//! (`agent-ebpf-bench`), attached until SIGTERM or SIGINT.
use anyhow::Context as _;
use aya::{Ebpf, programs::RawTracePoint};

/// The benchmarks' kernel programs, built by `build.rs` from `agent-ebpf-bench`.
static BENCH_PROBES: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/paddock-bench-probes"));

/// The empty `sys_enter` program (its function's name in `agent-ebpf-bench`).
pub const EMPTY: &str = "paddock_bench_empty";

/// Load the empty program and attach it to `sys_enter`; detached when dropped.
fn attach() -> anyhow::Result<Ebpf> {
    anyhow::ensure!(
        !BENCH_PROBES.is_empty(),
        "paddock-bench was built without its kernel programs (AYA_BUILD_SKIP): rebuild it \
         with `cargo xtask build`"
    );
    let mut ebpf = Ebpf::load(BENCH_PROBES).context("cannot load the bench's kernel programs")?;
    let program: &mut RawTracePoint = ebpf
        .program_mut(EMPTY)
        .with_context(|| format!("kernel program {EMPTY} is missing from the bench's object"))?
        .try_into()?;
    program.load().with_context(|| format!("cannot load {EMPTY}"))?;
    program.attach("sys_enter").with_context(|| format!("cannot attach {EMPTY} to sys_enter"))?;
    Ok(ebpf)
}

pub fn run() -> anyhow::Result<i32> {
    let _hook = attach()?;
    eprintln!("empty sys_enter hook attached; SIGTERM or SIGINT detaches it");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_object_holds_the_empty_program_only() {
        let object = aya_obj::Object::parse(BENCH_PROBES).expect("the bench object parses");
        let names: Vec<&str> = object.programs.keys().map(String::as_str).collect();
        assert_eq!(names, [EMPTY]);
    }
}
