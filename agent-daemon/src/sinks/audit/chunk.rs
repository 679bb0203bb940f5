//! One chunk: the events of one run from one batch, stored as one row of `chunks`.
//!
//! A chunk holds events with consecutive sequence numbers, `first_seq` to `last_seq`. Two
//! columns carry them:
//! - `dir`: per event, in order, a fixed 21-byte entry (kind, time, pid, ppid, where its
//!   JSON ends in the body), uncompressed, so that a query filters by kind and time without
//!   decompressing anything, and decompresses a chunk only when one of its events is wanted;
//! - `body`: the events' JSON, one after the other, compressed with LZ4 (block format, the
//!   uncompressed size first).
//!
//! Every length and offset is checked on the way back: a damaged row is an error naming its
//! chunk, never a panic or a wrong event.
use super::{AuditError, filter::EVENT_KINDS};

/// Bytes of one directory entry: kind (1), time_ns (8), pid (4), ppid (4), body end (4).
pub const ENTRY: usize = 21;

/// What the directory says of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Index into [`EVENT_KINDS`].
    pub kind: u8,
    pub time_ns: i64,
    pub pid: u32,
    pub ppid: u32,
    /// Where its JSON starts and ends in the uncompressed body.
    pub start: u32,
    pub end: u32,
}

/// The bit of `kind` in a chunk's `kinds` mask.
pub fn kind_bit(kind: &str) -> i64 {
    EVENT_KINDS.iter().position(|k| *k == kind).map_or(0, |i| 1 << i)
}

/// The index of `kind` in [`EVENT_KINDS`].
pub fn kind_index(kind: &str) -> u8 {
    EVENT_KINDS
        .iter()
        .position(|k| *k == kind)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

/// A chunk being built: add events in order, then [`Builder::finish`].
#[derive(Default)]
pub struct Builder {
    dir: Vec<u8>,
    body: Vec<u8>,
    pub kinds: i64,
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    pub count: usize,
}

/// A chunk ready to insert.
pub struct Encoded {
    pub dir: Vec<u8>,
    pub body: Vec<u8>,
    pub kinds: i64,
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    pub count: usize,
}

impl Builder {
    pub fn push(&mut self, kind: &str, time_ns: i64, pid: u32, ppid: u32, json: &[u8]) {
        if self.count == 0 {
            (self.min_time_ns, self.max_time_ns) = (time_ns, time_ns);
        }
        self.min_time_ns = self.min_time_ns.min(time_ns);
        self.max_time_ns = self.max_time_ns.max(time_ns);
        self.kinds |= kind_bit(kind);
        self.body.extend_from_slice(json);
        let end = u32::try_from(self.body.len()).unwrap_or(u32::MAX);
        self.dir.push(kind_index(kind));
        self.dir.extend_from_slice(&time_ns.to_le_bytes());
        self.dir.extend_from_slice(&pid.to_le_bytes());
        self.dir.extend_from_slice(&ppid.to_le_bytes());
        self.dir.extend_from_slice(&end.to_le_bytes());
        self.count += 1;
    }

    pub fn finish(self) -> Encoded {
        Encoded {
            body: lz4_flex::compress_prepend_size(&self.body),
            dir: self.dir,
            kinds: self.kinds,
            min_time_ns: self.min_time_ns,
            max_time_ns: self.max_time_ns,
            count: self.count,
        }
    }
}

const INSERT: &str = "INSERT INTO chunks (last_seq, first_seq, run, investigation, count, \
     kinds, min_time_ns, max_time_ns, dir, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

impl Encoded {
    /// Store the chunk as events `first` onward of `run`; its last sequence number.
    pub fn insert(
        self,
        conn: &rusqlite::Connection,
        first: i64,
        run: i64,
        investigation: &str,
    ) -> rusqlite::Result<i64> {
        let count = i64::try_from(self.count).unwrap_or(i64::MAX);
        let last = first + count - 1;
        conn.prepare_cached(INSERT)?.execute(rusqlite::params![
            last,
            first,
            run,
            investigation,
            count,
            self.kinds,
            self.min_time_ns,
            self.max_time_ns,
            self.dir,
            self.body
        ])?;
        Ok(last)
    }
}

/// A chunk's directory, read back and checked against its `count`.
pub fn read_dir(chunk: i64, dir: &[u8], count: i64) -> Result<Vec<Entry>, AuditError> {
    let bad = |problem: String| AuditError::BadChunk { chunk, problem };
    if !dir.len().is_multiple_of(ENTRY) || i64::try_from(dir.len() / ENTRY).ok() != Some(count) {
        return Err(bad(format!("a directory of {} bytes for {count} events", dir.len())));
    }
    let mut out = Vec::with_capacity(dir.len() / ENTRY);
    let mut start = 0u32;
    for e in dir.chunks_exact(ENTRY) {
        let word = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
        let mut time = [0u8; 8];
        time.copy_from_slice(&e[1..9]);
        let end = word(17);
        if end < start || usize::from(e[0]) >= EVENT_KINDS.len() {
            return Err(bad(format!("entry {} is malformed", out.len())));
        }
        out.push(Entry {
            kind: e[0],
            time_ns: i64::from_le_bytes(time),
            pid: word(9),
            ppid: word(13),
            start,
            end,
        });
        start = end;
    }
    Ok(out)
}

/// A chunk's body, decompressed and checked against its directory.
pub fn read_body(chunk: i64, body: &[u8], entries: &[Entry]) -> Result<Vec<u8>, AuditError> {
    let bad = |problem: String| AuditError::BadChunk { chunk, problem };
    let want = entries.last().map_or(0, |e| e.end as usize);
    // The size the body says it holds is checked before anything is allocated for it.
    let said = body.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if said != Some(want) {
        return Err(bad(format!("its body holds {said:?} bytes, its directory {want}")));
    }
    lz4_flex::decompress_size_prepended(body).map_err(|e| bad(format!("its body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_reads_back_as_it_was_built() {
        let mut b = Builder::default();
        b.push("exec", 20, 7, 1, br#"{"a":1}"#);
        b.push("open", 10, 8, 7, br#"{"b":22}"#);
        let e = b.finish();
        assert_eq!((e.count, e.min_time_ns, e.max_time_ns), (2, 10, 20));
        assert_eq!(e.kinds, kind_bit("exec") | kind_bit("open"));
        let entries = read_dir(1, &e.dir, 2).unwrap();
        assert_eq!(entries[1].kind, kind_index("open"));
        assert_eq!((entries[1].pid, entries[1].ppid, entries[1].time_ns), (8, 7, 10));
        let body = read_body(1, &e.body, &entries).unwrap();
        let second = &body[entries[1].start as usize..entries[1].end as usize];
        assert_eq!(second, br#"{"b":22}"#);
    }

    #[test]
    fn kind_codes_never_move() {
        // Stored directories hold these indexes: a new kind goes at the end of the list.
        let frozen = [
            "started",
            "resumed",
            "syscall",
            "fork",
            "exec",
            "exit",
            "open",
            "file_op",
            "connect",
            "dns",
            "unix",
            "socket",
            "io_uring",
            "escape",
            "cgroup",
            "verdict",
            "baseline_capped",
            "ended",
        ];
        assert_eq!(EVENT_KINDS[..frozen.len()], frozen, "append new kinds to EVENT_KINDS");
        assert_eq!(kind_bit("verdict"), 1 << 15);
    }

    #[test]
    fn damaged_chunks_are_errors_naming_the_chunk() {
        let mut b = Builder::default();
        b.push("exec", 1, 1, 1, b"{}");
        let e = b.finish();
        let err = read_dir(9, &e.dir, 2).unwrap_err().to_string();
        assert!(err.contains("chunk 9") && err.contains("for 2 events"), "{err}");
        let err = read_dir(9, &e.dir[..20], 1).unwrap_err().to_string();
        assert!(err.contains("chunk 9"), "{err}");
        let mut dir = e.dir.clone();
        dir[0] = 200;
        assert!(read_dir(9, &dir, 1).is_err());
        let entries = read_dir(9, &e.dir, 1).unwrap();
        let mut body = e.body.clone();
        body[0] = 0xff;
        let err = read_body(9, &body, &entries).unwrap_err().to_string();
        assert!(err.contains("chunk 9") && err.contains("its body holds"), "{err}");
        let err = read_body(9, &e.body[..5], &entries).unwrap_err().to_string();
        assert!(err.contains("chunk 9"), "{err}");
    }
}
