//! [`Fanout`] inside one process: a broadcast channel per topic.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use mdcreator_domain::fanout::{Fanout, FanoutError, Subscription};

/// Messages a slow subscriber may fall behind by before it misses some (it then recovers from
/// storage, as with Redis).
const CAPACITY: usize = 1024;

#[derive(Default)]
pub struct InProcessFanout {
    topics: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

impl InProcessFanout {
    fn sender(&self, topic: &str) -> broadcast::Sender<Vec<u8>> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        // Forget topics nobody listens to any more, so memory follows open subscriptions.
        if topics.len() > 64 {
            topics.retain(|_, s| s.receiver_count() > 0);
        }
        topics
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .clone()
    }
}

#[async_trait::async_trait]
impl Fanout for InProcessFanout {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), FanoutError> {
        let sender = {
            let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
            topics.get(topic).cloned()
        };
        if let Some(sender) = sender {
            // No receivers is not an error: nobody is listening.
            let _ = sender.send(payload);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, FanoutError> {
        let receiver = self.sender(topic).subscribe();
        // A lagging receiver skips what it missed instead of ending the stream.
        let stream = BroadcastStream::new(receiver).filter_map(|m| async move { m.ok() });
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_what_is_published_after_they_subscribe() {
        let f = InProcessFanout::default();
        f.publish("t", b"before".to_vec()).await.unwrap();
        let mut a = f.subscribe("t").await.unwrap();
        let mut b = f.subscribe("t").await.unwrap();
        let mut other = f.subscribe("u").await.unwrap();
        f.publish("t", b"one".to_vec()).await.unwrap();
        f.publish("t", b"two".to_vec()).await.unwrap();
        assert_eq!(a.next().await.unwrap(), b"one");
        assert_eq!(a.next().await.unwrap(), b"two");
        assert_eq!(b.next().await.unwrap(), b"one");
        f.publish("u", b"three".to_vec()).await.unwrap();
        assert_eq!(other.next().await.unwrap(), b"three");
    }

    #[tokio::test]
    async fn dropped_subscriptions_are_forgotten() {
        let f = InProcessFanout::default();
        for i in 0..100 {
            let s = f.subscribe(&format!("t{i}")).await.unwrap();
            drop(s);
        }
        let _keep = f.subscribe("kept").await.unwrap();
        assert!(f.topics.lock().unwrap().len() <= 65);
    }
}
