//! `paddock`: the node agent's command line. Everything it does is in the library
//! (`lib.rs`).
fn main() {
    std::process::exit(agent_daemon::cli::main());
}
