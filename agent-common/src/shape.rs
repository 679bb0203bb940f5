//! Path generalisation rules, one copy for both sides: the daemon generalises paths with
//! them, and the kernel hashes the generalised form of an exec or unix-socket path with them,
//! so that a baseline entry such as `/tmp/<random>/tool` is matched in the kernel exactly as
//! the daemon matches it.
//!
//! A path is generalised component by component (components are what lies between `/`):
//! 1. all digits (`/proc/4242/status`)                                   -> `<n>`
//! 2. a UUID (`8-4-4-4-12` hex digits)                                   -> `<uuid>`
//! 3. 12 or more hex digits with at least one digit (container ids)      -> `<hex>`
//! 4. below a temporary root (`/tmp/`, `/var/tmp/`, `/dev/shm/`) only, and only where the
//!    caller allows it: a name as `mktemp` and friends make them (`tmp` or `.tmp`, an optional
//!    `.`, `_` or `-`, then 6 or more letters or digits), or any name of 6 or more bytes mixing
//!    ASCII letters and digits (`job-8231`)                              -> `<random>`
//!
//! Everything is decided on bytes, so the kernel (which sees bytes) and the daemon agree on
//! every input, UTF-8 or not.
use crate::hash::{FNV_OFFSET, fnv1a_step};

pub const NUMBER: &[u8] = b"<n>";
pub const UUID: &[u8] = b"<uuid>";
pub const HEX: &[u8] = b"<hex>";
pub const RANDOM: &[u8] = b"<random>";

/// What a component generalises to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Keep,
    Number,
    Uuid,
    Hex,
    Random,
}

impl Shape {
    /// The placeholder's bytes; `None` for a component kept as it is.
    pub const fn placeholder(self) -> Option<&'static [u8]> {
        match self {
            Shape::Keep => None,
            Shape::Number => Some(NUMBER),
            Shape::Uuid => Some(UUID),
            Shape::Hex => Some(HEX),
            Shape::Random => Some(RANDOM),
        }
    }
}

/// Where a `mktemp`-style name is in its prefix: leading dots, `t`, `m`, `p`, an optional
/// separator, then the random part.
const MK_DOTS: u8 = 0;
const MK_T: u8 = 1;
const MK_M: u8 = 2;
const MK_P: u8 = 3;
const MK_REST: u8 = 4;
const MK_NO: u8 = 5;

/// A component's shape, learned one byte at a time (what both the kernel's bounded loop and
/// the daemon's iterator can do).
#[derive(Clone, Copy, Debug, Default)]
pub struct ComponentShape {
    len: u32,
    digits: u32,
    letters: u32,
    /// Every byte is a hex digit.
    all_hex: bool,
    /// Every byte so far fits `8-4-4-4-12`.
    uuid: bool,
    mk_state: u8,
    /// Bytes of the random part, and whether one of them is not a letter or digit.
    mk_rest: u32,
    mk_rest_bad: bool,
}

impl ComponentShape {
    #[inline(always)]
    pub const fn new() -> ComponentShape {
        ComponentShape {
            len: 0,
            digits: 0,
            letters: 0,
            all_hex: true,
            uuid: true,
            mk_state: MK_DOTS,
            mk_rest: 0,
            mk_rest_bad: false,
        }
    }

    #[inline(always)]
    pub fn push(&mut self, b: u8) {
        let digit = b.is_ascii_digit();
        let letter = b.is_ascii_alphabetic();
        let hex = b.is_ascii_hexdigit();
        let at = self.len;
        self.len += 1;
        self.digits += digit as u32;
        self.letters += letter as u32;
        self.all_hex &= hex;
        let hyphen_here = at == 8 || at == 13 || at == 18 || at == 23;
        self.uuid &= if hyphen_here { b == b'-' } else { hex };
        self.mk_state = match self.mk_state {
            MK_DOTS if b == b'.' => MK_DOTS,
            MK_DOTS if b == b't' => MK_T,
            MK_T if b == b'm' => MK_M,
            MK_M if b == b'p' => MK_P,
            MK_P if b == b'.' || b == b'_' || b == b'-' => MK_REST,
            MK_P | MK_REST => {
                self.mk_rest += 1;
                self.mk_rest_bad |= !(digit || letter);
                MK_REST
            }
            _ => MK_NO,
        };
    }

    /// The shape of the component pushed so far; `random` allows `<random>` (the component
    /// is below a temporary root and the caller generalises such names).
    #[inline(always)]
    pub fn finish(&self, random: bool) -> Shape {
        if self.len == 0 {
            Shape::Keep
        } else if self.digits == self.len {
            Shape::Number
        } else if self.len == 36 && self.uuid {
            Shape::Uuid
        } else if self.len >= 12 && self.all_hex && self.digits > 0 {
            Shape::Hex
        } else if random && self.looks_generated() {
            Shape::Random
        } else {
            Shape::Keep
        }
    }

    #[inline(always)]
    fn looks_generated(&self) -> bool {
        let mktemp = (self.mk_state == MK_P || self.mk_state == MK_REST)
            && self.mk_rest >= 6
            && !self.mk_rest_bad;
        mktemp || (self.len >= 6 && self.digits > 0 && self.letters > 0)
    }
}

/// The roots below which generated names become `<random>`.
pub const TEMP_ROOTS: [&[u8]; 3] = [b"/tmp/", b"/var/tmp/", b"/dev/shm/"];

/// Whether `path` starts with one of [`TEMP_ROOTS`].
#[inline(always)]
pub fn under_temp(path: &[u8]) -> bool {
    let mut r = 0;
    while r < TEMP_ROOTS.len() {
        let root = TEMP_ROOTS[r];
        let mut i = 0;
        let mut same = path.len() >= root.len();
        while same && i < root.len() {
            same = path[i] == root[i];
            i += 1;
        }
        if same {
            return true;
        }
        r += 1;
    }
    false
}

/// How a whole path is generalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// File and unix-socket paths: every rule, `<random>` for any component below a temp root.
    Files,
    /// Executables: as files, but the file's own name (the last component) never becomes
    /// `<random>`: a stray can choose a directory's name, not the learned executable's.
    Execs,
}

/// Fold the generalised form of the component whose raw bytes were hashed from `before`
/// into `raw`: `raw` when the component is kept, else `before` with the placeholder.
#[inline(always)]
fn fold_component(before: u64, raw: u64, shape: Shape) -> u64 {
    match shape.placeholder() {
        None => raw,
        Some(placeholder) => {
            let mut hash = before;
            let mut i = 0;
            while i < placeholder.len() {
                hash = fnv1a_step(hash, placeholder[i]);
                i += 1;
            }
            hash
        }
    }
}

/// The state of hashing a generalised path one byte at a time. The kernel keeps it in map
/// memory between bytes (so its verifier sees each step once); the daemon's tests use
/// [`generalised_hash`], which steps the same code.
#[derive(Clone, Copy, Debug)]
pub struct HashState {
    hash: u64,
    /// The hash up to the start of the current component.
    before: u64,
    shape: ComponentShape,
}

impl Default for HashState {
    fn default() -> Self {
        HashState::new()
    }
}

impl HashState {
    #[inline(always)]
    pub const fn new() -> HashState {
        HashState { hash: FNV_OFFSET, before: FNV_OFFSET, shape: ComponentShape::new() }
    }

    /// Fold in byte `b` (not the NUL) of a path; `temp`: the path is below a temp root.
    #[inline(always)]
    pub fn step(&mut self, b: u8, temp: bool) {
        if b == b'/' {
            self.hash = fold_component(self.before, self.hash, self.shape.finish(temp));
            self.hash = fnv1a_step(self.hash, b'/');
            self.before = self.hash;
            self.shape = ComponentShape::new();
        } else {
            self.hash = fnv1a_step(self.hash, b);
            self.shape.push(b);
        }
    }

    /// The hash, once every byte is in.
    #[inline(always)]
    pub fn finish(&self, temp: bool, rules: Rules) -> u64 {
        fold_component(self.before, self.hash, self.shape.finish(temp && rules == Rules::Files))
    }
}

/// FNV-1a (see `hash`) of the generalised form of the NUL-terminated path in `path`: equal
/// to `fnv1a` of the daemon's generalised string for the same bytes.
#[inline(always)]
pub fn generalised_hash<const N: usize>(path: &[u8; N], rules: Rules) -> u64 {
    let temp = under_temp(path);
    let mut state = HashState::new();
    let mut i = 0;
    while i < N {
        let b = path[i];
        if b == 0 {
            break;
        }
        state.step(b, temp);
        i += 1;
    }
    state.finish(temp, rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::fnv1a;

    fn shape(c: &str, random: bool) -> Shape {
        let mut s = ComponentShape::new();
        c.bytes().for_each(|b| s.push(b));
        s.finish(random)
    }

    fn buf(path: &str) -> [u8; 256] {
        let mut b = [0u8; 256];
        b[..path.len()].copy_from_slice(path.as_bytes());
        b
    }

    #[test]
    fn components_take_their_shapes() {
        assert_eq!(shape("4242", false), Shape::Number);
        assert_eq!(shape("0b6c2a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c", false), Shape::Uuid);
        assert_eq!(shape("3f2a9c8b7e6d5f4a", false), Shape::Hex);
        assert_eq!(shape("deadbeef", false), Shape::Keep, "8 hex letters: a word");
        assert_eq!(shape("abcdefabcdef", false), Shape::Keep, "hex letters only: a word");
        assert_eq!(shape("tmp.Xk3p9Q", true), Shape::Random);
        assert_eq!(shape(".tmpAbCdEf", true), Shape::Random);
        assert_eq!(shape("tmpfiles", true), Shape::Keep, "too short after tmp");
        assert_eq!(shape("tmp..abcdef", true), Shape::Keep, "one separator only");
        assert_eq!(shape("job-8231", true), Shape::Random);
        assert_eq!(shape("job-8231", false), Shape::Keep, "not below a temp root");
        assert_eq!(shape("cache", true), Shape::Keep);
        assert_eq!(shape("", true), Shape::Keep);
    }

    #[test]
    fn the_hash_is_the_hash_of_the_generalised_string() {
        for (path, rules, generalised) in [
            ("/proc/4242/status", Rules::Files, "/proc/<n>/status"),
            ("/tmp/tmp.Xk3p9Q/out.txt", Rules::Files, "/tmp/<random>/out.txt"),
            ("/tmp/tmp.Xk3p9Q/tool", Rules::Execs, "/tmp/<random>/tool"),
            ("/tmp/payload1", Rules::Execs, "/tmp/payload1"),
            ("/tmp/payload1", Rules::Files, "/tmp/<random>"),
            ("/usr/bin/ls", Rules::Execs, "/usr/bin/ls"),
            ("//a//12/", Rules::Files, "//a//<n>/"),
            ("relative/34", Rules::Files, "relative/<n>"),
            ("", Rules::Files, ""),
        ] {
            assert_eq!(
                generalised_hash(&buf(path), rules),
                fnv1a(generalised.as_bytes()),
                "{path} as {generalised}"
            );
        }
    }

    #[test]
    fn temp_roots_are_prefixes_with_their_slash() {
        assert!(under_temp(b"/tmp/x"));
        assert!(under_temp(b"/dev/shm/x"));
        assert!(!under_temp(b"/tmpx/y"));
        assert!(!under_temp(b"/tmp"));
    }
}
