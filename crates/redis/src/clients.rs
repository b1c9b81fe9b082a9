//! Connecting to Redis: one command client (publish, presence, rate limits) and one subscriber
//! client (pub/sub), both with bounded waits everywhere. fred's defaults wait forever (no command
//! timeout, unbounded queue, no reconnect policy); every one of them is set here.

use std::time::Duration;

use anyhow::Context;
use fred::clients::SubscriberClient;
use fred::prelude::{Builder, Client, ClientLike, Config, Options, ReconnectPolicy, TcpConfig};
use fred::types::config::UnresponsiveConfig;

use crate::fanout::RedisFanout;
use crate::limiter::RedisRateLimiter;
use crate::presence::RedisPresence;
use crate::tickets::RedisTickets;

/// Timeouts and limits of the Redis adapters. The defaults suit production; tests shorten some.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Upper bound of every command (presence, `ping`, SUBSCRIBE…).
    pub command_timeout: Duration,
    /// Publishing gives up after this and reports `Unavailable` (fan-out is best effort).
    pub publish_timeout: Duration,
    /// A rate-limit check gives up after this and lets the request through.
    pub limiter_timeout: Duration,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Commands queued while the connection is down; beyond this they fail at once.
    pub max_queued_commands: usize,
    /// Reconnection backs off exponentially from `reconnect_min_delay` to `reconnect_max_delay`,
    /// and never gives up.
    pub reconnect_min_delay: Duration,
    pub reconnect_max_delay: Duration,
    /// Messages a local subscriber may fall behind by before it misses some.
    pub subscriber_buffer: usize,
    /// How long [`RedisClients::connect`] waits for the first connection before returning anyway
    /// (Redis being down at start must not keep the server from starting).
    pub initial_connect_wait: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(1),
            publish_timeout: Duration::from_millis(500),
            limiter_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(2),
            max_queued_commands: 4096,
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
            subscriber_buffer: 1024,
            initial_connect_wait: Duration::from_secs(2),
        }
    }
}

/// Connects with [`RedisSettings::default`]. See [`RedisClients::connect`].
pub async fn connect(url: &str) -> anyhow::Result<RedisClients> {
    RedisClients::connect(url, RedisSettings::default()).await
}

/// The connections of one server instance and the adapters built over them.
#[derive(Clone)]
pub struct RedisClients {
    commands: Client,
    fanout: RedisFanout,
    settings: RedisSettings,
}

impl RedisClients {
    /// Parses `url` (`redis://`, or `rediss://` for TLS with the system's root certificates) and
    /// starts both connections. Fails only on a malformed URL or TLS setup: when Redis cannot be
    /// reached the clients keep reconnecting in the background, every command fails within its
    /// timeout meanwhile, and [`RedisClients::ping`] reports it.
    pub async fn connect(url: &str, settings: RedisSettings) -> anyhow::Result<Self> {
        if url.starts_with("rediss:") {
            // fred's TLS builder panics when rustls cannot tell which crypto provider to use.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        // The URL may hold a password: it never goes into an error or a log line.
        let mut config = Config::from_url(url)
            .map_err(|e| anyhow::anyhow!("invalid Redis URL: {}", e.details()))?;
        // The first connection follows the reconnect policy too, instead of failing the start.
        config.fail_fast = false;

        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = settings.connect_timeout;
                c.internal_command_timeout = settings.connect_timeout;
                c.max_command_buffer_len = settings.max_queued_commands;
                c.max_command_attempts = 2;
                c.tcp = TcpConfig {
                    nodelay: Some(true),
                    ..TcpConfig::default()
                };
                // A connection that stops answering (half-open TCP) is closed and reopened.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(settings.command_timeout * 5),
                    interval: Duration::from_secs(1),
                };
            })
            .with_performance_config(|p| {
                p.default_command_timeout = settings.command_timeout;
                // fred's pub/sub broadcast: the dispatcher drains it at once, this only absorbs
                // bursts.
                p.broadcast_channel_capacity = 4096;
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0, // never give up
                millis(settings.reconnect_min_delay),
                millis(settings.reconnect_max_delay),
                2,
            ));
        let commands = builder.build().context("configuring the Redis client")?;
        let subscriber = builder
            .build_subscriber_client()
            .context("configuring the Redis subscriber")?;
        commands.connect();
        subscriber.connect();

        let clients = Self {
            fanout: RedisFanout::new(commands.clone(), subscriber.clone(), &settings),
            commands,
            settings,
        };
        if !clients.wait_until_connected(&subscriber).await {
            tracing::warn!("Redis is not reachable yet; retrying in the background");
        }
        Ok(clients)
    }

    /// Pub/sub between instances.
    pub fn fanout(&self) -> RedisFanout {
        self.fanout.clone()
    }

    /// Who is connected to which document, on every instance.
    pub fn presence(&self) -> RedisPresence {
        RedisPresence::new(self.commands.clone(), self.settings.command_timeout)
    }

    /// Fixed-window counters shared by every instance.
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self.commands.clone(), self.settings.limiter_timeout)
    }

    /// Single-use WebSocket tickets any instance can take.
    pub fn tickets(&self) -> RedisTickets {
        RedisTickets::new(self.commands.clone(), self.settings.command_timeout)
    }

    /// For `/readyz`: `PING` answered within the command timeout, and the subscriber connected.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let _: String = self
            .commands
            .with_options(&fail_fast(self.settings.command_timeout))
            .ping(None)
            .await
            .context("Redis did not answer PING")?;
        anyhow::ensure!(
            self.fanout.is_connected(),
            "the Redis subscriber is not connected"
        );
        Ok(())
    }

    /// Closes both connections (graceful shutdown; tests).
    pub async fn quit(&self) {
        let _ = self.fanout.quit().await;
        let _ = self.commands.quit().await;
    }

    async fn wait_until_connected(&self, subscriber: &SubscriberClient) -> bool {
        let deadline = tokio::time::Instant::now() + self.settings.initial_connect_wait;
        loop {
            if self.commands.is_connected() && subscriber.is_connected() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Options of a command that must not wait for a reconnection: it fails at once while the
/// connection is down, and after `timeout` otherwise.
pub(crate) fn fail_fast(timeout: Duration) -> Options {
    Options {
        timeout: Some(timeout),
        fail_fast: true,
        max_attempts: Some(1),
        ..Options::default()
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
