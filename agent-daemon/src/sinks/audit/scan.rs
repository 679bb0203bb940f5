//! Walking chunks in sequence order: the directory of each chunk says which of its events a
//! query wants; only a chunk with one is read further and decompressed, and only the
//! events wanted are parsed.
use rusqlite::{params_from_iter, types::Value};

use super::{
    AuditError, AuditStore,
    chunk::{Entry, read_body, read_dir},
};
use crate::events::Event;

/// Which chunks to walk: SQL conditions on `chunks` (constant text; every value is in
/// `args`), and the first sequence number wanted.
pub(super) struct Walk {
    pub conditions: String,
    pub args: Vec<Value>,
    /// Events with a sequence number above this, when set.
    pub after: Option<i64>,
}

/// What the walk hands over: an event, its sequence number and run.
pub(super) struct Found {
    pub seq: i64,
    pub run: i64,
    pub event: Event,
}

impl AuditStore {
    /// Hand `take` each event of the chunks `walk` names that `want` accepts, in sequence
    /// order, until `take` says it has enough (returns `false`).
    pub(super) fn walk(
        &self,
        walk: Walk,
        want: impl Fn(&Entry) -> bool,
        mut take: impl FnMut(Found) -> bool,
    ) -> Result<(), AuditError> {
        let mut sql = format!(
            "SELECT last_seq, first_seq, run, count, dir FROM chunks WHERE {}",
            if walk.conditions.is_empty() { "1 = 1" } else { &walk.conditions }
        );
        let mut args = walk.args;
        if let Some(after) = walk.after {
            sql.push_str(" AND last_seq > ?");
            args.push(Value::Integer(after));
        }
        sql.push_str(" ORDER BY last_seq");
        let mut chunks = self.conn.prepare_cached(&sql)?;
        let mut rows = chunks.query(params_from_iter(args))?;
        let mut bodies = self.conn.prepare_cached("SELECT body FROM chunks WHERE last_seq = ?1")?;
        while let Some(row) = rows.next()? {
            let (last, first, run, count): (i64, i64, i64, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let dir = row.get_ref(4)?.as_blob().map_err(|e| AuditError::BadChunk {
                chunk: last,
                problem: format!("its directory: {e}"),
            })?;
            if last - first + 1 != count {
                return Err(AuditError::BadChunk {
                    chunk: last,
                    problem: format!("seq {first} to {last} for {count} events"),
                });
            }
            let entries = read_dir(last, dir, count)?;
            let wanted: Vec<(i64, &Entry)> = (first..)
                .zip(&entries)
                .filter(|(seq, e)| walk.after.is_none_or(|a| *seq > a) && want(e))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let body: Vec<u8> = bodies.query_row([last], |r| r.get(0))?;
            let body = read_body(last, &body, &entries)?;
            for (seq, entry) in wanted {
                let json = body.get(entry.start as usize..entry.end as usize).ok_or_else(|| {
                    AuditError::BadChunk { chunk: last, problem: format!("event {seq}") }
                })?;
                let event: Event = serde_json::from_slice(json)
                    .map_err(|source| AuditError::BadBody { seq, source })?;
                if !take(Found { seq, run, event }) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
