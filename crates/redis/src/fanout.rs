//! [`Fanout`] over Redis pub/sub: topics are channels.
//!
//! One SUBSCRIBE per topic per process however many local subscriptions it has: local subscribers
//! are counted per topic, and the channel is unsubscribed when the last one is dropped. A single
//! dispatcher task reads what the subscriber connection receives and hands each message to the
//! topic's local subscribers through bounded channels; a subscriber that falls behind misses
//! messages instead of holding up the others.
//!
//! Ordering rests on one connection's order. fred resolves SUBSCRIBE as soon as it is written, so
//! `subscribe` follows it with a PING on the same connection: Redis answers the PING after it has
//! processed the SUBSCRIBE and after every message it sent earlier on that connection, and fred's
//! reader forwards messages and replies in the order they arrive. So when the PING is answered,
//! the channel is live and every message published before is already queued for the dispatcher;
//! the new subscriber is then registered *through* the dispatcher, behind those messages: it gets
//! nothing published before `subscribe` and everything published after it returns.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::clients::WithOptions;
use fred::prelude::{Client, ClientLike, EventInterface, PubsubInterface};
use fred::types::{Message, Value};
use futures::Stream;
use tokio::sync::{broadcast, mpsc, oneshot};

use mdcreator_domain::fanout::{Fanout, FanoutError, Subscription};

use crate::clients::{RedisSettings, fail_fast};

/// Publishes with a bounded wait and subscribes through one shared subscriber connection.
/// Cheap to clone; clones share subscriptions.
#[derive(Clone)]
pub struct RedisFanout {
    shared: Arc<Shared>,
    registrations: mpsc::UnboundedSender<Registration>,
    publisher: Client,
    publish_timeout: Duration,
}

impl RedisFanout {
    /// Starts the dispatcher and the resubscriber over already started clients.
    pub(crate) fn new(
        publisher: Client,
        subscriber: SubscriberClient,
        settings: &RedisSettings,
    ) -> Self {
        let messages = subscriber.message_rx();
        let reconnections = subscriber.reconnect_rx();
        let shared = Arc::new(Shared {
            subscriber,
            topics: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            command_timeout: settings.command_timeout,
            buffer: settings.subscriber_buffer.max(1),
        });
        let (registrations, registration_rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(shared.clone(), messages, registration_rx));
        tokio::spawn(resubscribe_on_reconnect(
            Arc::downgrade(&shared),
            reconnections,
        ));
        Self {
            shared,
            registrations,
            publisher,
            publish_timeout: settings.publish_timeout,
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.shared.subscriber.is_connected()
    }

    pub(crate) async fn quit(&self) -> Result<(), fred::error::Error> {
        self.shared.subscriber.quit().await
    }
}

#[async_trait::async_trait]
impl Fanout for RedisFanout {
    #[tracing::instrument(level = "debug", skip_all, fields(%topic))]
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), FanoutError> {
        let _receivers: i64 = self
            .publisher
            .with_options(&fail_fast(self.publish_timeout))
            .publish(topic, payload)
            .await
            .map_err(|e| FanoutError::Unavailable(e.into()))?;
        Ok(())
    }

    /// Returns once Redis confirmed the SUBSCRIBE (so "subscribe, then load state" misses
    /// nothing), or `Unavailable` within the command timeout when Redis cannot confirm it.
    #[tracing::instrument(level = "debug", skip_all, fields(%topic))]
    async fn subscribe(&self, topic: &str) -> Result<Subscription, FanoutError> {
        let shared = &self.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(shared.buffer);
        let gate = {
            let mut topics = shared.topics();
            let state = topics.entry(topic.to_owned()).or_default();
            state.pending.insert(id);
            state.gate.clone()
        };
        // From here on, however this future ends (error, cancellation), the guard undoes the
        // registration and unsubscribes from Redis when nobody else is left.
        let guard = LocalGuard {
            shared: shared.clone(),
            topic: topic.to_owned(),
            id,
        };

        // SUBSCRIBE and UNSUBSCRIBE of one topic never overlap: an UNSUBSCRIBE that lands after
        // a later SUBSCRIBE would silently end the new subscription.
        let _serialized = tokio::time::timeout(shared.command_timeout * 2, gate.lock())
            .await
            .map_err(|_| FanoutError::Unavailable(anyhow::anyhow!("topic busy")))?;
        // Sent even when the channel is already subscribed: the confirmation is the ordering
        // barrier (see the module docs).
        shared
            .confirm_subscription(topic)
            .await
            .map_err(FanoutError::Unavailable)?;
        let (done, registered) = oneshot::channel();
        self.registrations
            .send(Registration {
                topic: topic.to_owned(),
                id,
                sender,
                done,
            })
            .map_err(|_| FanoutError::Unavailable(anyhow::anyhow!("fan-out dispatcher stopped")))?;
        registered
            .await
            .map_err(|_| FanoutError::Unavailable(anyhow::anyhow!("fan-out dispatcher stopped")))?;
        Ok(Box::pin(LocalSubscription {
            receiver,
            _guard: guard,
        }))
    }
}

/// State shared by the handles, the dispatcher, the resubscriber and the live subscriptions.
struct Shared {
    subscriber: SubscriberClient,
    topics: Mutex<HashMap<String, Topic>>,
    next_id: AtomicU64,
    command_timeout: Duration,
    buffer: usize,
}

impl Shared {
    /// The subscriber connection with bounded waits. Commands fail at once while it is down
    /// rather than queue: a new connection starts without subscriptions anyway, and a command
    /// sent late could subscribe a channel nobody wants any more.
    fn subscriber(&self) -> WithOptions<SubscriberClient> {
        self.subscriber
            .with_options(&fail_fast(self.command_timeout))
    }

    /// SUBSCRIBE, then a PING on the same connection: fred resolves SUBSCRIBE once written, Redis
    /// answers the PING once the SUBSCRIBE is in effect.
    async fn confirm_subscription(&self, topic: &str) -> anyhow::Result<()> {
        let subscriber = self.subscriber();
        let confirmed = async {
            subscriber.subscribe(topic.to_owned()).await?;
            subscriber.ping::<Value>(None).await.map(drop)
        };
        // Each command is bounded by fred already; this bounds the pair whatever happens.
        match tokio::time::timeout(self.command_timeout * 2, confirmed).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(anyhow::anyhow!("SUBSCRIBE not confirmed in time")),
        }
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        // Nothing panics while holding this lock; if something did, the map is still consistent.
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unsubscribes `topic` from Redis in the background if nobody uses it any more.
    fn release_if_idle(self: &Arc<Self>, topic: &str) {
        let gate = match self.topics().get(topic) {
            Some(state) if state.is_idle() => state.gate.clone(),
            _ => return,
        };
        // Without a runtime (process teardown) the connection is going away anyway.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = self.clone();
        let topic = topic.to_owned();
        runtime.spawn(async move {
            let _serialized = gate.lock().await;
            let still_idle = shared
                .topics()
                .get(&topic)
                .is_some_and(|s| s.is_idle() && s.is_guarded_by(&gate));
            if !still_idle {
                return;
            }
            let subscriber = shared.subscriber();
            let unsubscribe = subscriber.unsubscribe(topic.clone());
            match tokio::time::timeout(shared.command_timeout * 2, unsubscribe).await {
                Ok(Ok(())) => {}
                // Left subscribed: its messages are dropped here, and the subscription ends
                // with the connection at the latest (a reconnection resubscribes only topics
                // with local subscribers).
                Ok(Err(e)) => tracing::debug!(error = %e, %topic, "UNSUBSCRIBE failed"),
                Err(_) => tracing::debug!(%topic, "UNSUBSCRIBE timed out"),
            }
            let mut topics = shared.topics();
            if topics
                .get(&topic)
                .is_some_and(|s| s.is_idle() && s.is_guarded_by(&gate))
            {
                topics.remove(&topic);
            }
        });
    }
}

/// One topic's local subscribers.
#[derive(Default)]
struct Topic {
    /// Registered subscribers: they receive every message the dispatcher sees from now on.
    local: HashMap<u64, mpsc::Sender<Vec<u8>>>,
    /// `subscribe` calls in progress; they keep the Redis subscription from being dropped.
    pending: HashSet<u64>,
    /// Serializes this topic's SUBSCRIBE/UNSUBSCRIBE commands.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Topic {
    fn is_idle(&self) -> bool {
        self.local.is_empty() && self.pending.is_empty()
    }

    /// Whether `gate` is still this topic's: a topic dropped and subscribed again gets a new
    /// state, and a task holding the old gate must leave the new one alone.
    fn is_guarded_by(&self, gate: &Arc<tokio::sync::Mutex<()>>) -> bool {
        Arc::ptr_eq(&self.gate, gate)
    }
}

/// A subscriber to add to its topic once the dispatcher has drained what came before.
struct Registration {
    topic: String,
    id: u64,
    sender: mpsc::Sender<Vec<u8>>,
    done: oneshot::Sender<()>,
}

/// Hands messages to local subscribers, and registers new subscribers in message order.
async fn dispatch(
    shared: Arc<Shared>,
    mut messages: broadcast::Receiver<Message>,
    mut registrations: mpsc::UnboundedReceiver<Registration>,
) {
    let mut accepting = true;
    loop {
        tokio::select! {
            // Messages first: everything already received is delivered before a registration
            // that follows it takes effect.
            biased;
            message = messages.recv() => match message {
                Ok(message) => deliver(&shared, message),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fan-out dispatcher fell behind; messages dropped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            registration = registrations.recv(), if accepting => match registration {
                Some(r) => register(&shared, r),
                None => accepting = false,
            },
        }
    }
}

fn deliver(shared: &Arc<Shared>, message: Message) {
    let payload = match message.value.as_bytes() {
        Some(bytes) => bytes,
        None if message.value.is_null() => &[][..],
        None => return,
    };
    let topic = &*message.channel;
    let became_idle = {
        let mut topics = shared.topics();
        let Some(state) = topics.get_mut(topic) else {
            return;
        };
        state.local.retain(|_, sender| {
            match sender.try_send(payload.to_vec()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // This subscriber is slow: it misses this message and recovers from storage.
                    tracing::debug!(topic, "slow fan-out subscriber; message dropped");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        state.is_idle()
    };
    if became_idle {
        shared.release_if_idle(topic);
    }
}

fn register(shared: &Arc<Shared>, registration: Registration) {
    let mut topics = shared.topics();
    // A `subscribe` that was abandoned meanwhile is no longer pending: nothing to add.
    if let Some(state) = topics.get_mut(&registration.topic)
        && state.pending.remove(&registration.id)
    {
        state.local.insert(registration.id, registration.sender);
        let _ = registration.done.send(());
    }
}

/// Tries per topic after a reconnection, while the connection stays up.
const RESUBSCRIBE_ATTEMPTS: u32 = 4;

/// Resubscribes every topic with local subscribers after fred reconnected (a new connection
/// starts with no subscriptions).
async fn resubscribe_on_reconnect(
    shared: std::sync::Weak<Shared>,
    mut reconnections: broadcast::Receiver<fred::types::config::Server>,
) {
    loop {
        match reconnections.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let wanted: Vec<(String, Arc<tokio::sync::Mutex<()>>)> = shared
            .topics()
            .iter()
            .filter(|(_, s)| !s.is_idle())
            .map(|(t, s)| (t.clone(), s.gate.clone()))
            .collect();
        if !wanted.is_empty() {
            tracing::info!(topics = wanted.len(), "Redis reconnected; resubscribing");
        }
        for (topic, gate) in wanted {
            let _serialized = gate.lock().await;
            let in_use = shared
                .topics()
                .get(&topic)
                .is_some_and(|s| !s.is_idle() && s.is_guarded_by(&gate));
            if !in_use {
                continue;
            }
            for attempt in 1..=RESUBSCRIBE_ATTEMPTS {
                match shared.confirm_subscription(&topic).await {
                    Ok(()) => break,
                    // Disconnected again: the next reconnection starts over.
                    Err(_) if !shared.subscriber.is_connected() => break,
                    Err(e) if attempt == RESUBSCRIBE_ATTEMPTS => {
                        tracing::warn!(error = %e, %topic, "resubscribing failed");
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100 << attempt)).await,
                }
            }
        }
    }
}

/// The stream handed to the caller; dropping it unsubscribes.
struct LocalSubscription {
    receiver: mpsc::Receiver<Vec<u8>>,
    _guard: LocalGuard,
}

impl Stream for LocalSubscription {
    type Item = Vec<u8>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

/// Removes one local subscriber (pending or registered) from its topic when dropped.
struct LocalGuard {
    shared: Arc<Shared>,
    topic: String,
    id: u64,
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        let idle = {
            let mut topics = self.shared.topics();
            match topics.get_mut(&self.topic) {
                Some(state) => {
                    state.pending.remove(&self.id);
                    state.local.remove(&self.id);
                    state.is_idle()
                }
                None => false,
            }
        };
        if idle {
            self.shared.release_if_idle(&self.topic);
        }
    }
}
