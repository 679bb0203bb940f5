//! The JSON-lines destination: each stored event as one OpenTelemetry-named object
//! ([`super::otel`]) on one line, to a file rotated by size or to the daemon's standard
//! output.
//!
//! A file target is exactly-once across restarts: a batch is written as whole lines,
//! flushed and `fdatasync`ed before [`JsonlWriter::write`] returns, and at open the writer
//! reads back the last line (`paddock.seq`, `paddock.store_id`) so the exporter resumes
//! right after it. A crash mid-write leaves a torn last line; open cuts it off (that event
//! was not acknowledged, and is written again). Rotation is by rename, as logrotate does it
//! and as log shippers that follow a file by name expect: `events.jsonl` becomes
//! `events.jsonl.1`, `.1` becomes `.2`..., up to `keep`, and a fresh `events.jsonl` is made.
//!
//! Standard output (`path = "-"`) cannot be read back: delivery there is at least once, and
//! [`JsonlWriter::acknowledged`] is `None` at open (afterwards, what this writer wrote), so
//! the exporter starts after the position it recorded itself (`jsonl_destination`).
//! The daemon logs to standard error, so standard output carries only these lines (and an
//! alert receiver's of `kind = "stdout"`, when one is configured too). Sync code: run it on
//! a blocking thread.
use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{FileExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use serde::Deserialize;

pub use super::jsonl_config::{JsonlConfig, JsonlError};
use super::otel::{OtelRecord, write_line};
use crate::sinks::audit::{query::InvestigationRow, read::StoredEvent};

/// How far back the tail is read at a time when looking for the last line.
const TAIL_CHUNK: u64 = 64 * 1024;

/// Where the lines go.
enum Target {
    File(FileTarget),
    /// Standard output, or a test's writer: whole batches per `write_all`, flushed.
    Stream(Box<dyn Write + Send>),
}

struct FileTarget {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    /// Bytes in `file`.
    len: u64,
}

/// Writes batches of stored events as JSON lines. See the module documentation.
pub struct JsonlWriter {
    config: JsonlConfig,
    index: usize,
    target: Target,
    /// A file write failed: recover as after a crash before writing again.
    broken: bool,
    /// `export[N].path`, for errors.
    setting: String,
    /// The store and sequence number of the last line written whole.
    last: Option<(String, i64)>,
    buf: Vec<u8>,
    /// Where each line of `buf` ends.
    ends: Vec<usize>,
}

/// The fields of a line that say what it was.
#[derive(Deserialize)]
struct Mark {
    #[serde(rename = "paddock.seq")]
    seq: i64,
    #[serde(rename = "paddock.store_id")]
    store_id: String,
}

impl JsonlWriter {
    /// Open entry `index` of `[[export]]`: check its settings; for a file, create its
    /// directory and the file (0600), cut a torn last line and read back the last one.
    pub fn open(config: &JsonlConfig, index: usize) -> Result<JsonlWriter, JsonlError> {
        config.validate(index)?;
        let setting = format!("export[{index}].path");
        if config.is_stdout() {
            let out = Target::Stream(Box::new(io::stdout()));
            return Ok(JsonlWriter::with_target(config, index, out));
        }
        let path = config.path.clone();
        let io_err = |what, source| JsonlError::Io {
            setting: setting.clone(),
            path: path.clone(),
            what,
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create its directory", e))?;
        }
        let file = open_current(&path).map_err(|e| io_err("cannot open", e))?;
        let mut target = FileTarget {
            path: path.clone(),
            max_bytes: config.max_bytes,
            keep: config.keep,
            file,
            len: 0,
        };
        let (len, line) = last_line(&target.file).map_err(|e| io_err("cannot read its end", e))?;
        let size = target.file.metadata().map_err(|e| io_err("cannot read", e))?.len();
        if size != len {
            // A torn line: the batch it belonged to was never acknowledged.
            target.file.set_len(len).map_err(|e| io_err("cannot cut its torn last line", e))?;
            target.file.sync_data().map_err(|e| io_err("cannot sync", e))?;
        }
        target.len = len;
        let line = match line {
            Some(line) => Some((target.path.clone(), line)),
            None if config.keep > 0 => {
                // Empty: rotated just now, or crashed after the rotation.
                let newest = rotated(&target.path, 1);
                match File::open(&newest) {
                    Ok(file) => last_line(&file)
                        .map_err(|e| io_err("cannot read the newest rotated file", e))?
                        .1
                        .map(|line| (newest, line)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(io_err("cannot open the newest rotated file", e)),
                }
            }
            None => None,
        };
        let mut writer = JsonlWriter::with_target(config, index, Target::File(target));
        if let Some((path, line)) = line {
            let mark: Mark = serde_json::from_slice(&line).map_err(|e| JsonlError::NotOurs {
                setting,
                path,
                detail: e.to_string(),
            })?;
            writer.last = Some((mark.store_id, mark.seq));
        }
        Ok(writer)
    }

    /// A writer to `out` (standard output's behaviour: no read-back, no rotation).
    pub fn to_stream(out: Box<dyn Write + Send>, index: usize) -> JsonlWriter {
        let config = JsonlConfig::file(super::jsonl_config::STDOUT);
        JsonlWriter::with_target(&config, index, Target::Stream(out))
    }

    fn with_target(config: &JsonlConfig, index: usize, target: Target) -> JsonlWriter {
        JsonlWriter {
            config: config.clone(),
            index,
            target,
            broken: false,
            setting: format!("export[{index}].path"),
            last: None,
            buf: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// The last sequence number of store `store_id` written whole, as far as this writer
    /// knows (a file's is read back at open); `None` when none was, or for a stream.
    pub fn acknowledged(&self, store_id: &str) -> Option<i64> {
        match &self.last {
            Some((id, seq)) if id == store_id => Some(*seq),
            _ => None,
        }
    }

    /// Write `events` (of store `store_id`, in order) as whole lines, flushed and, for a
    /// file, on disk when this returns. Events at or below [`Self::acknowledged`] are
    /// skipped: a batch given twice is written once. After a failed write, give the events
    /// after `acknowledged()` again: the writer first recovers the file as after a crash
    /// (what reached it whole is kept and skipped, a torn line cut off).
    pub fn write(
        &mut self,
        events: &[StoredEvent],
        runs: &HashMap<i64, InvestigationRow>,
        node: &str,
        store_id: &str,
    ) -> Result<(), JsonlError> {
        if self.broken {
            *self = JsonlWriter::open(&self.config, self.index)?;
        }
        let after = self.acknowledged(store_id);
        self.buf.clear();
        self.ends.clear();
        let mut last_seq = None;
        for stored in events {
            if after.is_some_and(|a| stored.seq <= a) {
                continue;
            }
            let record = OtelRecord::new(stored, runs, node, store_id);
            write_line(&mut self.buf, &record)
                .map_err(|source| JsonlError::Encode { seq: stored.seq, source })?;
            self.ends.push(self.buf.len());
            last_seq = Some(stored.seq);
        }
        let Some(last_seq) = last_seq else { return Ok(()) };
        let setting = &self.setting;
        match &mut self.target {
            Target::Stream(out) => {
                out.write_all(&self.buf).and_then(|()| out.flush()).map_err(|source| {
                    JsonlError::Io {
                        setting: setting.clone(),
                        path: PathBuf::from(super::jsonl_config::STDOUT),
                        what: "cannot write",
                        source,
                    }
                })?
            }
            Target::File(target) => {
                if let Err((what, source)) = target.write_lines(&self.buf, &self.ends) {
                    self.broken = true;
                    let path = target.path.clone();
                    return Err(JsonlError::Io { setting: setting.clone(), path, what, source });
                }
            }
        }
        self.last = Some((store_id.to_owned(), last_seq));
        Ok(())
    }
}

type Failed = (&'static str, io::Error);

impl FileTarget {
    /// Append the lines of `buf` (ending at `ends`), rotating before a line that would take
    /// the file past `max_bytes` (a file holds one line at least); then sync.
    fn write_lines(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), Failed> {
        let mut start = 0;
        let mut i = 0;
        while i < ends.len() {
            // The lines from `start` that fit.
            let room = self.max_bytes.saturating_sub(self.len);
            let mut end = start;
            while i < ends.len()
                && ((ends[i] - start) as u64 <= room || (end == start && self.len == 0))
            {
                end = ends[i];
                i += 1;
            }
            if end > start {
                self.append(&buf[start..end])?;
                start = end;
            }
            if i < ends.len() {
                self.file.sync_data().map_err(|e| ("cannot sync", e))?;
                self.rotate()?;
            }
        }
        self.file.sync_data().map_err(|e| ("cannot sync", e))
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), Failed> {
        self.file.write_all(bytes).map_err(|e| ("cannot write", e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// `path.<keep-1>` to `path.<keep>`, ..., `path` to `path.1`; then a new `path`.
    fn rotate(&mut self) -> Result<(), Failed> {
        if self.keep == 0 {
            std::fs::remove_file(&self.path).map_err(|e| ("cannot remove the full file", e))?;
        } else {
            for n in (1..self.keep).rev() {
                match std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(("cannot rename a rotated file", e));
                    }
                    _ => {}
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))
                .map_err(|e| ("cannot rotate", e))?;
        }
        sync_dir(&self.path).map_err(|e| ("cannot sync its directory", e))?;
        self.file = open_current(&self.path).map_err(|e| ("cannot create", e))?;
        self.len = 0;
        sync_dir(&self.path).map_err(|e| ("cannot sync its directory", e))
    }
}

/// `path.n`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The current file, appended to, created 0600 (an existing one is made 0600 too).
fn open_current(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// The length of `file` up to its last newline (what is whole), and its last whole line
/// (without the newline), read backwards from the end.
pub fn last_line(file: &File) -> io::Result<(u64, Option<Vec<u8>>)> {
    let size = file.metadata()?.len();
    let mut start = size;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if let Some(last) = tail.iter().rposition(|&b| b == b'\n') {
            let whole = start + last as u64 + 1;
            if let Some(before) = tail[..last].iter().rposition(|&b| b == b'\n') {
                return Ok((whole, Some(tail[before + 1..last].to_vec())));
            }
            if start == 0 {
                return Ok((whole, Some(tail[..last].to_vec())));
            }
        } else if start == 0 {
            return Ok((0, None));
        }
        let chunk = TAIL_CHUNK.min(start);
        start -= chunk;
        let mut read = vec![0; chunk as usize];
        file.read_exact_at(&mut read, start)?;
        read.extend_from_slice(&tail);
        tail = read;
    }
}
