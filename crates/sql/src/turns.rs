//! SQLite has one writer at a time. This process's writers take turns here, in order, instead of
//! polling SQLite's lock (a writer that finds it taken sleeps 1, 2, 5, 10… ms between tries,
//! which turns contention into latency spikes).
//!
//! Turns come in two classes. Appends to the Yjs update log are tiny (tens of microseconds) and
//! a live room relays nothing until its append commits; every other write (a document commit,
//! a compaction, a refresh-token rotation…) may take milliseconds. In one FIFO queue, the ten
//! compactions that rooms started at about the same time made an append wait for all ten
//! (20-30 ms, seen in the collaboration benchmark). So other writes first queue among
//! themselves and only the head of that queue waits for the lock: an append waits for at most
//! one of them, plus the appends ahead of it. Other writes cannot starve: each append that
//! jumps ahead of one is short, and the lock is FIFO.

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Debug, Default)]
pub(crate) struct WriteTurns {
    lock: Arc<Mutex<()>>,
    others: Arc<Mutex<()>>,
}

/// Held until the write commits.
#[derive(Debug)]
pub(crate) struct Turn {
    // Fields drop in order: the lock goes first, so the appends queued on it go before the
    // next other write can queue.
    _lock: OwnedMutexGuard<()>,
    _other: Option<OwnedMutexGuard<()>>,
}

impl WriteTurns {
    /// A turn for an append to the update log.
    pub(crate) async fn append(&self) -> Turn {
        Turn {
            _lock: self.lock.clone().lock_owned().await,
            _other: None,
        }
    }

    /// A turn for any other write.
    pub(crate) async fn write(&self) -> Turn {
        let other = self.others.clone().lock_owned().await;
        Turn {
            _lock: self.lock.clone().lock_owned().await,
            _other: Some(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn an_append_waits_for_at_most_one_other_write() {
        let turns = Arc::new(WriteTurns::default());
        let order = Arc::new(StdMutex::new(Vec::new()));
        let held = turns.append().await;
        let mut tasks = Vec::new();
        for name in ["write 1", "write 2", "write 3", "append"] {
            let (turns, order) = (turns.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = if name == "append" {
                    turns.append().await
                } else {
                    turns.write().await
                };
                order.lock().unwrap().push(name);
                settle().await;
            }));
            settle().await;
        }
        assert!(
            order.lock().unwrap().is_empty(),
            "everyone waits for the held turn"
        );
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["write 1", "append", "write 2", "write 3"]
        );
    }

    #[tokio::test]
    async fn one_writer_at_a_time() {
        let turns = Arc::new(WriteTurns::default());
        let inside = Arc::new(StdMutex::new((0, 0)));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (turns, inside) = (turns.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = if i % 3 == 0 {
                    turns.append().await
                } else {
                    turns.write().await
                };
                {
                    let mut n = inside.lock().unwrap();
                    n.0 += 1;
                    n.1 = n.1.max(n.0);
                }
                settle().await;
                inside.lock().unwrap().0 -= 1;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*inside.lock().unwrap(), (0, 1), "never two writers at once");
    }
}
