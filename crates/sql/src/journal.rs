//! SQLite files: the Yjs update log's front, a journal file beside the database.
//!
//! A live room stores every update before relaying it, thousands of times a second across
//! rooms. As one SQLite transaction each, an append cost a `BEGIN IMMEDIATE` (the WAL's
//! shared-memory locks: `fcntl` calls), the insert and a `COMMIT` (a 4 KiB WAL frame written for
//! a 30-byte update): about 25 % of the server's CPU in the collaboration benchmark. Here an
//! append is one `write` to a file opened for appending, and a background thread folds what was
//! written into `document_updates` about once a second, in one transaction for all of it.
//!
//! **Durability** is that of the database's own commits (`synchronous=NORMAL` in WAL mode): a
//! record is in the operating system's hands when `append` returns, so it survives a crash of
//! the process, though not a power loss before it is folded and checkpointed. At open, whatever
//! the files still hold (the process died before folding them) is folded first; a record cut
//! short by the crash ends its file (each record carries its length and a CRC-32).
//!
//! **Readers** of the log (a room loading, a compaction) fold first, so they see every append
//! that returned before they started.
//!
//! **Ids** are handed out here, from the highest the document has had: read from the database
//! the first time, remembered after. Nothing else hands out ids while the journal is open: one
//! journal per database file in this process (a second store on the file shares it), and an
//! exclusive lock on `<database>-updates.lock` against other processes (which then append
//! straight to the database, see `appender`). Should an id be taken anyway when its record is
//! folded (another process appended without the journal), the record is stored under the next
//! free id instead: moved, never dropped. A record already stored with the same bytes (the
//! process died between a fold's commit and the removal of its files) is skipped. Records of a
//! document deleted meanwhile are dropped with it.
//!
//! Files: `<database>-updates.<sequence>`, one per fold period; a fold seals the current one,
//! starts the next, and removes the sealed ones once their records are committed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use uuid::Uuid;

use crate::collab::{SQLITE_INSERT, SQLITE_LAST_ID};

/// Bytes of unfolded records past which a fold starts at once.
const FOLD_PAST_BYTES: usize = 4 << 20;

/// Documents whose last id the journal remembers past a fold, at most.
const REMEMBERED_DOCUMENTS: usize = 10_000;

/// A record's header: the length of its body, then the body's CRC-32.
const HEADER: usize = 8;
/// A record's body before the update: document id, update id, time (ns since the epoch).
const BODY_PREFIX: usize = 16 + 8 + 8;
/// Longest record body read back; anything longer is a torn or foreign file.
const MAX_BODY: usize = 256 << 20;

/// Stored as it would have been by one transaction of the database.
const FOLD_INSERT: &str = "INSERT OR IGNORE INTO document_updates (document_id, id, data, created_at) \
     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM documents d \
     WHERE d.id = ?1 AND coalesce(d.yjs_merged_through, 0) < ?2)";

/// What is stored under a record's id, when its [`FOLD_INSERT`] stored nothing: no row when the
/// document is gone.
const FOLD_TAKEN: &str = "SELECT (SELECT u.data FROM document_updates u \
     WHERE u.document_id = d.id AND u.id = ?2) FROM documents d WHERE d.id = ?1";

#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    #[error("no such document")]
    NoDocument,
    #[error("the update journal cannot be written: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// One stored update.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    document: Uuid,
    id: i64,
    /// Nanoseconds since the epoch.
    at: i64,
    data: Vec<u8>,
}

/// The journal of one database file; shared by every store of this process on that file.
pub(crate) struct Journal {
    shared: Arc<Shared>,
    folder: Option<JoinHandle<()>>,
}

struct Shared {
    /// `<database>-updates`: the files' names are this plus `.<sequence>` or `.lock`.
    base: PathBuf,
    active: Mutex<Active>,
    /// Taken for a whole fold, before `active`.
    fold: Mutex<Fold>,
    /// Wakes the folding thread (with `active`).
    wake: Condvar,
    /// How long a record waits to be folded, at most.
    fold_every: Duration,
    /// Held for the journal's life: the other processes' exclusion.
    _lock: File,
}

/// The append side.
struct Active {
    file: File,
    sequence: u64,
    /// Bytes in `file`: where a failed write is cut back to.
    len: u64,
    /// Appended to `file` (or recovered) and not yet handed to a fold, in order.
    pending: Vec<Record>,
    pending_bytes: usize,
    /// The last id given to each document (valid while the journal is open, see the module).
    last_ids: HashMap<Uuid, i64>,
    /// Reads a document's last id the first time it is appended to.
    reader: Connection,
    /// A write failed and could not be cut back: the file ends in a torn record, and records
    /// after it would be lost at recovery. Appends fail until a fold starts a new file.
    torn: bool,
    /// Set when the journal closes: the folding thread stops.
    closing: bool,
    encoded: Vec<u8>,
}

/// The fold side.
struct Fold {
    conn: Connection,
    /// Records taken from `pending` whose fold has not committed yet (it failed: tried again).
    taken: Vec<Record>,
    /// Files whose records are all in `taken` or committed: removed after the next commit.
    sealed: Vec<u64>,
}

/// Journals open in this process, by canonical database path.
static OPEN: Mutex<Vec<(PathBuf, Weak<Journal>)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a holder leaves consistent data: every change below completes or is undone
    // before anything can panic (allocation aside).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("base", &self.shared.base)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// The journal of the database file at `database` (which exists): this process's, or a new
    /// one that first takes in what an earlier process left. `None` when another process holds
    /// it. The first opener's `fold_every` holds for all.
    pub(crate) fn open(
        database: &Path,
        fold_every: Duration,
    ) -> std::io::Result<Option<Arc<Journal>>> {
        let database = database.canonicalize()?;
        let mut open = lock(&OPEN);
        open.retain(|(_, journal)| journal.strong_count() > 0);
        if let Some(journal) = open
            .iter()
            .find(|(path, _)| *path == database)
            .and_then(|(_, journal)| journal.upgrade())
        {
            return Ok(Some(journal));
        }
        let Some(journal) = Journal::start(&database, fold_every)? else {
            return Ok(None);
        };
        let journal = Arc::new(journal);
        open.push((database, Arc::downgrade(&journal)));
        Ok(Some(journal))
    }

    fn start(database: &Path, fold_every: Duration) -> std::io::Result<Option<Journal>> {
        let mut base = database.as_os_str().to_owned();
        base.push("-updates");
        let base = PathBuf::from(base);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(with_suffix(&base, "lock"))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let (sealed, pending) = recover(&base)?;
        let sequence = sealed.last().map_or(0, |s| s + 1);
        let mut last_ids = HashMap::new();
        for r in &pending {
            last_ids.insert(r.document, r.id);
        }
        let pending_bytes = pending.iter().map(|r| r.data.len()).sum();
        let active = Active {
            file: create_segment(&base, sequence)?,
            sequence,
            len: 0,
            pending,
            pending_bytes,
            last_ids,
            reader: connect(database).map_err(std::io::Error::other)?,
            torn: false,
            closing: false,
            encoded: Vec::new(),
        };
        let fold = Fold {
            conn: connect(database).map_err(std::io::Error::other)?,
            taken: Vec::new(),
            sealed,
        };
        let shared = Arc::new(Shared {
            base,
            active: Mutex::new(active),
            fold: Mutex::new(fold),
            wake: Condvar::new(),
            fold_every,
            _lock: lock_file,
        });
        let folder = std::thread::Builder::new()
            .name("mdc-journal".into())
            .spawn({
                let shared = shared.clone();
                move || shared.fold_periodically()
            })?;
        Ok(Some(Journal {
            shared,
            folder: Some(folder),
        }))
    }

    /// Stores `updates` in order under the document's next ids; the last one's id. Fails, and
    /// stores nothing, when the document does not exist.
    pub(crate) fn append(
        &self,
        document: Uuid,
        updates: Vec<Vec<u8>>,
        at: DateTime<Utc>,
    ) -> Result<i64, JournalError> {
        let at = at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let mut active = lock(&self.shared.active);
        let active = &mut *active;
        if active.torn {
            return Err(JournalError::Io(std::io::Error::other(
                "an earlier write was cut short",
            )));
        }
        let mut id = match active.last_ids.get(&document) {
            Some(&id) => id,
            None => active
                .reader
                .prepare_cached(SQLITE_LAST_ID)?
                .query_row([document.as_bytes().as_slice()], |row| row.get(0))
                .optional()?
                .ok_or(JournalError::NoDocument)?,
        };
        let first = id + 1;
        active.encoded.clear();
        for data in &updates {
            id += 1;
            encode(&mut active.encoded, document, id, at, data);
        }
        if let Err(e) = active.file.write_all(&active.encoded) {
            // Cut the file back to its last whole record, or stop appending to it.
            if active.file.set_len(active.len).is_err() {
                active.torn = true;
            }
            return Err(e.into());
        }
        active.len += active.encoded.len() as u64;
        if active.encoded.capacity() > 1 << 20 {
            active.encoded = Vec::new();
        }
        for (data, id) in updates.into_iter().zip(first..) {
            active.pending_bytes += data.len();
            active.pending.push(Record {
                document,
                id,
                at,
                data,
            });
        }
        active.last_ids.insert(document, id);
        if active.pending_bytes > FOLD_PAST_BYTES {
            self.shared.wake.notify_one();
        }
        Ok(id)
    }

    /// Stores every record appended so far in the database (blocks: SQLite); how many.
    pub(crate) fn fold(&self) -> Result<usize, JournalError> {
        self.shared.fold()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        lock(&self.shared.active).closing = true;
        self.shared.wake.notify_one();
        if let Some(folder) = self.folder.take() {
            // It folds once more before it ends.
            let _ = folder.join();
        }
        // Everything folded: the file being written is empty and goes too.
        let active = lock(&self.shared.active);
        if active.pending.is_empty() && active.len == 0 && !active.torn {
            std::fs::remove_file(segment_path(&self.shared.base, active.sequence)).ok();
        }
    }
}

impl Shared {
    fn fold_periodically(&self) {
        loop {
            let closing = {
                let active = lock(&self.active);
                let (active, _) = self
                    .wake
                    .wait_timeout_while(active, self.fold_every, |a| {
                        !a.closing && a.pending_bytes <= FOLD_PAST_BYTES
                    })
                    .unwrap_or_else(PoisonError::into_inner);
                active.closing
            };
            if let Err(e) = self.fold() {
                tracing::warn!(error = %e, "cannot fold the update journal into the database");
            }
            if closing {
                return;
            }
        }
    }

    fn fold(&self) -> Result<usize, JournalError> {
        let mut fold = lock(&self.fold);
        let fold = &mut *fold;
        {
            let mut active = lock(&self.active);
            if !active.pending.is_empty() || active.torn {
                // Seal the file: its records are in `pending`, and from now on in `taken`.
                let next = create_segment(&self.base, active.sequence + 1)?;
                let sealed = std::mem::replace(&mut active.file, next);
                drop(sealed);
                fold.sealed.push(active.sequence);
                active.sequence += 1;
                active.len = 0;
                active.torn = false;
                active.pending_bytes = 0;
                let pending = std::mem::take(&mut active.pending);
                fold.taken.extend(pending);
            }
        }
        if fold.taken.is_empty() && fold.sealed.is_empty() {
            return Ok(0);
        }
        let moved = store(&mut fold.conn, &fold.taken)?;
        let n = fold.taken.len();
        fold.taken = Vec::new();
        for sequence in fold.sealed.drain(..) {
            if let Err(e) = std::fs::remove_file(segment_path(&self.base, sequence)) {
                // Its records are stored: at the next start they are found there and skipped.
                tracing::warn!(error = %e, sequence, "cannot remove a folded journal file");
            }
        }
        let mut active = lock(&self.active);
        for (document, id) in moved {
            let last = active.last_ids.entry(document).or_insert(id);
            *last = (*last).max(id);
        }
        if active.last_ids.len() > REMEMBERED_DOCUMENTS {
            // Forget the documents with nothing unfolded: their ids are all in the database.
            let keep: std::collections::HashSet<Uuid> =
                active.pending.iter().map(|r| r.document).collect();
            active
                .last_ids
                .retain(|document, _| keep.contains(document));
        }
        Ok(n)
    }
}

/// Stores `records` in one transaction; the documents whose records had to move to another id,
/// with the highest id given.
fn store(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<Vec<(Uuid, i64)>> {
    let txn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut moved: Vec<(Uuid, i64)> = Vec::new();
    {
        let mut insert = txn.prepare_cached(FOLD_INSERT)?;
        for r in records {
            let document = r.document.as_bytes().as_slice();
            let at =
                DateTime::from_timestamp_nanos(r.at).to_rfc3339_opts(SecondsFormat::AutoSi, false);
            if insert.execute((document, r.id, r.data.as_slice(), at.as_str()))? == 1 {
                continue;
            }
            let taken: Option<Option<Vec<u8>>> = txn
                .prepare_cached(FOLD_TAKEN)?
                .query_row((document, r.id), |row| row.get(0))
                .optional()?;
            match taken {
                // The document is gone, and its log with it.
                None => continue,
                // Stored by an earlier fold whose files outlived it.
                Some(Some(data)) if data == r.data => continue,
                // The id is taken, or below what a compaction merged: the next free one.
                Some(_) => {}
            }
            let last: i64 = txn
                .prepare_cached(SQLITE_LAST_ID)?
                .query_row([document], |row| row.get(0))?;
            txn.prepare_cached(SQLITE_INSERT)?.execute((
                document,
                last + 1,
                r.data.as_slice(),
                at.as_str(),
            ))?;
            match moved.iter_mut().find(|(d, _)| *d == r.document) {
                Some(entry) => entry.1 = last + 1,
                None => moved.push((r.document, last + 1)),
            }
        }
    }
    txn.commit()?;
    Ok(moved)
}

fn connect(database: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A fold waits for other writers as the pool's connections do.
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
    )?;
    Ok(conn)
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut path = base.as_os_str().to_owned();
    path.push(".");
    path.push(suffix);
    PathBuf::from(path)
}

fn segment_path(base: &Path, sequence: u64) -> PathBuf {
    with_suffix(base, &format!("{sequence:020}"))
}

fn create_segment(base: &Path, sequence: u64) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(base, sequence))
}

fn encode(out: &mut Vec<u8>, document: Uuid, id: i64, at: i64, data: &[u8]) {
    let body_len = BODY_PREFIX + data.len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(document.as_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// The records of one file, up to the first that is cut short or damaged.
fn decode(mut bytes: &[u8]) -> Vec<Record> {
    let mut records = Vec::new();
    while bytes.len() >= HEADER {
        let (header, rest) = bytes.split_at(HEADER);
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if !(BODY_PREFIX..=MAX_BODY).contains(&len) || rest.len() < len {
            break;
        }
        let (body, rest) = rest.split_at(len);
        if crc32fast::hash(body) != crc {
            break;
        }
        let (document, body) = body.split_at(16);
        let (id, body) = body.split_at(8);
        let (at, data) = body.split_at(8);
        let word = |b: &[u8]| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        records.push(Record {
            document: Uuid::from_slice(document).unwrap_or_default(),
            id: word(id),
            at: word(at),
            data: data.to_vec(),
        });
        bytes = rest;
    }
    records
}

/// The files an earlier process left (by sequence) and their records, in order.
fn recover(base: &Path) -> std::io::Result<(Vec<u64>, Vec<Record>)> {
    let dir = match base.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = format!(
        "{}.",
        base.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut sequences: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(sequence) = name
            .strip_prefix(&prefix)
            .filter(|s| s.len() == 20)
            .and_then(|s| s.parse().ok())
        {
            sequences.push(sequence);
        }
    }
    sequences.sort_unstable();
    let mut records = Vec::new();
    for &sequence in &sequences {
        let bytes = std::fs::read(segment_path(base, sequence))?;
        let found = decode(&bytes);
        let whole: usize = found
            .iter()
            .map(|r| HEADER + BODY_PREFIX + r.data.len())
            .sum();
        if whole != bytes.len() {
            tracing::warn!(
                sequence,
                ignored = bytes.len() - whole,
                "the update journal ends in a record cut short"
            );
        }
        records.extend(found);
    }
    Ok((sequences, records))
}

#[cfg(test)]
mod tests;
