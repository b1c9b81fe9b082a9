use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Any, Array, ClientID, Doc, Map, ReadTxn, StateVector, Text, Transact, Update};

use super::*;

fn update_frame(update: Vec<u8>) -> Vec<u8> {
    Message::Sync(SyncMessage::Update(update)).encode_v1()
}

/// A nested `Any` update: a map entry holding arrays `depth` levels deep.
fn nested_any_update(depth: usize) -> Vec<u8> {
    let mut u = vec![1, 1, 5, 0, ANY | HAS_PARENT_SUB, 1, 1, b'm', 1, b'k', 1];
    for _ in 0..depth {
        u.extend_from_slice(&[117, 1]);
    }
    u.push(126);
    u.push(0);
    u
}

#[test]
fn real_messages_pass() {
    let doc = crate::ydoc::new_doc();
    let text = doc.get_or_insert_text("content");
    {
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "héllo 👋 wörld");
        text.remove_range(&mut txn, 2, 3);
    }
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let sv = doc.transact().state_vector();
    for (frame, kind) in [
        (
            Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1(),
            FrameKind::SyncStep1,
        ),
        (
            Message::Sync(SyncMessage::SyncStep2(update.clone())).encode_v1(),
            FrameKind::SyncStep2,
        ),
        (update_frame(update), FrameKind::Update),
        (vec![3], FrameKind::QueryAwareness),
    ] {
        assert_eq!(check(&frame).unwrap().kind, kind);
    }
    let awareness = AwarenessUpdate {
        clients: [(
            ClientID::new(42),
            AwarenessUpdateEntry {
                clock: 3,
                json: r##"{"user":{"name":"Ann","color":"#f00"},"cursor":null}"##.into(),
            },
        )]
        .into(),
    };
    let frame = Message::Awareness(awareness).encode_v1();
    assert_eq!(check(&frame).unwrap().kind, FrameKind::Awareness);
}

#[test]
fn hostile_frames_are_refused_before_yrs() {
    // Truncated varint.
    assert!(matches!(
        check(&[0, 2, 0x80]),
        Err(FrameError::Truncated(_))
    ));
    assert!(matches!(check(&[0x80]), Err(FrameError::Truncated(_))));
    // A 5-byte state vector declaring 2^28 entries.
    let sv_bomb = [0, 0, 5, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert!(matches!(
        check(&sv_bomb),
        Err(FrameError::CountTooLarge { count, .. }) if count == 1 << 28
    ));
    // Deep nesting, in updates and in awareness JSON.
    assert!(check(&update_frame(nested_any_update(MAX_DEPTH - 2))).is_ok());
    assert_eq!(
        check(&update_frame(nested_any_update(100_000))),
        Err(FrameError::TooDeep)
    );
    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let awareness = AwarenessUpdate {
        clients: [(
            ClientID::new(1),
            AwarenessUpdateEntry {
                clock: 1,
                json: deep_json.into(),
            },
        )]
        .into(),
    };
    assert_eq!(
        check(&Message::Awareness(awareness).encode_v1()),
        Err(FrameError::TooDeep)
    );
    // Unknown types, trailing bytes, over-long varints, 64-bit client ids, invalid UTF-8.
    assert_eq!(check(&[9]), Err(FrameError::UnknownMessage(9)));
    assert_eq!(check(&[0, 7, 0]), Err(FrameError::UnknownSync(7)));
    assert_eq!(check(&[3, 0]), Err(FrameError::Trailing(1)));
    assert!(matches!(check(&[0xff; 16]), Err(FrameError::BadVarint(_))));
    let wide_client = [
        0, 0, 10, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0,
    ];
    assert!(matches!(check(&wide_client), Err(FrameError::Invalid(_))));
    let bad_utf8 = [0, 2, 12, 1, 1, 5, 0, STRING, 1, 1, b'c', 2, 0xc3, 0x28, 0];
    assert_eq!(check(&bad_utf8), Err(FrameError::Utf8));
    // A deleted range running past 2^32 (yrs adds clock + len).
    let ds = [0, 2, 10, 0, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 5];
    assert!(matches!(check(&ds), Err(FrameError::Invalid(_))));
}

/// Valid frames of every kind from random documents.
fn valid_frames(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for _ in 0..40 {
        let doc = Doc::with_options(yrs::Options {
            offset_kind: yrs::OffsetKind::Utf16,
            ..yrs::Options::with_client_id(ClientID::new(rng.random_range(1..1u64 << 40)))
        });
        let text = doc.get_or_insert_text("content");
        let map = doc.get_or_insert_map("m");
        let array = doc.get_or_insert_array("a");
        let before = doc.transact().state_vector();
        for _ in 0..rng.random_range(1..8) {
            let mut txn = doc.transact_mut();
            let len = text.len(&txn);
            match rng.random_range(0..5) {
                0 if len > 0 => {
                    let at = rng.random_range(0..len);
                    let n = rng.random_range(1..=(len - at).min(4));
                    text.remove_range(&mut txn, at, n);
                }
                1 => {
                    map.insert(&mut txn, "k", Any::from(vec![Any::from(1.5), Any::Null]));
                }
                2 => {
                    array.push_back(&mut txn, Any::from(rng.random_range(0..1000i64)));
                }
                3 if len > 1 => {
                    let attrs = [("bold".into(), Any::Bool(true))].into_iter().collect();
                    text.format(&mut txn, 0, 1, attrs);
                }
                _ => {
                    let at = rng.random_range(0..=len);
                    let s: String = (0..rng.random_range(1..6))
                        .map(|_| ['a', 'é', '👋', '\n', '#'][rng.random_range(0..5)])
                        .collect();
                    text.insert(&mut txn, at, &s);
                }
            }
        }
        let txn = doc.transact();
        frames.push(update_frame(txn.encode_state_as_update_v1(&before)));
        frames.push(
            Message::Sync(SyncMessage::SyncStep2(
                txn.encode_state_as_update_v1(&StateVector::default()),
            ))
            .encode_v1(),
        );
        frames.push(Message::Sync(SyncMessage::SyncStep1(txn.state_vector())).encode_v1());
    }
    for i in 0..10u64 {
        let awareness = AwarenessUpdate {
            clients: [(
                ClientID::new(i + 1),
                AwarenessUpdateEntry {
                    clock: i as u32,
                    json: format!(r#"{{"user":{{"name":"u{i}"}},"n":[{i},{{"x":null}}]}}"#).into(),
                },
            )]
            .into(),
        };
        frames.push(Message::Awareness(awareness).encode_v1());
    }
    frames.push(vec![3]);
    frames.push(update_frame(nested_any_update(20)));
    frames
}

fn mutate(rng: &mut StdRng, frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..7) {
            0 if !f.is_empty() => {
                let i = rng.random_range(0..f.len());
                f[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !f.is_empty() => {
                let n = rng.random_range(0..f.len());
                f.truncate(n);
            }
            2 => {
                let i = rng.random_range(0..=f.len());
                f.insert(i, rng.random());
            }
            3 if !f.is_empty() => {
                // A huge declared count or length.
                let i = rng.random_range(0..f.len());
                f.splice(i..i, [0x80, 0x80, 0x80, 0x80, 0x01]);
            }
            4 if !f.is_empty() => {
                let i = rng.random_range(0..f.len());
                f[i] = [0, 0x7f, 0x80, 0xff, 117, 118, 119][rng.random_range(0..7)];
            }
            5 if f.len() > 2 => {
                let a = rng.random_range(0..f.len());
                let b = rng.random_range(a..f.len());
                let chunk = f[a..b].to_vec();
                let at = rng.random_range(0..=f.len());
                f.splice(at..at, chunk);
            }
            _ => {
                let i = rng.random_range(0..=f.len());
                f.splice(
                    i..i,
                    (0..rng.random_range(1..8)).map(|_| rng.random::<u8>()),
                );
            }
        }
    }
    f
}

/// What yrs makes of an accepted frame: it must decode, and applying must not take the process
/// down (a panic inside yrs is caught by the same guard the rooms use).
fn decode_accepted(frame: &[u8], checked: Checked) {
    let message = Message::decode_v1(frame);
    assert!(message.is_ok(), "accepted but yrs cannot decode {frame:?}");
    let payload = checked.payload(frame);
    match checked.kind {
        FrameKind::SyncStep2 | FrameKind::Update => {
            let update = Update::decode_v1(payload);
            assert!(update.is_ok(), "accepted update does not decode {frame:?}");
            let doc = Doc::new();
            let _ = crate::ydoc::guarded(|| {
                let mut txn = doc.transact_mut();
                let _ = txn.apply_update(update.unwrap());
                Ok(())
            });
        }
        FrameKind::SyncStep1 => assert!(StateVector::decode_v1(payload).is_ok()),
        FrameKind::Awareness => assert!(AwarenessUpdate::decode_v1(payload).is_ok()),
        FrameKind::QueryAwareness => {}
    }
}

/// Bounded fuzzing on stable Rust: seeded random and mutated valid frames. The checker never
/// panics, answers the same twice, accepts every valid frame, and whatever it accepts yrs decodes.
#[test]
fn fuzz_the_frame_checker() {
    let cases: usize = std::env::var("FRAME_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = StdRng::seed_from_u64(0x5eed_c011ab);
    let valid = valid_frames(&mut rng);
    for frame in &valid {
        let checked =
            check(frame).unwrap_or_else(|e| panic!("valid frame refused ({e}): {frame:?}"));
        decode_accepted(frame, checked);
    }
    let (mut accepted, mut refused) = (0usize, 0usize);
    for i in 0..cases {
        let frame = if i % 5 == 0 {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            let pick = rng.random_range(0..valid.len());
            mutate(&mut rng, &valid[pick])
        };
        let first = catch_unwind(AssertUnwindSafe(|| check(&frame)))
            .unwrap_or_else(|_| panic!("the checker panicked on {frame:?}"));
        assert_eq!(first, check(&frame), "not deterministic on {frame:?}");
        match first {
            Ok(checked) => {
                accepted += 1;
                decode_accepted(&frame, checked);
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("frame fuzz: {cases} cases, {accepted} accepted, {refused} refused");
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
}
