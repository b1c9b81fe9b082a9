//! [`Presence`] in Redis, seen by every instance.
//!
//! One hash per document, `mdc:presence:<document>`: field = connection id, value = the JSON entry
//! with its own expiry (`expires_at_ms`). Connections of an instance that crashed are never
//! removed explicitly: their entries stop being listed once their expiry passes (and are pruned
//! then), and the whole key expires when no entry was renewed for a full TTL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::prelude::{Client, ClientLike, HashesInterface};
use fred::types::Value;
use serde::{Deserialize, Serialize};

use mdcreator_domain::presence::{Presence, PresenceEntry, PresenceError};
use mdcreator_domain::{DocumentId, UserId};

use crate::clients::fail_fast;
use crate::script::LuaScript;

/// Presence hashes in Redis; see the module docs.
#[derive(Clone)]
pub struct RedisPresence {
    client: Client,
    timeout: Duration,
}

/// The key of one document's presence hash.
pub fn presence_key(document: DocumentId) -> String {
    format!("mdc:presence:{document}")
}

/// Stores the entry and extends (never shortens) the key's expiry to the entry's.
static JOIN: std::sync::LazyLock<LuaScript> = std::sync::LazyLock::new(|| {
    LuaScript::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
",
    )
});

/// Returns the entries not yet expired at `ARGV[1]` (ms) and deletes the expired ones, in one
/// step so a renewal cannot slip in between reading and deleting.
static LIST: std::sync::LazyLock<LuaScript> = std::sync::LazyLock::new(|| {
    LuaScript::new(
        r"
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local ok, entry = pcall(cjson.decode, all[i + 1])
  local expires = ok and type(entry) == 'table' and tonumber(entry['expires_at_ms'])
  if expires and expires <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    live[#live + 1] = all[i + 1]
  end
end
return live
",
    )
});

impl RedisPresence {
    pub(crate) fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }
}

#[async_trait::async_trait]
impl Presence for RedisPresence {
    #[tracing::instrument(level = "debug", skip_all, fields(%document))]
    async fn join(
        &self,
        document: DocumentId,
        entry: PresenceEntry,
        ttl_secs: u64,
    ) -> Result<(), PresenceError> {
        let ttl_ms = ttl_secs.max(1).saturating_mul(1000);
        let stored = StoredEntry {
            expires_at_ms: Utc::now()
                .timestamp_millis()
                .saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
            connection_id: entry.connection_id,
            user_id: entry.user_id,
            display_name: entry.display_name,
            since: entry.since,
        };
        let json = serde_json::to_string(&stored).map_err(|e| unavailable(e.into()))?;
        let _: i64 = JOIN
            .run(
                &self.client,
                &fail_fast(self.timeout),
                &[&presence_key(document)],
                vec![
                    stored.connection_id.into(),
                    json.into(),
                    Value::Integer(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
                ],
            )
            .await
            .map_err(|e| unavailable(e.into()))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%document))]
    async fn leave(&self, document: DocumentId, connection_id: &str) -> Result<(), PresenceError> {
        let _: i64 = self
            .client
            .with_options(&fail_fast(self.timeout))
            .hdel(presence_key(document), connection_id)
            .await
            .map_err(|e| unavailable(e.into()))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%document))]
    async fn list(&self, document: DocumentId) -> Result<Vec<PresenceEntry>, PresenceError> {
        let now = Utc::now().timestamp_millis();
        let values: Vec<String> = LIST
            .run(
                &self.client,
                &fail_fast(self.timeout),
                &[&presence_key(document)],
                vec![Value::Integer(now)],
            )
            .await
            .map_err(|e| unavailable(e.into()))?;
        let mut entries: Vec<PresenceEntry> = values
            .iter()
            .filter_map(|v| match serde_json::from_str::<StoredEntry>(v) {
                Ok(stored) => Some(stored),
                Err(e) => {
                    // Written by some other version: skip it rather than fail the whole list.
                    tracing::debug!(error = %e, "unreadable presence entry skipped");
                    None
                }
            })
            .filter(|s| s.expires_at_ms > now)
            .map(StoredEntry::into_entry)
            .collect();
        entries.sort_by(|a, b| (a.since, &a.connection_id).cmp(&(b.since, &b.connection_id)));
        Ok(entries)
    }
}

/// The stored form: this crate's own format, independent of the domain type's layout.
#[derive(Debug, Serialize, Deserialize)]
struct StoredEntry {
    connection_id: String,
    user_id: UserId,
    display_name: String,
    since: DateTime<Utc>,
    expires_at_ms: i64,
}

impl StoredEntry {
    fn into_entry(self) -> PresenceEntry {
        PresenceEntry {
            connection_id: self.connection_id,
            user_id: self.user_id,
            display_name: self.display_name,
            since: self.since,
        }
    }
}

fn unavailable(e: anyhow::Error) -> PresenceError {
    PresenceError::Unavailable(e)
}
