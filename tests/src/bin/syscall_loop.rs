//! `paddock-syscall-loop N`: call getppid(2) N times and print the nanoseconds per call.
//! The benchmark's workload: the cheapest syscall, so hook costs dominate.
use std::time::Instant;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5_000_000);
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: no arguments, cannot fail.
        unsafe { libc::getppid() };
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{ns:.2}");
}
