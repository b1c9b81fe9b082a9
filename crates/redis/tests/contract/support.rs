//! Backends for the contract suites.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config};
use mdcreator_redis::{RedisClients, RedisSettings};

/// `REDIS_URL`, when this run has a Redis.
pub fn redis_url() -> Option<String> {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|u| u.starts_with("redis"))
}

/// A name no other test (or earlier run) uses.
pub fn unique(what: &str) -> String {
    format!("mdc-test:{what}:{}", uuid::Uuid::new_v4().simple())
}

/// Two "server instances" on the Redis at `REDIS_URL`, or `None` when it is not set.
pub async fn redis_instances() -> Option<(RedisClients, RedisClients)> {
    let url = redis_url()?;
    let a = RedisClients::connect(&url, RedisSettings::default())
        .await
        .expect("connect to Redis");
    let b = RedisClients::connect(&url, RedisSettings::default())
        .await
        .expect("connect to Redis");
    a.ping().await.expect("Redis answers on REDIS_URL");
    Some((a, b))
}

/// A plain client for looking at Redis from the outside.
pub async fn inspector() -> Option<Client> {
    let url = redis_url()?;
    let client = Builder::from_config(Config::from_url(&url).expect("REDIS_URL"))
        .build()
        .expect("client");
    client.init().await.expect("connect to Redis");
    Some(client)
}

/// Settings for tests against a Redis that is down: no waiting for it at start.
pub fn impatient() -> RedisSettings {
    RedisSettings {
        initial_connect_wait: Duration::ZERO,
        ..quick_reconnect()
    }
}

/// Settings for tests against a Redis that goes down and comes back.
pub fn quick_reconnect() -> RedisSettings {
    RedisSettings {
        reconnect_max_delay: Duration::from_millis(300),
        ..RedisSettings::default()
    }
}

/// A local TCP port with nothing listening on it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A throwaway `redis-server` of this test's own (to stop and restart at will), killed on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// `None` when there is no `redis-server` binary (or no `REDIS_URL`: Redis tests are off).
    pub async fn start(port: u16) -> Option<Self> {
        redis_url()?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("no redis-server binary: skipping");
            return None;
        };
        let own = Self {
            port,
            child: Some(child),
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(own);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Both halves of an in-process "pair" are the same adapter.
pub fn twice<T: ?Sized>(adapter: Arc<T>) -> (Arc<T>, Arc<T>) {
    (adapter.clone(), adapter)
}
