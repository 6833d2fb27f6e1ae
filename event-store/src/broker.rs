//! A look at the broker before a process that needs it starts, so a broker that is down or a
//! refused login is reported at once with its address and the cause.
use std::str::FromStr;

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
