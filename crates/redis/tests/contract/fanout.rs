//! The [`Fanout`] contract.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::prelude::PubsubInterface;
use fred::types::Value;
use futures::StreamExt;
use mdcreator_domain::fanout::{Fanout, FanoutError, Subscription};
use mdcreator_inprocess::InProcessFanout;
use mdcreator_redis::RedisClients;

use crate::support::{
    OwnRedis, free_port, impatient, inspector, quick_reconnect, redis_instances, twice, unique,
};

type Pair = (Arc<dyn Fanout>, Arc<dyn Fanout>);

fn in_process() -> Pair {
    twice(Arc::new(InProcessFanout::default()))
}

async fn redis() -> Option<Pair> {
    let (a, b) = redis_instances().await?;
    Some((Arc::new(a.fanout()), Arc::new(b.fanout())))
}

macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $case() {
                    let (a, b) = super::in_process();
                    super::$case(a, b).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some((a, b)) = super::redis().await else { return };
                    super::$case(a, b).await;
                }
            )*
        }
    };
}

on_every_backend!(
    delivers_in_publish_order_to_every_subscriber_on_every_instance,
    delivers_nothing_published_before_subscribe,
    keeps_topics_apart,
    dropping_a_subscription_leaves_the_others,
    a_slow_subscriber_does_not_hold_up_the_others,
);

async fn next(s: &mut Subscription) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("a message within 5 s")
        .expect("the subscription is still open")
}

async fn delivers_in_publish_order_to_every_subscriber_on_every_instance(
    a: Arc<dyn Fanout>,
    b: Arc<dyn Fanout>,
) {
    let topic = unique("order");
    let mut on_a1 = a.subscribe(&topic).await.unwrap();
    let mut on_a2 = a.subscribe(&topic).await.unwrap();
    let mut on_b = b.subscribe(&topic).await.unwrap();
    for i in 0..50u32 {
        a.publish(&topic, i.to_be_bytes().to_vec()).await.unwrap();
    }
    for s in [&mut on_a1, &mut on_a2, &mut on_b] {
        for i in 0..50u32 {
            assert_eq!(next(s).await, i.to_be_bytes());
        }
    }
    b.publish(&topic, b"from b".to_vec()).await.unwrap();
    for s in [&mut on_a1, &mut on_a2, &mut on_b] {
        assert_eq!(next(s).await, b"from b");
    }
}

async fn delivers_nothing_published_before_subscribe(a: Arc<dyn Fanout>, b: Arc<dyn Fanout>) {
    let topic = unique("before");
    a.publish(&topic, b"nobody listens".to_vec()).await.unwrap();
    // With a subscriber already there, the topic is live on instance a: the newcomer must still
    // not see what was published before it subscribed.
    let mut early = a.subscribe(&topic).await.unwrap();
    for round in 0..20u8 {
        a.publish(&topic, vec![b'a', round]).await.unwrap();
        b.publish(&topic, vec![b'b', round]).await.unwrap();
        let mut late_a = a.subscribe(&topic).await.unwrap();
        let mut late_b = b.subscribe(&topic).await.unwrap();
        b.publish(&topic, vec![b'!', round]).await.unwrap();
        assert_eq!(next(&mut late_a).await, [b'!', round], "round {round}");
        assert_eq!(next(&mut late_b).await, [b'!', round], "round {round}");
        assert_eq!(next(&mut early).await, [b'a', round]);
        assert_eq!(next(&mut early).await, [b'b', round]);
        assert_eq!(next(&mut early).await, [b'!', round]);
    }
}

async fn keeps_topics_apart(a: Arc<dyn Fanout>, b: Arc<dyn Fanout>) {
    let (one, two) = (unique("one"), unique("two"));
    let mut on_one = a.subscribe(&one).await.unwrap();
    let mut on_two = b.subscribe(&two).await.unwrap();
    b.publish(&two, b"for two".to_vec()).await.unwrap();
    a.publish(&one, b"for one".to_vec()).await.unwrap();
    assert_eq!(next(&mut on_one).await, b"for one");
    assert_eq!(next(&mut on_two).await, b"for two");
}

async fn dropping_a_subscription_leaves_the_others(a: Arc<dyn Fanout>, b: Arc<dyn Fanout>) {
    let topic = unique("drop");
    let first = a.subscribe(&topic).await.unwrap();
    let mut second = a.subscribe(&topic).await.unwrap();
    drop(first);
    b.publish(&topic, b"one".to_vec()).await.unwrap();
    assert_eq!(next(&mut second).await, b"one");
    drop(second);
    // Subscribing again after everybody left works like the first time.
    let mut again = a.subscribe(&topic).await.unwrap();
    b.publish(&topic, b"two".to_vec()).await.unwrap();
    assert_eq!(next(&mut again).await, b"two");
}

async fn a_slow_subscriber_does_not_hold_up_the_others(a: Arc<dyn Fanout>, b: Arc<dyn Fanout>) {
    const COUNT: u32 = 3000;
    let topic = unique("slow");
    let mut slow = a.subscribe(&topic).await.unwrap();
    let mut fast = a.subscribe(&topic).await.unwrap();
    let reader = tokio::spawn(async move {
        for i in 0..COUNT {
            assert_eq!(next(&mut fast).await, i.to_be_bytes());
        }
    });
    for i in 0..COUNT {
        b.publish(&topic, i.to_be_bytes().to_vec()).await.unwrap();
        if i % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    reader
        .await
        .expect("the fast subscriber got everything, in order");
    let mut got = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), slow.next()).await {
        got += 1;
    }
    assert!(
        0 < got && got < COUNT,
        "the slow subscriber got {got} of {COUNT}"
    );
}

// Redis only: what the in-process adapter has no equivalent of.

async fn numsub(inspector: &fred::prelude::Client, topic: &str) -> i64 {
    let reply: Vec<Value> = inspector.pubsub_numsub(topic).await.unwrap();
    reply.get(1).and_then(Value::as_i64).expect("NUMSUB count")
}

async fn eventually_numsub(inspector: &fred::prelude::Client, topic: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let n = numsub(inspector, topic).await;
        if n == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "NUMSUB {topic} is {n}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn redis_one_subscribe_per_topic_per_instance_and_unsubscribe_after_the_last() {
    let (Some((a, b)), Some(inspector)) = (redis_instances().await, inspector().await) else {
        return;
    };
    let (a, b) = (a.fanout(), b.fanout());
    let topic = unique("numsub");
    let mut local: Vec<Subscription> = Vec::new();
    for _ in 0..5 {
        local.push(a.subscribe(&topic).await.unwrap());
    }
    assert_eq!(numsub(&inspector, &topic).await, 1);
    let on_b = b.subscribe(&topic).await.unwrap();
    assert_eq!(numsub(&inspector, &topic).await, 2);
    drop(on_b);
    eventually_numsub(&inspector, &topic, 1).await;
    while local.len() > 1 {
        local.pop();
        // Still wanted on this instance: the Redis subscription stays.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(numsub(&inspector, &topic).await, 1);
    }
    local.clear();
    eventually_numsub(&inspector, &topic, 0).await;
}

#[tokio::test]
async fn redis_unreachable_fails_fast() {
    if crate::support::redis_url().is_none() {
        return;
    }
    let url = format!("redis://127.0.0.1:{}", free_port());
    let clients = RedisClients::connect(&url, impatient()).await.unwrap();
    let fanout = clients.fanout();

    let started = Instant::now();
    let published = fanout.publish("mdc-test:down", b"x".to_vec()).await;
    assert!(matches!(published, Err(FanoutError::Unavailable(_))));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "publish took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let subscribed = fanout.subscribe("mdc-test:down").await;
    assert!(matches!(subscribed, Err(FanoutError::Unavailable(_))));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "subscribe took {:?}",
        started.elapsed()
    );

    assert!(clients.ping().await.is_err());
    clients.quit().await;
}

#[tokio::test]
async fn redis_subscriptions_resume_when_redis_is_back() {
    let Some(mut server) = OwnRedis::start(free_port()).await else {
        return;
    };
    let a = RedisClients::connect(&server.url(), quick_reconnect())
        .await
        .unwrap();
    let b = RedisClients::connect(&server.url(), quick_reconnect())
        .await
        .unwrap();
    let (a, b) = (a.fanout(), b.fanout());
    let topic = unique("outage");
    let mut on_a = a.subscribe(&topic).await.unwrap();
    b.publish(&topic, b"before".to_vec()).await.unwrap();
    assert_eq!(next(&mut on_a).await, b"before");

    server.stop();
    // Let the clients notice, then: publishing fails fast, the subscription stays open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert!(matches!(
        b.publish(&topic, b"lost".to_vec()).await,
        Err(FanoutError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(1));

    let _server = OwnRedis::start(server.port).await.expect("restart");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut round = 0u32;
    loop {
        assert!(Instant::now() < deadline, "the subscription never resumed");
        round += 1;
        if b.publish(&topic, round.to_be_bytes().to_vec())
            .await
            .is_ok()
            && let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), on_a.next()).await
        {
            assert_ne!(m, b"lost");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_subscribing_works_once_a_late_redis_comes_up() {
    let port = free_port();
    if crate::support::redis_url().is_none() {
        return;
    }
    let url = format!("redis://127.0.0.1:{port}");
    let clients = RedisClients::connect(&url, impatient()).await.unwrap();
    let a = clients.fanout();
    let topic = unique("late");
    assert!(a.subscribe(&topic).await.is_err());

    let Some(_server) = OwnRedis::start(port).await else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut on_a = loop {
        match a.subscribe(&topic).await {
            Ok(s) => break s,
            Err(_) => assert!(Instant::now() < deadline, "never subscribed"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The publishing connection comes back on its own schedule.
    while clients.ping().await.is_err() {
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.publish(&topic, b"hello".to_vec()).await.unwrap();
    assert_eq!(next(&mut on_a).await, b"hello");
}
