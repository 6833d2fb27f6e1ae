//! A look at the broker before a process that needs it starts, so a broker that is down or a
//! refused login is reported at once with its address and the cause; and what `/health/ready`
//! reports of the broker ([`BrokerHealth`]).
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties, ErrorKind};

use crate::db::CONNECT_TIMEOUT;
use crate::StoreError;

/// Opens and closes one connection to the broker at `amqp_url`, within [`CONNECT_TIMEOUT`].
pub async fn check(amqp_url: &str) -> Result<(), StoreError> {
    let address = match AMQPUri::from_str(amqp_url) {
        Ok(uri) => format!("{}:{}", uri.authority.host, uri.authority.port),
        Err(error) => {
            return Err(StoreError::Unreachable {
                service: "RabbitMQ",
                address: "AMQP_URL".into(),
                cause: format!("not a valid AMQP URL: {error}"),
            })
        }
    };
    let unreachable = |cause: String| StoreError::Unreachable {
        service: "RabbitMQ",
        address: address.clone(),
        cause,
    };
    let properties = ConnectionProperties::default().with_connection_name("b2b-check".into());
    let connection =
        tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(amqp_url, properties))
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|error| unreachable(cause(&error)))?;
    let _ = connection.close(200, "checked".into()).await;
    Ok(())
}

/// The socket error's kind ("connection refused"), or lapin's own words for anything else (a
/// refused login among them).
fn cause(error: &lapin::Error) -> String {
    match error.kind() {
        ErrorKind::IOError(io) if io.raw_os_error().is_some() => io.kind().to_string(),
        _ => error.to_string(),
    }
}

/// How long a readiness answer from a probe connection stands, in a process that holds no
/// broker connection of its own to go by.
pub const PROBE_TTL: Duration = Duration::from_secs(5);

/// What the process knows of the broker, for `/health/ready`: the state of its own long-lived
/// connections (the consumers', the leading relay's), each kept here by the worker that owns
/// it. A process holding none (an API alone, a standby relay) probes instead, at most once per
/// [`PROBE_TTL`] however often it is asked, so probes never load the broker.
#[derive(Clone, Default)]
pub struct BrokerHealth {
    links: Arc<Mutex<HashMap<String, bool>>>,
    probed: Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>,
}

impl BrokerHealth {
    /// A worker's connection is open (`true`) or lost, its worker reconnecting (`false`).
    pub fn link(&self, name: &str, up: bool) {
        if let Ok(mut links) = self.links.lock() {
            links.insert(name.to_owned(), up);
        }
    }

    /// A worker closed its connection on purpose (stopping, or a relay gone standby): it no
    /// longer speaks for the broker.
    pub fn unlink(&self, name: &str) {
        if let Ok(mut links) = self.links.lock() {
            links.remove(name);
        }
    }

    /// Whether the broker is reachable: every connection of the process's own is open, or,
    /// when it holds none, a probe (cached for [`PROBE_TTL`]) connected.
    pub async fn is_up(&self, amqp_url: &str) -> bool {
        if let Some(up) = self.by_links() {
            return up;
        }
        // One probe at a time: concurrent readiness checks wait for it and share its answer.
        let mut probed = self.probed.lock().await;
        if let Some((at, up)) = *probed {
            if at.elapsed() < PROBE_TTL {
                return up;
            }
        }
        let up = probe(amqp_url).await;
        *probed = Some((Instant::now(), up));
        up
    }

    fn by_links(&self) -> Option<bool> {
        let links = self.links.lock().ok()?;
        (!links.is_empty()).then(|| links.values().all(|up| *up))
    }
}

impl std::fmt::Debug for BrokerHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("BrokerHealth")
            .field("links", &self.links.lock().ok())
            .finish_non_exhaustive()
    }
}

/// Opens and closes one connection within 2 s.
async fn probe(amqp_url: &str) -> bool {
    let properties = ConnectionProperties::default().with_connection_name("b2b-ready".into());
    let opened = tokio::time::timeout(
        Duration::from_secs(2),
        Connection::connect(amqp_url, properties),
    );
    match opened.await {
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "probed".into()).await;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing listens on port 1: a probe fails at once.
    const NOBODY: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

    #[tokio::test]
    async fn the_processs_own_connections_decide_and_without_them_a_probe_does() {
        let health = BrokerHealth::default();
        assert!(
            !health.is_up(NOBODY).await,
            "no connection and a failed probe"
        );
        health.link("read-models", true);
        health.link("relay", true);
        assert!(health.is_up(NOBODY).await, "own connections open: no probe");
        health.link("relay", false);
        assert!(!health.is_up(NOBODY).await, "one connection lost");
        health.link("relay", true);
        health.unlink("read-models");
        assert!(health.is_up(NOBODY).await);
        health.unlink("relay");
        assert!(
            !health.is_up(NOBODY).await,
            "none left: the cached probe again"
        );
    }
}
