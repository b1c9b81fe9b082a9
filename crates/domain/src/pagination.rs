//! Cursor pagination shared by every list: `?limit=` (1..=200, default 50) and an opaque cursor.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::values::Invalid;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// One page of a list; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A checked page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub fn parse(raw: Option<i64>) -> Result<Self, Invalid> {
        match raw {
            None => Ok(Self(DEFAULT_LIMIT)),
            Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => Ok(Self(n as u32)),
            Some(_) => Err(Invalid::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self(DEFAULT_LIMIT)
    }
}

/// Encodes a position as an opaque cursor.
pub fn encode_cursor<T: Serialize>(position: &T) -> String {
    let json = serde_json::to_vec(position).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor made by [`encode_cursor`]; anything else is a validation error.
pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, Invalid> {
    let bad = || Invalid::new("cursor", "is not a cursor this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// Splits `limit + 1` fetched rows into a page, with a cursor made from the last kept row.
pub fn page_from<T>(mut rows: Vec<T>, limit: Limit, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit.get() as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert_eq!(Limit::parse(None).unwrap().get(), 50);
        assert_eq!(Limit::parse(Some(200)).unwrap().get(), 200);
        for bad in [0, -1, 201, i64::MAX, i64::MIN] {
            assert!(Limit::parse(Some(bad)).is_err());
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor(&(7i64, "x"));
        assert_eq!(
            decode_cursor::<(i64, String)>(&c).unwrap(),
            (7, "x".to_owned())
        );
        assert!(decode_cursor::<(i64, String)>("!!!").is_err());
        assert!(decode_cursor::<(i64, String)>(&encode_cursor(&"str")).is_err());
    }

    #[test]
    fn pages_cut_at_the_limit() {
        let limit = Limit::parse(Some(2)).unwrap();
        let p = page_from(vec![1, 2, 3], limit, |n| n.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let p = page_from(vec![1, 2], limit, |n| n.to_string());
        assert_eq!(p.next_cursor, None);
    }
}
