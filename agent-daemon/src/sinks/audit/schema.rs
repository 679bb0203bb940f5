//! Opening the database: pragmas, and the schema, versioned with `PRAGMA user_version`.
//! Version 0 is an empty file; each entry of `MIGRATIONS` takes the schema one version up.
//! A file of a newer version than this build knows is refused, never touched.
use std::{collections::HashMap, path::Path};

use rusqlite::{Connection, OpenFlags, OptionalExtension as _};

use super::{AuditConfig, AuditError, AuditStore, BUSY_TIMEOUT};

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: i64 = 3;

/// `MIGRATIONS[n]` takes the schema from version `n` to `n + 1` (version 3 also moves the
/// events into chunks: `migrate`).
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2, V3];

/// Version 1. `events.seq` is AUTOINCREMENT so a seq is never reused, even after the
/// newest rows are deleted: cursors stay valid. Each index on `events` ends, implicitly,
/// with `seq` (the rowid), so `(investigation)` serves "one investigation, by seq".
pub(super) const V1: &str = "
CREATE TABLE investigations (
    run        INTEGER PRIMARY KEY AUTOINCREMENT,
    instance   INTEGER NOT NULL,
    id         TEXT NOT NULL,
    phase      TEXT NOT NULL,
    source     TEXT,
    cgroup     TEXT,
    started_ns INTEGER NOT NULL,
    ended_ns   INTEGER,
    outcome    TEXT,
    reason     TEXT,
    events     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX investigations_by_id ON investigations (id, started_ns);
CREATE INDEX investigations_by_start ON investigations (started_ns);
CREATE INDEX investigations_running ON investigations (instance) WHERE ended_ns IS NULL;
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    run           INTEGER NOT NULL,
    investigation TEXT NOT NULL,
    time_ns       INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    ppid          INTEGER NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX events_by_investigation ON events (investigation);
CREATE INDEX events_by_investigation_kind ON events (investigation, kind);
CREATE INDEX events_by_run ON events (run);
CREATE INDEX events_by_time ON events (time_ns);
";

/// Version 2: the pod (namespace, name, Job) of a Kubernetes run, and the store's identity
/// (`meta.store_id`, random, made once per file): an exporter tells this file's sequence
/// numbers from those of a file that replaced it on the same node.
pub(super) const V2: &str = "
ALTER TABLE investigations ADD COLUMN namespace TEXT;
ALTER TABLE investigations ADD COLUMN pod TEXT;
ALTER TABLE investigations ADD COLUMN job TEXT;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
";

/// Version 3: events in chunks (`chunk`), one row per run and batch, instead of one row
/// per event indexed four ways. `last_seq` is the rowid: chunks never overlap, so chunks
/// in `last_seq` order are events in `seq` order, and each index ends, implicitly, with
/// it. `meta.next_seq` is the next sequence number to give (never reused, like the
/// AUTOINCREMENT it replaces). The `events` table goes once its rows have moved.
const V3: &str = "
CREATE TABLE chunks (
    last_seq      INTEGER PRIMARY KEY,
    first_seq     INTEGER NOT NULL,
    run           INTEGER NOT NULL,
    investigation TEXT NOT NULL,
    count         INTEGER NOT NULL,
    kinds         INTEGER NOT NULL,
    min_time_ns   INTEGER NOT NULL,
    max_time_ns   INTEGER NOT NULL,
    dir           BLOB NOT NULL,
    body          BLOB NOT NULL
);
CREATE INDEX chunks_by_investigation ON chunks (investigation);
CREATE INDEX chunks_by_run ON chunks (run);
INSERT INTO meta (key, value) VALUES ('next_seq', 1 + coalesce(
    (SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0));
";

/// The write-ahead log is truncated back to this size after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// Mode 0600 for the store's file (and its WAL and shared-memory files when they exist).
fn private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(path, mode.clone())?;
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::set_permissions(&side, mode.clone()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

impl AuditStore {
    /// Open (creating it and its directory if needed) and upgrade the store at `path`.
    pub fn open(path: &Path, config: &AuditConfig) -> Result<AuditStore, AuditError> {
        AuditStore::open_resuming(path, config, &[])
    }

    /// [`AuditStore::open`] for a daemon that adopts running investigations (`resuming`:
    /// instance and id): their runs stay open; every other run left open is closed as
    /// interrupted.
    pub fn open_resuming(
        path: &Path,
        config: &AuditConfig,
        resuming: &[(u32, String)],
    ) -> Result<AuditStore, AuditError> {
        config.validate()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| AuditError::Dir { path: path.to_path_buf(), source })?;
        }
        let at = |source| AuditError::Open { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(at)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(at)?;
        // The forensic trail is the daemon's (root's) alone.
        private(path).map_err(|source| AuditError::Dir { path: path.to_path_buf(), source })?;
        let version = user_version(&conn).map_err(at)?;
        check_not_newer(path, version)?;
        if version == 0 {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .map_err(at)?;
            if tables != 0 {
                return Err(AuditError::NotAnAuditStore { path: path.to_path_buf() });
            }
            // Only takes effect before the first table is made.
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(at)?;
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(at)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(AuditError::NoWal { path: path.to_path_buf(), mode });
        }
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(at)?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT).map_err(at)?;
        if version < SCHEMA_VERSION {
            let tx = conn.transaction().map_err(at)?;
            for (to, migration) in (1..).zip(&MIGRATIONS).skip(version as usize) {
                tx.execute_batch(migration).map_err(at)?;
                if to == 3 {
                    super::migrate::events_to_chunks(&tx, path)?;
                }
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(at)?;
            tx.commit().map_err(at)?;
        }
        close_interrupted(&conn, resuming).map_err(at)?;
        let next_seq = next_seq(&conn).map_err(at)?;
        Ok(AuditStore {
            conn,
            path: path.to_path_buf(),
            config: config.clone(),
            open_runs: HashMap::new(),
            next_seq,
        })
    }

    /// Open an existing store for queries only; it must have this build's schema version.
    pub fn open_read_only(path: &Path) -> Result<AuditStore, AuditError> {
        let at = |source| AuditError::Open { path: path.to_path_buf(), source };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(at)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(at)?;
        let version = user_version(&conn).map_err(at)?;
        check_not_newer(path, version)?;
        if version < SCHEMA_VERSION {
            return Err(AuditError::OlderSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(AuditStore {
            conn,
            path: path.to_path_buf(),
            config: AuditConfig::default(),
            open_runs: HashMap::new(),
            next_seq: 0,
        })
    }
}

/// The next sequence number to give: `meta.next_seq`.
pub(super) fn next_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_seq'", [], |r| {
        r.get(0)
    })
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

fn check_not_newer(path: &Path, found: i64) -> Result<(), AuditError> {
    if found > SCHEMA_VERSION {
        return Err(AuditError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Runs a previous daemon left open (it was killed, or the machine went down) can no longer
/// end: close them as `interrupted`, at their last stored event. Only the writer calls this,
/// when it opens the store, before any run of its own exists.
fn close_interrupted(conn: &Connection, resuming: &[(u32, String)]) -> rusqlite::Result<usize> {
    // The newest open run of each adopted investigation stays open.
    let mut keep = Vec::new();
    for (instance, id) in resuming {
        let run: Option<i64> = conn
            .query_row(
                "SELECT run FROM investigations WHERE instance = ?1 AND id = ?2 \
                 AND ended_ns IS NULL ORDER BY run DESC LIMIT 1",
                rusqlite::params![instance, id],
                |r| r.get(0),
            )
            .optional()?;
        keep.extend(run);
    }
    let keep = serde_json::to_string(&keep).expect("numbers");
    let closed = conn.execute(
        "UPDATE investigations SET outcome = 'interrupted', \
             reason = 'the daemon stopped before the run ended', \
             ended_ns = COALESCE((SELECT MAX(max_time_ns) FROM chunks \
                                  WHERE chunks.run = investigations.run), started_ns) \
         WHERE ended_ns IS NULL AND run NOT IN (SELECT value FROM json_each(?1))",
        [keep],
    )?;
    if closed > 0 {
        tracing::warn!(runs = closed, "audit store: closed runs a previous daemon left open");
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma<T: rusqlite::types::FromSql>(store: &AuditStore, name: &str) -> T {
        store.conn.pragma_query_value(None, name, |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_new_store_has_the_schema_and_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.db");
        let store = AuditStore::open(&path, &AuditConfig::default()).unwrap();
        assert_eq!(pragma::<i64>(&store, "user_version"), SCHEMA_VERSION);
        assert_eq!(pragma::<String>(&store, "journal_mode"), "wal");
        assert_eq!(pragma::<i64>(&store, "synchronous"), 1, "NORMAL");
        assert_eq!(pragma::<i64>(&store, "auto_vacuum"), 2, "INCREMENTAL");
        assert_eq!(store.integrity_check().unwrap(), "ok");
        drop(store);
        // Opening again leaves it as it is.
        let store = AuditStore::open(&path, &AuditConfig::default()).unwrap();
        assert_eq!(pragma::<i64>(&store, "user_version"), SCHEMA_VERSION);
        AuditStore::open_read_only(&path).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        drop(AuditStore::open(&path, &AuditConfig::default()).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        for err in [
            AuditStore::open(&path, &AuditConfig::default()).err().unwrap(),
            AuditStore::open_read_only(&path).err().unwrap(),
        ] {
            let text = err.to_string();
            assert!(
                matches!(err, AuditError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1),
                "{text}"
            );
            assert!(text.contains(&path.display().to_string()), "{text}");
        }
    }

    #[test]
    fn a_version_1_store_is_upgraded_in_place_keeping_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(
            "INSERT INTO investigations (instance, id, phase, started_ns) \
             VALUES (1, 'inv-old', 'read-only', 5)",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        drop(conn);
        let err = AuditStore::open_read_only(&path).err().unwrap();
        assert!(matches!(err, AuditError::OlderSchema { found: 1, .. }), "{err}");
        let store = AuditStore::open(&path, &AuditConfig::default()).unwrap();
        assert_eq!(pragma::<i64>(&store, "user_version"), SCHEMA_VERSION);
        assert_eq!(store.store_id().unwrap().len(), 32);
        let run = store.run(1).unwrap();
        assert_eq!((run.id.as_str(), run.pod.as_ref()), ("inv-old", None));
    }

    #[test]
    fn other_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
        let err = AuditStore::open(&path, &AuditConfig::default()).err().unwrap().to_string();
        assert!(err.contains("not an audit store") && err.contains("other.db"), "{err}");
        let path = dir.path().join("text.db");
        std::fs::write(&path, "not a database, just some text that is long enough".repeat(50))
            .unwrap();
        let err = AuditStore::open(&path, &AuditConfig::default()).err().unwrap().to_string();
        assert!(err.contains("text.db"), "{err}");
        let err = AuditStore::open_read_only(&dir.path().join("missing.db")).err().unwrap();
        assert!(err.to_string().contains("missing.db"), "{err}");
    }

    #[test]
    fn a_bad_config_is_refused_before_any_file_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let config = AuditConfig { batch_max_events: 0, ..AuditConfig::default() };
        let err = AuditStore::open(&path, &config).err().unwrap().to_string();
        assert!(err.starts_with("audit.batch_max_events = 0"), "{err}");
        assert!(!path.exists());
    }
}
