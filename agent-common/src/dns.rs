//! DNS, as both sides need it: the parser the kernel runs over a query or an answer of a
//! tracked investigation (one bounded step at a time, so a `bpf_loop` callback can run it
//! and the daemon's tests can run the very same code), the name hashes both sides agree on,
//! and the keys and values of the maps that bind answered addresses to names.
//!
//! A name is hashed as FNV-1a over its dotted text, lowercase, without the trailing dot
//! (`api.example.com`); its wildcard hash is that of `*` followed by everything from the
//! first dot (`*.example.com`). A baseline pattern `*.example.com` hashes to the same value,
//! so the kernel matches one label of wildcard with two lookups and no string work.
use crate::hash::{FNV_OFFSET, fnv1a_step};

/// Bytes of a DNS message the kernel copies and parses; records beyond are not seen.
pub const DNS_BUF: usize = 1024;
/// Bytes of a name as text (a DNS name is at most 253, plus the NUL).
pub const DNS_NAME_LEN: usize = 256;
/// Addresses one answer binds and reports.
pub const DNS_MAX_ADDRS: usize = 8;
/// Answer records the parser walks.
pub const DNS_MAX_ANSWERS: u32 = 32;
/// Steps one message may take: a byte of the question name each, a label or a record of
/// the answers each.
pub const DNS_MAX_STEPS: u32 = 512;

/// `DnsRecord::op`
pub const DNS_QUERY: u32 = 1;
pub const DNS_ANSWER: u32 = 2;

/// `DnsRecord::flags`: the message could not be parsed as a DNS message with one question
/// (a query of an enforcing phase that cannot be read is refused: fail closed).
pub const DNS_MALFORMED: u32 = 1;
/// More addresses were answered than the record holds (all were bound, up to the buffer).
pub const DNS_MORE: u32 = 2;
/// An answer to no query this socket sent to this server (or one already answered):
/// reported, nothing bound.
pub const DNS_UNSOLICITED: u32 = 4;
/// The message was longer than `DNS_BUF`: records beyond were not read.
pub const DNS_CUT: u32 = 8;
/// Over TCP.
pub const DNS_TCP: u32 = 16;

/// RR types.
pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;

/// A DNS query or answer of a tracked investigation, as the kernel read it from the packet.
/// `name` is the question, dotted, lowercase; `addrs` the A and AAAA answers (IPv4
/// mapped), `ttls` their TTLs as answered (the binding uses them clamped).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsRecord {
    pub header: crate::event::Header,
    pub op: u32,
    pub action: u32,
    pub flags: u32,
    pub qtype: u16,
    pub rcode: u8,
    pub count: u8,
    /// The server's port (the destination of a query, the source of an answer).
    pub server_port: u16,
    pub id: u16,
    pub _pad: u32,
    /// The server's address, IPv4 mapped.
    pub server: [u8; 16],
    pub name: [u8; DNS_NAME_LEN],
    pub addrs: [[u8; 16]; DNS_MAX_ADDRS],
    pub ttls: [u32; DNS_MAX_ADDRS],
}

/// `PADDOCK_DNS_BINDINGS` key: an answered address, for one investigation instance.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BindingKey {
    pub instance: u32,
    pub _pad: u32,
    /// IPv4 mapped.
    pub addr: [u8; 16],
}

/// `PADDOCK_DNS_BINDINGS` value: the name last answered with that address, until when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    /// `bpf_ktime_get_boot_ns()` after which the binding no longer holds.
    pub expires_ns: u64,
    pub name_hash: u64,
    pub wild_hash: u64,
}

/// `PADDOCK_DNS_PENDING` key: a query in flight, by the socket that sent it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PendingKey {
    pub cookie: u64,
    pub id: u16,
    pub _pad: [u8; 6],
}

/// `PADDOCK_DNS_PENDING` value: whom it was sent to and what it asked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub name_hash: u64,
    pub instance: u32,
    pub port: u16,
    pub _pad: u16,
    pub server: [u8; 16],
}

/// `NameKey::kind`: a name an egress rule allows (with protocol and port), or a name the
/// phase may ask its resolver for.
pub const NAME_EGRESS: u8 = 0;
pub const NAME_QUERY: u8 = 1;

/// `PADDOCK_ALLOWED_NAMES` key. Port 0 (network order) is any port; protocol and port are
/// 0 for `NAME_QUERY`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey {
    pub phase: u8,
    pub kind: u8,
    pub protocol: u8,
    pub _pad: u8,
    pub port: [u8; 2],
    pub _pad2: [u8; 2],
    pub hash: u64,
}

/// FNV-1a of a name as both sides hash it: lowercase, no trailing dot. A pattern
/// `*.example.com` is hashed the same way, so it equals a name's wildcard hash.
pub const fn name_hash(name: &[u8]) -> u64 {
    hash_from(FNV_OFFSET, name, 0)
}

/// The hash of `*` followed by `name` from its first dot: what a one-label wildcard
/// pattern covering `name` hashes to. A name of one label has no such pattern (the hash
/// of `*` alone, which no valid pattern has).
pub const fn wildcard_hash(name: &[u8]) -> u64 {
    let mut dot = 0;
    while dot < name.len() && name[dot] != b'.' {
        dot += 1;
    }
    hash_from(fnv1a_step(FNV_OFFSET, b'*'), name, dot)
}

/// `hash` continued over `name` from `start`, lowercase, up to a NUL or a trailing dot.
const fn hash_from(mut hash: u64, name: &[u8], start: usize) -> u64 {
    let mut n = name.len();
    if n > 0 && name[n - 1] == b'.' {
        n -= 1;
    }
    let mut i = start;
    while i < n {
        if name[i] == 0 {
            break;
        }
        hash = fnv1a_step(hash, lower(name[i]));
        i += 1;
    }
    hash
}

#[inline(always)]
const fn lower(b: u8) -> u8 {
    if b.is_ascii_uppercase() { b + 32 } else { b }
}

/// Bytes a label may hold: letters, digits, `-` and `_`. Anything else (a dot inside a
/// label, spaces, binary) makes the message malformed: its text would not say what was
/// asked.
#[inline(always)]
const fn label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

const STAGE_HEADER: u32 = 0;
const STAGE_QNAME: u32 = 1;
const STAGE_QFIXED: u32 = 2;
const STAGE_RRNAME: u32 = 3;
const STAGE_RRFIXED: u32 = 4;
const STAGE_DONE: u32 = 5;

/// Parsing one message, one bounded step at a time ([`DnsParser::step`]). Plain integers
/// only, so it lives in a map value beside the message.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsParser {
    /// Bytes of the message in the buffer (at most `DNS_BUF`).
    pub len: u32,
    pub pos: u32,
    pub stage: u32,
    /// Bytes left of the label being read; `u32::MAX` before a label starts.
    pub label_left: u32,
    pub name_len: u32,
    /// Answer records left to read (0 for a query: its answers are not read).
    pub answers_left: u32,
    /// `DNS_MALFORMED` and friends.
    pub flags: u32,
    /// Whether the first label of the question has ended (the wildcard hash starts there).
    pub first_done: u32,
    pub id: u16,
    pub qtype: u16,
    /// 1 for a response (QR set).
    pub response: u8,
    pub rcode: u8,
    pub count: u8,
    pub _pad: u8,
    /// Addresses found (`count` of them, at most `DNS_MAX_ADDRS`), IPv4 mapped.
    pub hash: u64,
    pub wild: u64,
    pub addrs: [[u8; 16]; DNS_MAX_ADDRS],
    pub ttls: [u32; DNS_MAX_ADDRS],
}

/// What [`DnsParser::step`] left behind.
impl DnsParser {
    /// A parser for a message of `len` bytes (more than `DNS_BUF` is read as cut).
    pub const fn new(len: u32) -> DnsParser {
        let cut = len as usize > DNS_BUF;
        DnsParser {
            len: if cut { DNS_BUF as u32 } else { len },
            pos: 0,
            stage: STAGE_HEADER,
            label_left: u32::MAX,
            name_len: 0,
            answers_left: 0,
            flags: if cut { DNS_CUT } else { 0 },
            first_done: 0,
            id: 0,
            qtype: 0,
            response: 0,
            rcode: 0,
            count: 0,
            _pad: 0,
            hash: FNV_OFFSET,
            wild: 0,
            addrs: [[0; 16]; DNS_MAX_ADDRS],
            ttls: [0; DNS_MAX_ADDRS],
        }
    }

    /// Whether parsing has ended (done, or malformed).
    pub const fn done(&self) -> bool {
        self.stage == STAGE_DONE
    }

    /// Whether the question was read in full.
    pub const fn question_read(&self) -> bool {
        self.stage >= STAGE_RRNAME && self.flags & DNS_MALFORMED == 0
    }

    #[inline(always)]
    fn byte(&self, buf: &[u8; DNS_BUF], at: u32) -> u8 {
        buf[at as usize & (DNS_BUF - 1)]
    }

    #[inline(always)]
    fn u16_at(&self, buf: &[u8; DNS_BUF], at: u32) -> u16 {
        ((self.byte(buf, at) as u16) << 8) | self.byte(buf, at + 1) as u16
    }

    #[inline(always)]
    fn fail(&mut self) -> bool {
        self.flags |= DNS_MALFORMED;
        self.stage = STAGE_DONE;
        false
    }

    #[inline(always)]
    fn finish(&mut self) -> bool {
        self.stage = STAGE_DONE;
        false
    }

    /// One step over `buf` (the message from its first byte), writing the question's text
    /// into `name` (NUL-terminated). Returns false once parsing has ended.
    #[inline(always)]
    pub fn step(&mut self, buf: &[u8; DNS_BUF], name: &mut [u8; DNS_NAME_LEN]) -> bool {
        match self.stage {
            STAGE_HEADER => {
                if self.len < 12 {
                    return self.fail();
                }
                self.id = self.u16_at(buf, 0);
                let flags = self.u16_at(buf, 2);
                self.response = (flags >> 15) as u8;
                self.rcode = (flags & 0xf) as u8;
                if self.u16_at(buf, 4) != 1 {
                    return self.fail();
                }
                let answers = self.u16_at(buf, 6) as u32;
                self.answers_left = if self.response != 0 {
                    if answers < DNS_MAX_ANSWERS { answers } else { DNS_MAX_ANSWERS }
                } else {
                    0
                };
                self.pos = 12;
                self.stage = STAGE_QNAME;
                true
            }
            STAGE_QNAME => self.qname_byte(buf, name),
            STAGE_QFIXED => {
                if self.pos + 4 > self.len {
                    return self.fail();
                }
                self.qtype = self.u16_at(buf, self.pos);
                self.pos += 4;
                self.stage = STAGE_RRNAME;
                if self.answers_left == 0 {
                    return self.finish();
                }
                true
            }
            STAGE_RRNAME => {
                if self.pos >= self.len {
                    return self.finish();
                }
                let b = self.byte(buf, self.pos);
                if b == 0 {
                    self.pos += 1;
                    self.stage = STAGE_RRFIXED;
                } else if b & 0xc0 == 0xc0 {
                    self.pos += 2;
                    self.stage = STAGE_RRFIXED;
                } else if b & 0xc0 != 0 {
                    return self.finish();
                } else {
                    self.pos += 1 + b as u32;
                }
                true
            }
            STAGE_RRFIXED => self.record(buf),
            _ => false,
        }
    }

    #[inline(always)]
    fn qname_byte(&mut self, buf: &[u8; DNS_BUF], name: &mut [u8; DNS_NAME_LEN]) -> bool {
        if self.pos >= self.len {
            return self.fail();
        }
        let b = self.byte(buf, self.pos);
        self.pos += 1;
        if self.label_left == 0 || self.label_left == u32::MAX {
            // A length byte.
            if b == 0 {
                if self.name_len == 0 {
                    // The root: no name to judge.
                    return self.fail();
                }
                name[self.name_len as usize & (DNS_NAME_LEN - 1)] = 0;
                if self.first_done == 0 {
                    self.wild = fnv1a_step(FNV_OFFSET, b'*');
                }
                self.stage = STAGE_QFIXED;
                return true;
            }
            if b & 0xc0 != 0 {
                return self.fail();
            }
            if self.name_len > 0 {
                if self.first_done == 0 {
                    self.first_done = 1;
                    self.wild = fnv1a_step(FNV_OFFSET, b'*');
                }
                self.push(b'.', name);
            }
            self.label_left = b as u32;
            return self.name_len < (DNS_NAME_LEN - 2) as u32 || self.fail();
        }
        if !label_byte(b) {
            return self.fail();
        }
        self.push(lower(b), name);
        self.label_left -= 1;
        self.name_len < (DNS_NAME_LEN - 2) as u32 || self.fail()
    }

    #[inline(always)]
    fn push(&mut self, b: u8, name: &mut [u8; DNS_NAME_LEN]) {
        name[self.name_len as usize & (DNS_NAME_LEN - 1)] = b;
        self.name_len += 1;
        self.hash = fnv1a_step(self.hash, b);
        if self.first_done != 0 {
            self.wild = fnv1a_step(self.wild, b);
        }
    }

    #[inline(always)]
    fn record(&mut self, buf: &[u8; DNS_BUF]) -> bool {
        if self.pos + 10 > self.len {
            return self.finish();
        }
        let rtype = self.u16_at(buf, self.pos);
        let ttl =
            ((self.u16_at(buf, self.pos + 4) as u32) << 16) | self.u16_at(buf, self.pos + 6) as u32;
        let rdlen = self.u16_at(buf, self.pos + 8) as u32;
        let data = self.pos + 10;
        if data + rdlen > self.len {
            return self.finish();
        }
        let wanted = (rtype == TYPE_A && rdlen == 4) || (rtype == TYPE_AAAA && rdlen == 16);
        if wanted {
            if (self.count as usize) < DNS_MAX_ADDRS {
                let slot = self.count as usize & (DNS_MAX_ADDRS - 1);
                let mut addr = [0u8; 16];
                if rtype == TYPE_A {
                    addr[10] = 0xff;
                    addr[11] = 0xff;
                    let mut i = 0;
                    while i < 4 {
                        addr[12 + i] = self.byte(buf, data + i as u32);
                        i += 1;
                    }
                } else {
                    let mut i = 0;
                    while i < 16 {
                        addr[i] = self.byte(buf, data + i as u32);
                        i += 1;
                    }
                }
                self.addrs[slot] = addr;
                self.ttls[slot] = ttl;
                self.count += 1;
            } else {
                self.flags |= DNS_MORE;
            }
        }
        self.pos = data + rdlen;
        self.answers_left -= 1;
        if self.answers_left == 0 {
            return self.finish();
        }
        self.stage = STAGE_RRNAME;
        true
    }

    /// Run to the end (the daemon's tests, and anything not bound by a verifier).
    pub fn run(&mut self, buf: &[u8; DNS_BUF], name: &mut [u8; DNS_NAME_LEN]) {
        let mut steps = 0;
        while steps < DNS_MAX_STEPS && self.step(buf, name) {
            steps += 1;
        }
        if !self.done() {
            self.flags |= DNS_CUT;
            self.stage = STAGE_DONE;
        }
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
