//! The yrs side of a room: documents with UTF-16 offsets (as Yjs counts), guarded decoding and
//! applying, seeding from Markdown, compaction, and REST text turned into a minimal edit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use similar::{Algorithm, DiffOp};
use yrs::updates::decoder::Decode;
use yrs::{
    ClientID, Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact,
    Update,
};

/// The shared text every client edits.
pub const CONTENT: &str = "content";

/// The client id of seed updates. Every instance seeding the same Markdown produces the very
/// same bytes, which Yjs integrates once, so two instances opening a new document at the same
/// time do not duplicate its text. 2^53 − 2: outside the 32-bit range Yjs draws its ids from.
const SEED_CLIENT: u64 = (1 << 53) - 2;

/// A fresh document that counts text positions in UTF-16 units, like Yjs.
pub fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// Why a guarded decode or apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the update does not decode: {0}")]
    Decode(String),
    #[error("the update does not apply: {0}")]
    Apply(String),
    /// yrs panicked: the document may be inconsistent and is reloaded from storage.
    #[error("the CRDT library panicked")]
    Panicked,
}

/// Runs `f`, turning a panic into [`ApplyError::Panicked`].
pub fn guarded<T>(f: impl FnOnce() -> Result<T, ApplyError>) -> Result<T, ApplyError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(ApplyError::Panicked),
    }
}

/// Decodes and applies a v1 update (checked beforehand) inside the guard. Returns `false` when
/// the update was empty (nothing to store or relay).
pub fn apply_update(doc: &Doc, update: &[u8]) -> Result<bool, ApplyError> {
    guarded(|| {
        #[cfg(test)]
        let poisoned = test_panics::is_poisoned(update);
        let update = Update::decode_v1(update).map_err(|e| ApplyError::Decode(e.to_string()))?;
        if update.is_empty() {
            return Ok(false);
        }
        let mut txn = doc.transact_mut();
        txn.apply_update(update)
            .map_err(|e| ApplyError::Apply(e.to_string()))?;
        #[cfg(test)]
        if poisoned {
            // After applying, like a yrs bug would: the document is left changed.
            panic!("test hook: yrs panicked while applying an update");
        }
        Ok(true)
    })
}

/// Unit tests only: updates that make [`apply_update`] panic, to test recovery from a panic in
/// yrs. Not compiled into any other build.
#[cfg(test)]
pub(crate) mod test_panics {
    use std::sync::Mutex;

    static POISONED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    /// Applying exactly these bytes panics from now on.
    pub(crate) fn poison(update: &[u8]) {
        POISONED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(update.to_vec());
    }

    pub(crate) fn is_poisoned(update: &[u8]) -> bool {
        POISONED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|u| u == update)
    }
}

/// The update that creates `content` as the initial text (see [`SEED_CLIENT`]).
pub fn seed_update(content: &str) -> Vec<u8> {
    let doc = Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::with_client_id(ClientID::new(SEED_CLIENT))
    });
    let text = doc.get_or_insert_text(CONTENT);
    let mut txn = doc.transact_mut();
    text.insert(&mut txn, 0, content);
    txn.encode_update_v1()
}

/// The whole document as one update.
pub fn full_state(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

pub fn state_vector(doc: &Doc) -> StateVector {
    doc.transact().state_vector()
}

/// What `doc` has beyond `since`.
pub fn diff_since(doc: &Doc, since: &StateVector) -> Vec<u8> {
    doc.transact().encode_state_as_update_v1(since)
}

pub fn text_of(doc: &Doc) -> String {
    let text = doc.get_or_insert_text(CONTENT);
    let txn = doc.transact();
    text.get_string(&txn)
}

/// A document loaded from a stored state and updates; updates that fail are skipped (logged).
pub fn load(state: Option<&[u8]>, updates: &[Vec<u8>]) -> Result<Doc, ApplyError> {
    let doc = new_doc();
    if let Some(state) = state.filter(|s| !s.is_empty()) {
        apply_stored(&doc, state)?;
    }
    for update in updates {
        apply_stored(&doc, update)?;
    }
    Ok(doc)
}

/// Compaction: the stored state and updates loaded into a document and re-encoded whole
/// (merging thousands of updates with `merge_updates_v1` grows badly).
pub fn merge(state: Option<Vec<u8>>, updates: Vec<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
    let doc = load(state.as_deref(), &updates).map_err(|e| anyhow::anyhow!(e))?;
    Ok(full_state(&doc))
}

fn apply_stored(doc: &Doc, update: &[u8]) -> Result<(), ApplyError> {
    // Stored bytes passed the frame checks once; check again, storage is not trusted blindly.
    if crate::frame::check_update(update).is_err() {
        tracing::warn!("skipping a stored update that fails the frame checks");
        return Ok(());
    }
    match apply_update(doc, update) {
        Ok(_) => Ok(()),
        Err(ApplyError::Panicked) => Err(ApplyError::Panicked),
        Err(e) => {
            tracing::warn!(error = %e, "skipping a stored update");
            Ok(())
        }
    }
}

/// Longest a text diff may search before settling for a coarser (still correct) edit.
const DIFF_DEADLINE: Duration = Duration::from_millis(500);

/// Edits `Y.Text('content')` into `new_text` with a minimal character diff, positions in UTF-16
/// units. Returns the update, or `None` when the text is already equal.
pub fn replace_text(doc: &Doc, new_text: &str) -> Result<Option<Vec<u8>>, ApplyError> {
    guarded(|| {
        let text: TextRef = doc.get_or_insert_text(CONTENT);
        let mut txn = doc.transact_mut();
        let old = text.get_string(&txn);
        if old == new_text {
            return Ok(None);
        }
        let old_chars: Vec<char> = old.chars().collect();
        let new_chars: Vec<char> = new_text.chars().collect();
        let diff = similar::TextDiff::configure()
            .algorithm(Algorithm::Myers)
            .timeout(DIFF_DEADLINE)
            .diff_chars(old.as_str(), new_text);
        let utf16 = |chars: &[char]| chars.iter().map(|c| c.len_utf16() as u32).sum::<u32>();
        let mut pos: u32 = 0;
        for op in diff.ops() {
            match *op {
                DiffOp::Equal { old_index, len, .. } => {
                    pos += utf16(&old_chars[old_index..old_index + len]);
                }
                DiffOp::Delete {
                    old_index, old_len, ..
                } => {
                    text.remove_range(
                        &mut txn,
                        pos,
                        utf16(&old_chars[old_index..old_index + old_len]),
                    );
                }
                DiffOp::Insert {
                    new_index, new_len, ..
                } => {
                    let s: String = new_chars[new_index..new_index + new_len].iter().collect();
                    text.insert(&mut txn, pos, &s);
                    pos += utf16(&new_chars[new_index..new_index + new_len]);
                }
                DiffOp::Replace {
                    old_index,
                    old_len,
                    new_index,
                    new_len,
                } => {
                    text.remove_range(
                        &mut txn,
                        pos,
                        utf16(&old_chars[old_index..old_index + old_len]),
                    );
                    let s: String = new_chars[new_index..new_index + new_len].iter().collect();
                    text.insert(&mut txn, pos, &s);
                    pos += utf16(&new_chars[new_index..new_index + new_len]);
                }
            }
        }
        Ok(Some(txn.encode_update_v1()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_replacement_is_minimal_and_counts_utf16() {
        let doc = new_doc();
        apply_update(&doc, &seed_update("héllo 👋 world")).unwrap();
        let u = replace_text(&doc, "héllo 👋 brave world!")
            .unwrap()
            .unwrap();
        assert_eq!(text_of(&doc), "héllo 👋 brave world!");
        // Applied elsewhere, the edit lands on the same text.
        let other = new_doc();
        apply_update(&other, &seed_update("héllo 👋 world")).unwrap();
        apply_update(&other, &u).unwrap();
        assert_eq!(text_of(&other), "héllo 👋 brave world!");
        assert!(
            u.len() < 64,
            "minimal edit, not a rewrite: {} bytes",
            u.len()
        );
        assert!(
            replace_text(&doc, "héllo 👋 brave world!")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn seeds_are_identical_so_two_instances_do_not_duplicate_text() {
        let doc = new_doc();
        apply_update(&doc, &seed_update("# Title\n")).unwrap();
        apply_update(&doc, &seed_update("# Title\n")).unwrap();
        assert_eq!(text_of(&doc), "# Title\n");
    }

    #[test]
    fn merge_reencodes_state_and_updates() {
        let a = new_doc();
        let seed = seed_update("abc");
        apply_update(&a, &seed).unwrap();
        let u1 = replace_text(&a, "abcd").unwrap().unwrap();
        let u2 = replace_text(&a, "xabcd").unwrap().unwrap();
        let merged = merge(Some(seed), vec![u1, u2]).unwrap();
        let b = load(Some(&merged), &[]).unwrap();
        assert_eq!(text_of(&b), "xabcd");
    }
}
