//! The [`RateLimiter`] contract.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mdcreator_domain::ports::{RateLimited, RateLimiter};
use mdcreator_inprocess::InProcessRateLimiter;
use mdcreator_redis::RedisClients;

use crate::support::{free_port, impatient, redis_instances, twice, unique};

type Pair = (Arc<dyn RateLimiter>, Arc<dyn RateLimiter>);

fn in_process() -> Pair {
    twice(Arc::new(InProcessRateLimiter::default()))
}

async fn redis() -> Option<Pair> {
    let (a, b) = redis_instances().await?;
    Some((Arc::new(a.rate_limiter()), Arc::new(b.rate_limiter())))
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
    counts_hits_per_key_across_instances,
    a_new_window_starts_over,
);

const HOUR: u64 = 3600;

async fn counts_hits_per_key_across_instances(a: Arc<dyn RateLimiter>, b: Arc<dyn RateLimiter>) {
    let key = unique("login");
    a.hit(&key, 3, HOUR).await.unwrap();
    b.hit(&key, 3, HOUR).await.unwrap();
    a.hit(&key, 3, HOUR).await.unwrap();
    for instance in [&a, &b] {
        let RateLimited { retry_after_secs } = instance.hit(&key, 3, HOUR).await.unwrap_err();
        assert!((1..=HOUR).contains(&retry_after_secs), "{retry_after_secs}");
    }
    // Other keys, and the same key over another window length, count apart.
    b.hit(&unique("login"), 3, HOUR).await.unwrap();
    b.hit(&key, 10, 2 * HOUR).await.unwrap();
    assert!(a.hit(&unique("none"), 0, HOUR).await.is_err());
}

async fn a_new_window_starts_over(a: Arc<dyn RateLimiter>, b: Arc<dyn RateLimiter>) {
    let key = unique("window");
    // Windows may be aligned to the clock: the limit is reached within two windows' worth.
    let mut refused = None;
    for _ in 0..6 {
        if let Err(limited) = a.hit(&key, 2, 1).await {
            refused = Some(limited);
            break;
        }
    }
    let RateLimited { retry_after_secs } = refused.expect("refused after 2 hits");
    assert_eq!(retry_after_secs, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.hit(&key, 2, 1).await.unwrap();
}

// Redis only.

#[tokio::test]
async fn redis_unreachable_lets_requests_through() {
    if crate::support::redis_url().is_none() {
        return;
    }
    let url = format!("redis://127.0.0.1:{}", free_port());
    let limiter = RedisClients::connect(&url, impatient())
        .await
        .unwrap()
        .rate_limiter();
    let started = Instant::now();
    for _ in 0..50 {
        // A limit of 0 refuses everything Redis counts: these pass because nothing is counted.
        limiter.hit("mdc-test:down", 0, 60).await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redis_limits_survive_a_counter_left_without_expiry() {
    let Some((a, _)) = redis_instances().await else {
        return;
    };
    let Some(inspector) = crate::support::inspector().await else {
        return;
    };
    let limiter = a.rate_limiter();
    let key = unique("stuck");
    // As if a crash had come between INCR and EXPIRE: the next hit gives it the window's expiry.
    let counter = format!("mdc:rl:60:{key}");
    let _: () = fred::prelude::KeysInterface::set(&inspector, &counter, 5, None, None, false)
        .await
        .unwrap();
    assert!(limiter.hit(&key, 3, 60).await.is_err());
    let ttl: i64 = fred::prelude::KeysInterface::pttl(&inspector, &counter)
        .await
        .unwrap();
    assert!(0 < ttl && ttl <= 60_000, "PTTL {ttl}");
}
