//! How a replica hears of other replicas' writes: the subscription to the
//! events channel, and the heartbeat that proves it live.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult};

use super::MAX_RECONNECT_DELAY;
use super::cache::{Cache, Event, HEARTBEAT_EVERY};

/// A subscription that hears nothing, not even its own heartbeat, for this
/// long is torn down and made again.
const SILENCE: Duration = Duration::from_secs(3);

/// Proves the subscription live: a message on our own channel, every
/// [`HEARTBEAT_EVERY`], carrying when it was sent.
pub(super) async fn heartbeat(
    mut conn: ConnectionManager,
    cache: Arc<Cache>,
    channel: String,
    base: Instant,
    timeout: Duration,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let sent = base.elapsed().as_micros() as u64;
        let published =
            tokio::time::timeout(timeout, conn.publish::<_, _, ()>(&channel, sent)).await;
        if !matches!(published, Ok(Ok(()))) {
            cache.distrust();
        }
    }
}

/// Listens for announcements of writes and for this replica's heartbeats,
/// and comes back by itself when Redis does.
pub(super) struct Subscription {
    pub(super) client: redis::Client,
    pub(super) cache: Arc<Cache>,
    pub(super) events: String,
    pub(super) heartbeat: String,
    pub(super) base: Instant,
    pub(super) connect_timeout: Duration,
}

impl Subscription {
    pub(super) async fn run(self) {
        let mut delay = Duration::from_millis(100);
        let mut was_up = true;
        loop {
            let subscribed = tokio::time::timeout(self.connect_timeout, async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&[&self.events, &self.heartbeat]).await?;
                RedisResult::Ok(pubsub)
            })
            .await;
            let mut pubsub = match subscribed {
                Ok(Ok(pubsub)) => pubsub,
                failed => {
                    if was_up {
                        let error = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "no answer".into(),
                        };
                        tracing::warn!(%error, "redis subscription down; every check goes to Redis until it is back");
                        was_up = false;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                    continue;
                }
            };
            // Anything announced before this point may have been missed.
            self.cache.resubscribed();
            if !was_up {
                tracing::info!("redis subscription back");
            }
            delay = Duration::from_millis(100);
            let mut messages = pubsub.on_message();
            // Ends when the connection closes or stays silent too long.
            while let Ok(Some(message)) = tokio::time::timeout(SILENCE, messages.next()).await {
                self.handle(&message);
            }
            self.cache.distrust();
            tracing::warn!("redis subscription lost; every check goes to Redis until it is back");
            was_up = false;
        }
    }

    fn handle(&self, message: &redis::Msg) {
        let payload = String::from_utf8_lossy(message.get_payload_bytes());
        if message.get_channel_name() == self.heartbeat {
            // Only a heartbeat sent in the past proves anything.
            let sent = payload
                .parse::<u64>()
                .ok()
                .and_then(|micros| self.base.checked_add(Duration::from_micros(micros)))
                .filter(|sent| *sent <= Instant::now());
            if let Some(sent) = sent {
                self.cache.heartbeat(sent);
            }
        } else {
            match Event::parse(&payload) {
                Some(event) => self.cache.apply(event),
                // A write announced in a form this version cannot read (a
                // newer replica?): forget everything it might have touched.
                None => self.cache.resubscribed(),
            }
        }
    }
}
