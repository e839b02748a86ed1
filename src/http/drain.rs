//! Draining at shutdown: requests in flight on the public listener are
//! counted, so that a stop can wait for them before it stops the workers.
//!
//! actix-server's graceful stop alone can cut a request short: its accept
//! thread, stopping, closes the workers' connection queues while the stop
//! message is still on its way, and a worker that sees its queue closed
//! first ends at once, with every connection it serves. So [`super::Stopper`]
//! stops accepting, waits here for the requests in flight, and stops the
//! workers only then.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tokio::sync::Notify;

/// Requests being served, shared by every worker of a listener.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    drained: Notify,
}

/// One request being served; dropped when its handler is done (or dropped,
/// when the client goes away).
struct Serving(Arc<InFlight>);

impl Drop for Serving {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl InFlight {
    /// Requests being served now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no request is being served, at most `limit`; whether
    /// none was left.
    pub async fn drained(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.drained.notified();
                if self.count() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// Counts the request while its handler runs (a WebSocket tunnel, once
/// switched over, is no longer a request).
pub async fn count_requests(
    in_flight: Arc<InFlight>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    in_flight.count.fetch_add(1, Ordering::AcqRel);
    let _serving = Serving(in_flight);
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_the_last_request() {
        let in_flight = Arc::new(InFlight::default());
        assert!(in_flight.drained(Duration::from_millis(10)).await);
        in_flight.count.fetch_add(1, Ordering::AcqRel);
        let serving = Serving(Arc::clone(&in_flight));
        assert!(!in_flight.drained(Duration::from_millis(20)).await);
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(serving);
        });
        assert!(in_flight.drained(Duration::from_secs(5)).await);
        release.await.unwrap();
        assert_eq!(in_flight.count(), 0);
    }
}
