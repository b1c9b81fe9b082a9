//! Group commit of the rooms' updates.
//!
//! Every room stores its writers' updates before relaying them. Rooms hand their batches to a
//! few writer tasks instead of each committing on its own: while a commit is in flight, the
//! batches of other rooms queue, and the next commit takes all of them in one transaction. At
//! light load a batch goes alone at once (no added wait); under load the number of commits
//! stays near the number of writers times the commit rate, not the number of rooms.
//!
//! A room has at most one batch in flight (it awaits each), so each document's updates reach
//! the store in order even with several writers.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use mdcreator_domain::collab::YjsStore;
use mdcreator_domain::{DocumentId, StoreError};

/// Batches taken into one transaction at most.
const MAX_GROUP: usize = 256;

struct Request {
    document: DocumentId,
    updates: Vec<Vec<u8>>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Request>,
}

impl Writer {
    /// Starts `writers` (at least one) tasks on `runtime`. They stop when the writer is dropped.
    pub(crate) fn spawn(
        store: Arc<dyn YjsStore>,
        writers: usize,
        runtime: &tokio::runtime::Handle,
    ) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            runtime.spawn(run(store.clone(), rx.clone()));
        }
        Writer { tx }
    }

    /// Stores `updates` durably (committed) before returning.
    pub(crate) async fn append(
        &self,
        document: DocumentId,
        updates: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Request {
                document,
                updates,
                done,
            })
            .map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the update writer stopped"))
}

async fn run(store: Arc<dyn YjsStore>, queue: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>) {
    loop {
        let group = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            group
        };
        write(store.as_ref(), group).await;
    }
}

async fn write(store: &dyn YjsStore, mut group: Vec<Request>) {
    if group.len() == 1 {
        let r = group.pop().expect("one request");
        let result = store.append(r.document, r.updates).await.map(|_| ());
        let _ = r.done.send(result);
        return;
    }
    let batches = group
        .iter()
        .map(|r| (r.document, r.updates.clone()))
        .collect();
    match store.append_many(batches).await {
        Ok(()) => {
            for r in group {
                let _ = r.done.send(Ok(()));
            }
        }
        Err(e) => {
            // One missing document (deleted while its room was open) fails the whole
            // transaction: retried one by one, so only its own writers see the failure.
            tracing::debug!(error = ?e, batches = group.len(), "group commit failed; storing one by one");
            for r in group {
                let result = store.append(r.document, r.updates).await.map(|_| ());
                let _ = r.done.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdcreator_domain::collab::MockYjsStore;

    #[tokio::test]
    async fn a_lone_batch_is_appended_as_is() {
        let doc = DocumentId::new();
        let mut store = MockYjsStore::new();
        store
            .expect_append()
            .withf(move |d, u| *d == doc && u == &vec![vec![1u8], vec![2]])
            .times(1)
            .returning(|_, _| Ok(7));
        let writer = Writer::spawn(Arc::new(store), 1, &tokio::runtime::Handle::current());
        writer.append(doc, vec![vec![1], vec![2]]).await.unwrap();
    }

    fn request(
        document: DocumentId,
        update: u8,
    ) -> (Request, oneshot::Receiver<Result<(), StoreError>>) {
        let (done, answer) = oneshot::channel();
        let updates = vec![vec![update]];
        (
            Request {
                document,
                updates,
                done,
            },
            answer,
        )
    }

    #[test]
    fn batches_queued_during_a_commit_share_the_next_one() {
        let (a, b, c) = (DocumentId::new(), DocumentId::new(), DocumentId::new());
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Mutex::new(released);
        let mut store = MockYjsStore::new();
        // The first commit blocks until b and c are queued behind it.
        store.expect_append().times(1).returning(move |d, _| {
            assert_eq!(d, a);
            entered_tx.send(()).unwrap();
            released.lock().unwrap().recv().unwrap();
            Ok(1)
        });
        store
            .expect_append_many()
            .withf(move |batches| {
                batches.len() == 2
                    && batches[0] == (b, vec![vec![2u8]])
                    && batches[1] == (c, vec![vec![3u8]])
            })
            .times(1)
            .returning(|_| Ok(()));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let writer = Writer::spawn(Arc::new(store), 1, rt.handle());
        let (ra, first) = request(a, 1);
        writer.tx.send(ra).unwrap_or_else(|_| panic!("writer gone"));
        entered.recv().unwrap();
        let (rb, second) = request(b, 2);
        let (rc, third) = request(c, 3);
        writer.tx.send(rb).unwrap_or_else(|_| panic!("writer gone"));
        writer.tx.send(rc).unwrap_or_else(|_| panic!("writer gone"));
        release.send(()).unwrap();
        rt.block_on(async {
            first.await.unwrap().unwrap();
            second.await.unwrap().unwrap();
            third.await.unwrap().unwrap();
        });
    }

    #[tokio::test]
    async fn a_failed_group_is_retried_one_by_one() {
        let (good, gone) = (DocumentId::new(), DocumentId::new());
        let mut store = MockYjsStore::new();
        store
            .expect_append_many()
            .times(1)
            .returning(|_| Err(StoreError::Unexpected(anyhow::anyhow!("foreign key"))));
        store
            .expect_append()
            .returning(move |d, _| {
                if d == good {
                    Ok(1)
                } else {
                    Err(StoreError::Unexpected(anyhow::anyhow!("foreign key")))
                }
            })
            .times(2);
        let (r1, first) = request(good, 1);
        let (r2, second) = request(gone, 2);
        let group = vec![r1, r2];
        write(&store, group).await;
        assert!(first.await.unwrap().is_ok());
        assert!(second.await.unwrap().is_err());
    }
}
