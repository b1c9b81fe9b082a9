//! Checks an incoming y-protocols frame before yrs decodes anything of it.
//!
//! Some hostile inputs make a CRDT decoder abort the process rather than panic: a huge declared
//! length allocates before the bytes are there, deep nesting overflows the stack, and arithmetic
//! on unchecked clocks or 53-bit client ids trips debug assertions. This walk reads the whole
//! frame with yrs' own varint decoding, but bounds every declared count by the bytes that remain,
//! every nesting level by [`MAX_DEPTH`], every clock by `u32` and every client id by 53 bits, and
//! refuses the legacy or exotic contents a Markdown editor never sends. A frame that passes is
//! safe to hand to yrs; one that fails closes only its own connection.

use yrs::encoding::read::{Cursor, Read};

/// Deepest nesting of `Any` values or JSON accepted anywhere in a frame.
pub const MAX_DEPTH: usize = 64;

/// Largest JSON text of one awareness state (cursor, name, colour…), in bytes.
pub const MAX_AWARENESS_STATE: usize = 64 * 1024;

/// What a checked frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Sync step 1: the payload is an encoded state vector.
    SyncStep1,
    /// Sync step 2: the payload is an update (v1).
    SyncStep2,
    /// Sync update: the payload is an update (v1).
    Update,
    /// The payload is an encoded awareness update.
    Awareness,
    /// No payload.
    QueryAwareness,
}

/// A frame that passed the checks, with the byte range of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub kind: FrameKind,
    pub payload: (usize, usize),
}

impl Checked {
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.payload.0..self.payload.1]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame ends inside a value at byte {0}")]
    Truncated(usize),
    #[error("malformed variable-length integer at byte {0}")]
    BadVarint(usize),
    #[error("unknown message type {0}")]
    UnknownMessage(u64),
    #[error("unknown sync message type {0}")]
    UnknownSync(u64),
    #[error("a count of {count} at byte {at} cannot fit in the {remaining} bytes left")]
    CountTooLarge {
        count: u64,
        remaining: usize,
        at: usize,
    },
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("a string is not valid UTF-8")]
    Utf8,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("{0} unexpected bytes after the message")]
    Trailing(usize),
}

/// Checks one complete frame (exactly one message, as `y-websocket` sends them).
pub fn check(frame: &[u8]) -> Result<Checked, FrameError> {
    let mut r = Reader::new(frame);
    let checked = match r.var_u64()? {
        0 => match r.var_u64()? {
            0 => {
                let (start, end) = r.buf_range()?;
                check_state_vector(&frame[start..end]).map_err(|e| shift(e, start))?;
                Checked {
                    kind: FrameKind::SyncStep1,
                    payload: (start, end),
                }
            }
            t @ (1 | 2) => {
                let (start, end) = r.buf_range()?;
                check_update(&frame[start..end]).map_err(|e| shift(e, start))?;
                Checked {
                    kind: if t == 1 {
                        FrameKind::SyncStep2
                    } else {
                        FrameKind::Update
                    },
                    payload: (start, end),
                }
            }
            t => return Err(FrameError::UnknownSync(t)),
        },
        1 => {
            let (start, end) = r.buf_range()?;
            check_awareness(&frame[start..end]).map_err(|e| shift(e, start))?;
            Checked {
                kind: FrameKind::Awareness,
                payload: (start, end),
            }
        }
        3 => Checked {
            kind: FrameKind::QueryAwareness,
            payload: (r.pos, r.pos),
        },
        t => return Err(FrameError::UnknownMessage(t)),
    };
    r.finish()?;
    Ok(checked)
}

/// Checks an encoded state vector (the payload of sync step 1).
pub fn check_state_vector(bytes: &[u8]) -> Result<(), FrameError> {
    let mut r = Reader::new(bytes);
    let n = r.count(2)?;
    for _ in 0..n {
        r.client()?;
        r.var_u32()?;
    }
    r.finish()
}

/// Checks a v1 update: structs per client, then the delete set.
pub fn check_update(bytes: &[u8]) -> Result<(), FrameError> {
    let mut r = Reader::new(bytes);
    let clients = r.count(3)?;
    for _ in 0..clients {
        let structs = r.count(1)?;
        r.client()?;
        let mut clock = u64::from(r.var_u32()?);
        for _ in 0..structs {
            clock += check_struct(&mut r)?;
            if clock > u64::from(u32::MAX) {
                return Err(FrameError::Invalid("a clock runs past 2^32"));
            }
        }
    }
    let deleted = r.count(2)?;
    for _ in 0..deleted {
        r.client()?;
        let ranges = r.count(2)?;
        for _ in 0..ranges {
            let clock = u64::from(r.var_u32()?);
            let len = u64::from(r.var_u32()?);
            if clock + len > u64::from(u32::MAX) {
                return Err(FrameError::Invalid("a deleted range runs past 2^32"));
            }
        }
    }
    r.finish()
}

/// Checks an encoded awareness update: each state is bounded JSON, `null` for a removal.
pub fn check_awareness(bytes: &[u8]) -> Result<(), FrameError> {
    let mut r = Reader::new(bytes);
    let n = r.count(3)?;
    for _ in 0..n {
        r.client()?;
        r.var_u32()?;
        let json = r.string()?;
        if json.len() > MAX_AWARENESS_STATE {
            return Err(FrameError::Invalid("an awareness state is too large"));
        }
        check_json(json)?;
    }
    r.finish()
}

const GC: u8 = 0;
const DELETED: u8 = 1;
const JSON: u8 = 2;
const BINARY: u8 = 3;
const STRING: u8 = 4;
const EMBED: u8 = 5;
const FORMAT: u8 = 6;
const TYPE: u8 = 7;
const ANY: u8 = 8;
const DOC: u8 = 9;
const SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

/// One struct of an update; returns its length in clock units.
fn check_struct(r: &mut Reader<'_>) -> Result<u64, FrameError> {
    let info = r.u8()?;
    if info == SKIP || info == GC {
        let len = r.var_u32()?;
        if len == 0 {
            return Err(FrameError::Invalid("an empty block"));
        }
        return Ok(u64::from(len));
    }
    let content = info & 0b1_1111;
    if matches!(content, GC | SKIP) || content > SKIP {
        return Err(FrameError::Invalid("unknown struct type"));
    }
    if info & HAS_ORIGIN != 0 {
        r.client()?;
        r.var_u32()?;
    }
    if info & HAS_RIGHT_ORIGIN != 0 {
        r.client()?;
        r.var_u32()?;
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        // The parent: a root type's name, or the id of the item holding the type.
        if r.var_u32()? == 1 {
            r.string()?;
        } else {
            r.client()?;
            r.var_u32()?;
        }
        if info & HAS_PARENT_SUB != 0 {
            r.string()?;
        }
    }
    match content {
        DELETED => Ok(u64::from(r.var_u32()?)),
        BINARY => {
            r.buf_range()?;
            Ok(1)
        }
        STRING => Ok(r.string()?.encode_utf16().count() as u64),
        EMBED => {
            check_json(r.string()?)?;
            Ok(1)
        }
        FORMAT => {
            r.string()?;
            check_json(r.string()?)?;
            Ok(1)
        }
        TYPE => {
            match r.u8()? {
                // array, map, text, XML fragment, XML text, undefined
                0 | 1 | 2 | 4 | 6 | 15 => {}
                // XML element: its tag name
                3 => {
                    r.string()?;
                }
                // XML hooks, weak links and sub-documents: yrs and Yjs disagree on their
                // encoding or they pull in other documents; a Markdown editor sends none.
                _ => return Err(FrameError::Invalid("unsupported shared type")),
            }
            Ok(1)
        }
        ANY => {
            let n = r.count(1)?;
            for _ in 0..n {
                check_any(r, 1)?;
            }
            Ok(n)
        }
        // Legacy JSON content (yrs and Yjs read different counts) and sub-documents.
        JSON | DOC => Err(FrameError::Invalid("unsupported content type")),
        _ => Err(FrameError::Invalid("unknown content type")),
    }
}

/// One lib0 `Any` value.
fn check_any(r: &mut Reader<'_>, depth: usize) -> Result<(), FrameError> {
    if depth > MAX_DEPTH {
        return Err(FrameError::TooDeep);
    }
    match r.u8()? {
        // undefined, null, false, true
        127 | 126 | 121 | 120 => {}
        125 => r.var_i64()?,
        124 => r.skip(4)?,
        123 | 122 => r.skip(8)?,
        119 => {
            r.string()?;
        }
        118 => {
            let n = r.count(2)?;
            for _ in 0..n {
                r.string()?;
                check_any(r, depth + 1)?;
            }
        }
        117 => {
            let n = r.count(1)?;
            for _ in 0..n {
                check_any(r, depth + 1)?;
            }
        }
        116 => {
            r.buf_range()?;
        }
        _ => return Err(FrameError::Invalid("unknown value type")),
    }
    Ok(())
}

/// Valid JSON nested at most [`MAX_DEPTH`] deep (depth is counted before parsing, so the parser
/// never recurses further).
pub fn check_json(text: &str) -> Result<(), FrameError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(FrameError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|_| FrameError::Invalid("a JSON value does not parse"))
}

fn shift(e: FrameError, by: usize) -> FrameError {
    match e {
        FrameError::Truncated(p) => FrameError::Truncated(p + by),
        FrameError::BadVarint(p) => FrameError::BadVarint(p + by),
        FrameError::CountTooLarge {
            count,
            remaining,
            at,
        } => FrameError::CountTooLarge {
            count,
            remaining,
            at: at + by,
        },
        other => other,
    }
}

/// A bounds-checked reader; varints are decoded by yrs once their length is known to be sane.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// lib0 writes at most 53-bit numbers: 8 bytes; 10 is the most a 64-bit value can take.
const MAX_VARINT_BYTES: usize = 10;

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn finish(&self) -> Result<(), FrameError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(FrameError::Trailing(n)),
        }
    }

    /// The length of the varint at the cursor, refusing over-long or unterminated ones.
    fn varint_len(&self) -> Result<usize, FrameError> {
        let rest = &self.bytes[self.pos..];
        match rest
            .iter()
            .take(MAX_VARINT_BYTES)
            .position(|b| b & 0x80 == 0)
        {
            Some(i) => Ok(i + 1),
            None if rest.len() < MAX_VARINT_BYTES => Err(FrameError::Truncated(self.bytes.len())),
            None => Err(FrameError::BadVarint(self.pos)),
        }
    }

    fn var_u64(&mut self) -> Result<u64, FrameError> {
        let len = self.varint_len()?;
        let at = self.pos;
        let mut cursor = Cursor::new(&self.bytes[at..at + len]);
        let value: u64 = cursor.read_var().map_err(|_| FrameError::BadVarint(at))?;
        self.pos += len;
        Ok(value)
    }

    fn var_i64(&mut self) -> Result<(), FrameError> {
        let len = self.varint_len()?;
        let at = self.pos;
        let mut cursor = Cursor::new(&self.bytes[at..at + len]);
        cursor
            .read_var_signed::<i64>()
            .map_err(|_| FrameError::BadVarint(at))?;
        self.pos += len;
        Ok(())
    }

    fn var_u32(&mut self) -> Result<u32, FrameError> {
        let at = self.pos;
        u32::try_from(self.var_u64()?).map_err(|_| FrameError::BadVarint(at))
    }

    /// A client id: Yjs ids are at most 53 bits (yrs asserts it).
    fn client(&mut self) -> Result<u64, FrameError> {
        let id = self.var_u64()?;
        if id >= 1 << 53 {
            return Err(FrameError::Invalid("a client id is wider than 53 bits"));
        }
        Ok(id)
    }

    /// A declared count of items taking at least `min_bytes` each.
    fn count(&mut self, min_bytes: usize) -> Result<u64, FrameError> {
        let at = self.pos;
        let count = self.var_u64()?;
        let remaining = self.remaining();
        if count.saturating_mul(min_bytes as u64) > remaining as u64 {
            return Err(FrameError::CountTooLarge {
                count,
                remaining,
                at,
            });
        }
        Ok(count)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(FrameError::Truncated(self.bytes.len()))?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), FrameError> {
        if self.remaining() < n {
            return Err(FrameError::Truncated(self.bytes.len()));
        }
        self.pos += n;
        Ok(())
    }

    /// A length-prefixed byte string; its range in the input.
    fn buf_range(&mut self) -> Result<(usize, usize), FrameError> {
        let len = self.count(1)? as usize;
        let start = self.pos;
        self.pos += len;
        Ok((start, start + len))
    }

    fn string(&mut self) -> Result<&'a str, FrameError> {
        let (start, end) = self.buf_range()?;
        std::str::from_utf8(&self.bytes[start..end]).map_err(|_| FrameError::Utf8)
    }
}

#[cfg(test)]
mod tests;
