//! [`Presence`] inside one process: a map of documents to their live connections.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mdcreator_domain::DocumentId;
use mdcreator_domain::presence::{Presence, PresenceEntry, PresenceError};

/// Documents tracked before a join sweeps out the ones whose entries all expired.
const SWEEP_ABOVE: usize = 1024;

/// Live connections per document, each with its own expiry. Never fails.
#[derive(Default)]
pub struct InProcessPresence {
    documents: Mutex<HashMap<DocumentId, Connections>>,
}

/// One document's connections by id, with the instant each expires.
type Connections = HashMap<String, (PresenceEntry, Instant)>;

impl InProcessPresence {
    fn documents(&self) -> MutexGuard<'_, HashMap<DocumentId, Connections>> {
        // Nothing panics while holding this lock; if something did, the map is still consistent.
        self.documents.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Presence for InProcessPresence {
    async fn join(
        &self,
        document: DocumentId,
        entry: PresenceEntry,
        ttl_secs: u64,
    ) -> Result<(), PresenceError> {
        let now = Instant::now();
        let expires = now + Duration::from_secs(ttl_secs.max(1));
        let mut documents = self.documents();
        if documents.len() > SWEEP_ABOVE {
            documents.retain(|_, entries| {
                entries.retain(|_, (_, e)| *e > now);
                !entries.is_empty()
            });
        }
        documents
            .entry(document)
            .or_default()
            .insert(entry.connection_id.clone(), (entry, expires));
        Ok(())
    }

    async fn leave(&self, document: DocumentId, connection_id: &str) -> Result<(), PresenceError> {
        let mut documents = self.documents();
        if let Some(entries) = documents.get_mut(&document) {
            entries.remove(connection_id);
            if entries.is_empty() {
                documents.remove(&document);
            }
        }
        Ok(())
    }

    async fn list(&self, document: DocumentId) -> Result<Vec<PresenceEntry>, PresenceError> {
        let now = Instant::now();
        let mut documents = self.documents();
        let Some(entries) = documents.get_mut(&document) else {
            return Ok(Vec::new());
        };
        entries.retain(|_, (_, expires)| *expires > now);
        let mut live: Vec<PresenceEntry> = entries.values().map(|(e, _)| e.clone()).collect();
        if entries.is_empty() {
            documents.remove(&document);
        }
        live.sort_by(|a, b| (a.since, &a.connection_id).cmp(&(b.since, &b.connection_id)));
        Ok(live)
    }
}
