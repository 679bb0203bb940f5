//! The host as paddock reads and writes it, below every layer that uses it: the cgroup v2
//! hierarchy (trees, `cgroup.procs`, `cgroup.events`, ids) and the process table
//! (`/proc/<pid>`, pidfds). No other module of paddock is imported here.
pub mod cgroups;
pub mod processes;
