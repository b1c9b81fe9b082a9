//! The pull cursor: opaque to clients, versioned, base64url of a small JSON object
//! `{v: 1, ws: {<workspace id>: <last seq delivered>}, sh: {<document id>: <version delivered>}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pagination::{decode_cursor, encode_cursor};
use crate::values::Invalid;
use crate::{DocumentId, WorkspaceId};

const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    v: u32,
    /// Per workspace the caller belongs to: the last `seq` delivered. A workspace is absent until
    /// its first page was delivered (it then arrives whole) and after its tombstone was.
    #[serde(default)]
    pub ws: BTreeMap<WorkspaceId, i64>,
    /// Documents shared to the caller alone (the `shared` pseudo-workspace): the version
    /// delivered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sh: BTreeMap<DocumentId, i64>,
}

impl Cursor {
    /// The empty cursor: everything.
    pub fn start() -> Self {
        Self {
            v: VERSION,
            ..Self::default()
        }
    }

    /// An absent or empty cursor is [`Cursor::start`]; anything not issued by this server (or
    /// of another format version) is invalid.
    pub fn decode(raw: Option<&str>) -> Result<Self, Invalid> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Self::start());
        };
        let cursor: Cursor = decode_cursor(raw)?;
        if cursor.v != VERSION || cursor.ws.values().any(|s| *s < 0) {
            return Err(Invalid::new("cursor", "is not a cursor this server issued"));
        }
        Ok(cursor)
    }

    pub fn encode(&self) -> String {
        encode_cursor(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_foreign_input() {
        let mut c = Cursor::start();
        c.ws.insert(WorkspaceId::new(), 42);
        c.sh.insert(DocumentId::new(), 3);
        assert_eq!(Cursor::decode(Some(&c.encode())).unwrap(), c);
        assert_eq!(Cursor::decode(None).unwrap(), Cursor::start());
        assert_eq!(Cursor::decode(Some("")).unwrap(), Cursor::start());
        assert!(Cursor::decode(Some("nope")).is_err());
        let other_version =
            crate::pagination::encode_cursor(&serde_json::json!({"v": 2, "ws": {}}));
        assert!(Cursor::decode(Some(&other_version)).is_err());
    }
}
