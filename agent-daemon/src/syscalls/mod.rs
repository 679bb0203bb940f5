//! Syscall identities and their names (see `agent_common::tracking::syscall_id`):
//! - native calls by name (`openat`), or `syscall_<nr>` where the table has none;
//! - 32-bit calls made through `int 0x80` (or by a 32-bit process) as `ia32:<name>`, read
//!   with the 32-bit table (`int 0x80` number 5 is `ia32:open`, not `fstat`);
//! - every x32 call as `x32`, and every number outside the tables as `out_of_table`.
//!
//! The tables are x86_64's; on other architectures every number prints as `syscall_<nr>`.
mod ia32;
mod x86_64;

use std::borrow::Cow;

use agent_common::tracking::{
    COUNT_IA32, COUNT_OUT_OF_TABLE, COUNT_X32, IA32_BASE, IA32_COUNT, ID_OUT_OF_TABLE, ID_X32,
    MAX_SYSCALLS,
};
use ia32::IA32;
use x86_64::X86_64;

const IA32_PREFIX: &str = "ia32:";
pub const X32: &str = "x32";
pub const OUT_OF_TABLE: &str = "out_of_table";

fn table_name(table: &'static [&'static str], nr: u32) -> Option<&'static str> {
    table.get(nr as usize).copied().filter(|n| cfg!(target_arch = "x86_64") && !n.is_empty())
}

fn table_number(table: &[&str], name: &str) -> Option<u32> {
    if !cfg!(target_arch = "x86_64") || name.is_empty() {
        return None;
    }
    table.iter().position(|n| *n == name).map(|nr| nr as u32)
}

/// The name of syscall identity `id`.
pub fn name(id: u32) -> Cow<'static, str> {
    match id {
        ID_X32 => X32.into(),
        ID_OUT_OF_TABLE => OUT_OF_TABLE.into(),
        id if id >= IA32_BASE => {
            let nr = id - IA32_BASE;
            match table_name(&IA32, nr) {
                Some(name) => format!("{IA32_PREFIX}{name}").into(),
                None => format!("{IA32_PREFIX}syscall_{nr}").into(),
            }
        }
        nr => match table_name(&X86_64, nr) {
            Some(name) => name.into(),
            None => format!("syscall_{nr}").into(),
        },
    }
}

/// The identity of the syscall called `name` (as [`name`] writes it).
pub fn id(name: &str) -> Option<u32> {
    match name {
        X32 => return Some(ID_X32),
        OUT_OF_TABLE => return Some(ID_OUT_OF_TABLE),
        _ => {}
    }
    if let Some(rest) = name.strip_prefix(IA32_PREFIX) {
        let nr = match rest.strip_prefix("syscall_") {
            Some(n) => n.parse().ok()?,
            None => table_number(&IA32, rest)?,
        };
        return (nr < IA32_COUNT).then_some(IA32_BASE + nr);
    }
    let nr = match name.strip_prefix("syscall_") {
        Some(n) => n.parse().ok()?,
        None => table_number(&X86_64, name)?,
    };
    (nr < COUNT_OUT_OF_TABLE).then_some(nr)
}

/// What the kernel's per-slot counter at `index` counts (see `tracking::count_index`).
pub fn count_name(index: u32) -> Cow<'static, str> {
    match index {
        COUNT_IA32 => "ia32:*".into(),
        COUNT_X32 => X32.into(),
        COUNT_OUT_OF_TABLE => OUT_OF_TABLE.into(),
        nr if nr < MAX_SYSCALLS => name(nr),
        other => format!("syscall_{other}").into(),
    }
}

/// 32-bit calls that open or make files by path: their paths are not observed (the
/// kernel's syscall exit tracepoints skip 32-bit calls, and their arguments sit in other
/// registers), so in `flag` and `enforce` they are deviations whatever the baseline says.
pub const IA32_UNJUDGED: [&str; 5] =
    ["ia32:open", "ia32:creat", "ia32:openat", "ia32:openat2", "ia32:open_by_handle_at"];

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn well_known_numbers() {
        assert_eq!(name(0), "read");
        assert_eq!(name(59), "execve");
        assert_eq!(name(110), "getppid");
        assert_eq!(name(257), "openat");
        assert_eq!(name(437), "openat2");
        assert_eq!(name(500), "syscall_500");
        assert_eq!(id("getppid"), Some(110));
        assert_eq!(id("syscall_500"), Some(500));
        assert_eq!(id("syscall_509"), None, "a number past the native range");
        assert_eq!(id("no_such_call"), None);
    }

    #[test]
    fn the_32_bit_table_is_its_own() {
        assert_eq!(name(IA32_BASE + 5), "ia32:open", "not fstat");
        assert_eq!(name(IA32_BASE + 11), "ia32:execve");
        assert_eq!(name(IA32_BASE + 20), "ia32:getpid");
        assert_eq!(name(IA32_BASE + 295), "ia32:openat");
        assert_eq!(name(IA32_BASE + 437), "ia32:openat2", "numbers from 424 up are shared");
        assert_eq!(id("ia32:open"), Some(IA32_BASE + 5));
        assert_eq!(id("ia32:syscall_500"), Some(IA32_BASE + 500));
        assert_eq!(id("ia32:fstat64"), Some(IA32_BASE + 197));
        assert_eq!(name(ID_X32), "x32");
        assert_eq!(name(ID_OUT_OF_TABLE), "out_of_table");
        assert_eq!(id("x32"), Some(ID_X32));
        for unjudged in IA32_UNJUDGED {
            assert!(id(unjudged).is_some(), "{unjudged}");
        }
    }

    #[test]
    fn names_and_identities_agree() {
        for nr in 0..X86_64.len() as u32 {
            assert_eq!(id(&name(nr)), Some(nr), "{nr}");
        }
        for nr in 0..IA32.len() as u32 {
            assert_eq!(id(&name(IA32_BASE + nr)), Some(IA32_BASE + nr), "ia32 {nr}");
        }
        assert_eq!(count_name(COUNT_IA32), "ia32:*");
        assert_eq!(count_name(110), "getppid");
    }
}
