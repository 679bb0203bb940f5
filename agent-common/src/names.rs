//! Map and program names, as the kernel object spells them.

/// The version of what the programs and the daemon share beyond the maps' sizes: the
/// layout of every map key and value and of every ring-buffer record, and what their fields
/// mean. Bump it with any such change. Pinned maps of another version are never adopted or
/// read by a daemon: it makes new ones and rebuilds what it can (see the daemon's
/// `kernel::pins`).
pub const LAYOUT_VERSION: u32 = 2;

pub mod maps {
    pub const CONFIG: &str = "PADDOCK_CONFIG";
    pub const TRACKED: &str = "PADDOCK_TRACKED";
    pub const FAST: &str = "PADDOCK_FAST";
    pub const TASKS: &str = "PADDOCK_TASKS";
    pub const TASKS_FAST: &str = "PADDOCK_TASKS_FAST";
    pub const CGROUP_PATHS: &str = "PADDOCK_CGROUP_PATHS";
    pub const SLOTS: &str = "PADDOCK_SLOTS";
    pub const SYSCALL_COUNTS: &str = "PADDOCK_SYSCALL_COUNTS";
    pub const EGRESS: &str = "PADDOCK_EGRESS";
    pub const READS: &str = "PADDOCK_READS";
    pub const EXEC_ARGS: &str = "PADDOCK_EXEC_ARGS";
    pub const OPEN_ARGS: &str = "PADDOCK_OPEN_ARGS";
    pub const TAILS: &str = "PADDOCK_TAILS";
    pub const RATE: &str = "PADDOCK_RATE";
    pub const ALLOWED_PATHS: &str = "PADDOCK_ALLOWED_PATHS";
    pub const ALLOWED_SOCKETS: &str = "PADDOCK_ALLOWED_SOCKETS";
    pub const EVENTS: &str = "PADDOCK_EVENTS";
    pub const LOST: &str = "PADDOCK_LOST";
    pub const PHASE_POLICY: &str = "PADDOCK_PHASE_POLICY";
    pub const ALLOWED_EGRESS: &str = "PADDOCK_ALLOWED_EGRESS";
    pub const ALLOWED_NAMES: &str = "PADDOCK_ALLOWED_NAMES";
    pub const DNS_BINDINGS: &str = "PADDOCK_DNS_BINDINGS";
    pub const DNS_PENDING: &str = "PADDOCK_DNS_PENDING";
    pub const DNS_SCRATCH: &str = "PADDOCK_DNS_SCRATCH";
    pub const DNS_DENIED_CGROUPS: &str = "PADDOCK_DNS_DENIED_CGROUPS";
    pub const DNS_DENIED_ANY: &str = "PADDOCK_DNS_DENIED_ANY";
    /// Outside the layout version: see [`crate::tracking::DOOMED_SLOTS`].
    pub const DOOMED: &str = "PADDOCK_DOOMED";
}

pub mod programs {
    pub const SYS_ENTER: &str = "paddock_sys_enter";
    pub const PROCESS_FORK: &str = "paddock_process_fork";
    pub const PROCESS_EXEC: &str = "paddock_process_exec";
    pub const PROCESS_EXIT: &str = "paddock_process_exit";
    pub const CGROUP_MKDIR: &str = "paddock_cgroup_mkdir";
    pub const CGROUP_ATTACH: &str = "paddock_cgroup_attach";
    pub const CONNECT4: &str = "paddock_connect4";
    pub const CONNECT6: &str = "paddock_connect6";
    pub const SENDMSG4: &str = "paddock_sendmsg4";
    pub const SENDMSG6: &str = "paddock_sendmsg6";
    pub const SKB_EGRESS: &str = "paddock_skb_egress";
    /// DNS answers to tracked investigations (`cgroup_skb/ingress`).
    pub const SKB_INGRESS: &str = "paddock_skb_ingress";
    pub const SOCK_CREATE: &str = "paddock_sock_create";
    /// Loaded by the daemon itself (aya 0.14 knows no unix attach types).
    pub const CONNECT_UNIX: &str = "paddock_connect_unix";
    pub const SENDMSG_UNIX: &str = "paddock_sendmsg_unix";
    pub const OPEN_EXIT: &str = "paddock_open_exit";
    pub const URING_SUBMIT: &str = "paddock_uring_submit";
    /// Tail-called by `sys_enter` for path operations (`tails::TAIL_PATH_OP`).
    pub const PATH_OP: &str = "paddock_path_op";
}

/// Slots of the `TAILS` program array.
pub mod tails {
    pub const TAIL_PATH_OP: u32 = 0;
}
