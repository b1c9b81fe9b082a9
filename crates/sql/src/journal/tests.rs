//! The journal against a real SQLite file holding the two tables it writes (the columns it
//! touches, as the migrations define them).

use std::time::Instant;

use super::*;

const FOLD_EVERY: Duration = Duration::from_secs(1);

struct Db {
    path: PathBuf,
    conn: Connection,
}

impl Db {
    fn new() -> Db {
        let path = std::env::temp_dir().join(format!("mdc-journal-{}.db", Uuid::new_v4().simple()));
        let conn = connect_new(&path);
        conn.execute_batch(
            "CREATE TABLE documents (id BLOB PRIMARY KEY, yjs_merged_through INTEGER); \
             CREATE TABLE document_updates ( \
               document_id BLOB NOT NULL REFERENCES documents (id) ON DELETE CASCADE, \
               id INTEGER NOT NULL, data BLOB NOT NULL, created_at TEXT NOT NULL, \
               PRIMARY KEY (document_id, id)) WITHOUT ROWID;",
        )
        .unwrap();
        Db { path, conn }
    }

    fn document(&self) -> Uuid {
        let id = Uuid::new_v4();
        self.conn
            .execute(
                "INSERT INTO documents (id) VALUES (?1)",
                [id.as_bytes().as_slice()],
            )
            .unwrap();
        id
    }

    /// As a compaction that merged the document's updates up to `id` leaves it.
    fn merged_through(&self, document: Uuid, id: i64) {
        self.conn
            .execute(
                "UPDATE documents SET yjs_merged_through = ?2 WHERE id = ?1",
                (document.as_bytes().as_slice(), id),
            )
            .unwrap();
    }

    /// `(id, data)` of the document's stored updates, in order.
    fn rows(&self, document: Uuid) -> Vec<(i64, Vec<u8>)> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, data FROM document_updates WHERE document_id = ?1 ORDER BY id")
            .unwrap();
        stmt.query_map([document.as_bytes().as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn base(&self) -> PathBuf {
        let mut base = self.path.canonicalize().unwrap().into_os_string();
        base.push("-updates");
        PathBuf::from(base)
    }

    /// The journal's data files on disk.
    fn segments(&self) -> Vec<u64> {
        recover(&self.base()).unwrap().0
    }

    /// A file as a process that died before folding it would have left it.
    fn leave(&self, sequence: u64, records: &[Record], tail: &[u8]) {
        let mut bytes = Vec::new();
        for r in records {
            encode(&mut bytes, r.document, r.id, r.at, &r.data);
        }
        bytes.extend_from_slice(tail);
        std::fs::write(segment_path(&self.base(), sequence), bytes).unwrap();
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let base = self.base();
        for sequence in self.segments() {
            std::fs::remove_file(segment_path(&base, sequence)).ok();
        }
        std::fs::remove_file(with_suffix(&base, "lock")).ok();
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.path.clone().into_os_string();
            file.push(suffix);
            std::fs::remove_file(file).ok();
        }
    }
}

fn connect_new(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
        .unwrap();
    conn
}

fn record(document: Uuid, id: i64, data: &[u8]) -> Record {
    record_at(document, id, 1_764_000_000_000_000_000, data)
}

fn open(db: &Db) -> Arc<Journal> {
    Journal::open(&db.path, FOLD_EVERY)
        .unwrap()
        .expect("the journal is free")
}

#[test]
fn appends_get_the_next_ids_and_are_stored_with_their_time_at_the_fold() {
    let db = Db::new();
    let (a, b) = (db.document(), db.document());
    let journal = open(&db);
    let at = Utc::now();
    assert_eq!(journal.append(a, vec![vec![1], vec![2]], at).unwrap(), 2);
    assert_eq!(journal.append(b, vec![vec![9]], at).unwrap(), 1);
    assert_eq!(journal.append(a, vec![vec![3]], at).unwrap(), 3);
    assert_eq!(journal.fold().unwrap(), 4);
    assert_eq!(db.rows(a), vec![(1, vec![1]), (2, vec![2]), (3, vec![3])]);
    assert_eq!(db.rows(b), vec![(1, vec![9])]);
    let stored: String = db
        .conn
        .query_row("SELECT created_at FROM document_updates LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        stored,
        at.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        "the time as the pool stores it"
    );
    // Ids go on from the folded ones; the fold's files are gone.
    assert_eq!(journal.append(a, vec![vec![4]], at).unwrap(), 4);
    assert_eq!(journal.fold().unwrap(), 1);
    assert_eq!(db.rows(a).last(), Some(&(4, vec![4])));
    assert_eq!(db.segments().len(), 1, "only the file being written stays");
    assert_eq!(journal.fold().unwrap(), 0);
}

#[test]
fn ids_go_on_from_what_the_database_had_and_a_compaction_merged() {
    let db = Db::new();
    let document = db.document();
    db.merged_through(document, 7);
    let journal = open(&db);
    assert_eq!(
        journal.append(document, vec![vec![1]], Utc::now()).unwrap(),
        8
    );
    journal.fold().unwrap();
    assert_eq!(db.rows(document), vec![(8, vec![1])]);
}

#[test]
fn a_missing_document_fails_and_nothing_is_written() {
    let db = Db::new();
    let journal = open(&db);
    let err = journal.append(Uuid::new_v4(), vec![vec![5]], Utc::now());
    assert!(matches!(err, Err(JournalError::NoDocument)), "{err:?}");
    let sequence = db.segments()[0];
    assert_eq!(
        std::fs::metadata(segment_path(&db.base(), sequence))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(journal.fold().unwrap(), 0);
}

#[test]
fn what_a_dead_process_left_is_folded_up_to_a_record_cut_short() {
    let db = Db::new();
    let document = db.document();
    db.leave(
        3,
        &[record(document, 1, &[1]), record(document, 2, &[2])],
        &[],
    );
    // The crash cut the last record of the newer file short.
    let mut torn = Vec::new();
    encode(&mut torn, document, 4, 0, &[4, 4, 4]);
    torn.truncate(torn.len() - 2);
    db.leave(4, &[record(document, 3, &[3])], &torn);

    let journal = open(&db);
    assert_eq!(
        journal.append(document, vec![vec![5]], Utc::now()).unwrap(),
        4,
        "ids go on after the recovered records"
    );
    assert_eq!(journal.fold().unwrap(), 4);
    assert_eq!(
        db.rows(document),
        vec![(1, vec![1]), (2, vec![2]), (3, vec![3]), (4, vec![5])]
    );
    assert_eq!(db.segments(), vec![6], "the recovered files are removed");
}

#[test]
fn a_damaged_record_ends_its_file() {
    let document = Uuid::new_v4();
    let mut bytes = Vec::new();
    encode(&mut bytes, document, 1, 0, &[1]);
    let first = bytes.len();
    encode(&mut bytes, document, 2, 0, &[2]);
    encode(&mut bytes, document, 3, 0, &[3]);
    bytes[first + HEADER + BODY_PREFIX] ^= 0xff;
    assert_eq!(decode(&bytes), vec![record_at(document, 1, 0, &[1])]);
    // A length past the end, or absurd, ends it too.
    let mut absurd = bytes[..first].to_vec();
    absurd.extend_from_slice(&u32::MAX.to_le_bytes());
    absurd.extend_from_slice(&[0; 64]);
    assert_eq!(decode(&absurd).len(), 1);
    assert!(decode(&bytes[..first - 1]).is_empty());
    assert!(decode(&[]).is_empty());
}

fn record_at(document: Uuid, id: i64, at: i64, data: &[u8]) -> Record {
    Record {
        document,
        id,
        at,
        data: data.to_vec(),
    }
}

#[test]
fn a_record_already_stored_is_skipped_and_a_taken_id_moves_the_record() {
    let db = Db::new();
    let document = db.document();
    let at = "2026-11-26T00:00:00Z";
    // Folded already (the process died before removing the file), and an id another process
    // took meanwhile.
    for (id, data) in [(1, [1]), (2, [7])] {
        db.conn
            .execute(
                "INSERT INTO document_updates VALUES (?1, ?2, ?3, ?4)",
                (document.as_bytes().as_slice(), id, data.as_slice(), at),
            )
            .unwrap();
    }
    db.leave(
        0,
        &[record(document, 1, &[1]), record(document, 2, &[2])],
        &[],
    );
    let journal = open(&db);
    journal.fold().unwrap();
    assert_eq!(
        db.rows(document),
        vec![(1, vec![1]), (2, vec![7]), (3, vec![2])],
        "nothing lost, nothing twice"
    );
    // The journal hands out ids past the moved record.
    assert_eq!(
        journal.append(document, vec![vec![4]], Utc::now()).unwrap(),
        4
    );
}

#[test]
fn records_below_a_compaction_are_kept_under_new_ids() {
    let db = Db::new();
    let document = db.document();
    db.merged_through(document, 5);
    db.leave(0, &[record(document, 3, &[3])], &[]);
    let journal = open(&db);
    journal.fold().unwrap();
    assert_eq!(db.rows(document), vec![(6, vec![3])]);
}

#[test]
fn records_of_a_deleted_document_go_with_it() {
    let db = Db::new();
    let (gone, kept) = (db.document(), db.document());
    let journal = open(&db);
    journal.append(gone, vec![vec![1]], Utc::now()).unwrap();
    journal.append(kept, vec![vec![2]], Utc::now()).unwrap();
    db.conn
        .execute(
            "DELETE FROM documents WHERE id = ?1",
            [gone.as_bytes().as_slice()],
        )
        .unwrap();
    assert_eq!(journal.fold().unwrap(), 2);
    assert!(db.rows(gone).is_empty());
    assert_eq!(db.rows(kept), vec![(1, vec![2])]);
}

#[test]
fn one_journal_per_file_in_this_process_and_none_when_another_holds_it() {
    let db = Db::new();
    let document = db.document();
    let first = open(&db);
    let second = open(&db);
    assert!(Arc::ptr_eq(&first, &second));
    first.append(document, vec![vec![1]], Utc::now()).unwrap();
    assert_eq!(
        second.append(document, vec![vec![2]], Utc::now()).unwrap(),
        2
    );
    drop((first, second));

    // Another process's lock (a lock on another open file description conflicts the same way).
    let other = db.path.clone();
    let lock_file = File::create(with_suffix(&db.base(), "lock")).unwrap();
    lock_file.try_lock().unwrap();
    assert!(Journal::open(&other, FOLD_EVERY).unwrap().is_none());
    drop(lock_file);
    assert!(Journal::open(&other, FOLD_EVERY).unwrap().is_some());
}

#[test]
fn closing_folds_everything() {
    let db = Db::new();
    let document = db.document();
    let journal = open(&db);
    journal
        .append(document, vec![vec![1], vec![2]], Utc::now())
        .unwrap();
    drop(journal);
    assert_eq!(db.rows(document), vec![(1, vec![1]), (2, vec![2])]);
    assert!(db.segments().is_empty(), "no file left behind");
}

#[test]
fn appends_are_folded_in_the_background() {
    let db = Db::new();
    let document = db.document();
    let journal = open(&db);
    journal.append(document, vec![vec![1]], Utc::now()).unwrap();
    let deadline = Instant::now() + FOLD_EVERY * 10;
    while db.rows(document).is_empty() {
        assert!(Instant::now() < deadline, "never folded");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(db.rows(document), vec![(1, vec![1])]);
}
