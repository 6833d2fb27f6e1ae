//! `GET /graphql/ws`: one WebSocket connection speaking `graphql-transport-ws`, served by
//! async-graphql's protocol machine. The connection is admitted at `connection_init` with the
//! token (or API key) in its payload, exactly like an HTTP request, and closed by the server
//! when its session or key is revoked, its user changes, or its access token expires.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use async_graphql::http::{WebSocket, WebSocketProtocols, WsMessage};
use async_graphql::Data;
use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;

use super::hub::{Closing, ConnectionGuard};
use crate::http::State;
use crate::schema::subscription::Feeds;
use crate::QueryError;

pub const PROTOCOL: &str = "graphql-transport-ws";
/// How long a connection may stay unauthenticated (the protocol's `4408`).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one message may wait for a client that does not read (its socket's buffers are
/// full) before the connection is dropped rather than held.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest client message: a subscription document with its variables.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What `connection_init` hands the connection once the caller is admitted.
struct Admitted {
    /// Keeps the connection in the register (where revocations find it) while it lives.
    _guard: ConnectionGuard,
    closing: oneshot::Receiver<Closing>,
    expires_at: i64,
}

pub(crate) async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, actix_web::Error> {
    let offered = req
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| list.split(',').any(|p| p.trim() == PROTOCOL));
    if !offered {
        let refusal = format!("a WebSocket upgrade offering the `{PROTOCOL}` subprotocol");
        return Err(QueryError::BadRequest(format!("this endpoint needs {refusal}")).into());
    }
    let (mut response, session, messages) = actix_ws::handle(&req, body)?;
    response
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(PROTOCOL));
    let incoming = messages
        .max_frame_size(MAX_MESSAGE_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE_BYTES);
    actix_web::rt::spawn(serve(state.into_inner(), session, incoming));
    Ok(response)
}

/// Runs one connection to its end.
async fn serve(state: Arc<State>, session: Session, incoming: actix_ws::AggregatedMessageStream) {
    let (admitted_tx, admitted_rx) = oneshot::channel::<Admitted>();
    let refusal: Arc<Mutex<Option<u16>>> = Arc::default();
    let on_init = {
        let state = state.clone();
        let refusal = refusal.clone();
        move |payload: serde_json::Value| admit(state, payload, admitted_tx, refusal)
    };
    let pong = session.clone();
    let client = incoming
        .take_while(|m| {
            std::future::ready(matches!(m, Ok(m) if !matches!(m, AggregatedMessage::Close(_))))
        })
        .filter_map(move |message| {
            let mut pong = pong.clone();
            async move {
                match message {
                    Ok(AggregatedMessage::Text(text)) => Some(text.into_bytes()),
                    Ok(AggregatedMessage::Binary(bytes)) => Some(bytes),
                    Ok(AggregatedMessage::Ping(bytes)) => {
                        let _ = pong.pong(&bytes).await;
                        None
                    }
                    _ => None,
                }
            }
        });
    let graphql = WebSocket::new(state.schema.clone(), client, WebSocketProtocols::GraphQLWS)
        .on_connection_init(on_init);
    let closing = run(session.clone(), Box::pin(graphql), admitted_rx, &refusal).await;
    let _ = session
        .close(closing.map(|(code, reason)| CloseReason {
            code: CloseCode::Other(code),
            description: Some(reason),
        }))
        .await;
}

/// Pumps the protocol's answers to the client until one side ends; returns the close code and
/// reason the server sends (None: the client went away or ended the connection).
async fn run<S>(
    mut session: Session,
    mut graphql: S,
    admitted: oneshot::Receiver<Admitted>,
    refusal: &Mutex<Option<u16>>,
) -> Option<(u16, String)>
where
    S: futures::Stream<Item = WsMessage> + Unpin,
{
    let mut admitted = admitted.fuse();
    let mut connection: Option<Admitted> = None;
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    loop {
        let expiry = connection.as_ref().map(|c| until(c.expires_at));
        tokio::select! {
            message = graphql.next() => match message {
                Some(WsMessage::Text(text)) => {
                    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return None,
                        Err(_) => {
                            metrics::counter!("b2b_subscriptions_dropped_total", "reason" => "slow")
                                .increment(1);
                            return Some((4008, "the client reads too slowly".into()));
                        }
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    // The protocol machine closes with 1002 when `connection_init` is refused;
                    // the protocol's own codes say why.
                    let code = refusal.lock().expect("refusal poisoned").take().unwrap_or(code);
                    return Some((code, reason));
                }
                None => return None,
            },
            Ok(ready) = &mut admitted, if connection.is_none() => connection = Some(ready),
            closing = async { (&mut connection.as_mut().expect("guarded").closing).await }, if connection.is_some() => {
                let closing = closing.unwrap_or(Closing { code: 4403, reason: "closed" });
                return Some((closing.code, closing.reason.to_owned()));
            }
            () = async { tokio::time::sleep(expiry.unwrap_or_default()).await }, if connection.is_some() => {
                metrics::counter!("b2b_subscriptions_dropped_total", "reason" => "expired").increment(1);
                return Some((4401, "the access token expired; reconnect with a fresh one".into()));
            }
            () = &mut init_deadline, if connection.is_none() => {
                return Some((4408, "connection initialisation timeout".into()));
            }
        }
    }
}

fn until(unix_seconds: i64) -> Duration {
    let left = unix_seconds - chrono::Utc::now().timestamp();
    Duration::from_secs(u64::try_from(left).unwrap_or(0))
}

/// `connection_init`: the payload's `token` (or `Authorization: Bearer …`) admitted like an
/// HTTP request's; the connection's data is the caller's claims and the feeds.
async fn admit(
    state: Arc<State>,
    payload: serde_json::Value,
    admitted: oneshot::Sender<Admitted>,
    refusal: Arc<Mutex<Option<u16>>>,
) -> async_graphql::Result<Data> {
    let refuse = |code: u16, error: QueryError| {
        *refusal.lock().expect("refusal poisoned") = Some(code);
        async_graphql::Error::new(format!("{}: {error}", error.code()))
    };
    let token = token_in(&payload).ok_or_else(|| refuse(4403, QueryError::Unauthorized))?;
    let hub = state.api.subscriptions.clone();
    let revocations = hub.revocations();
    let claims = state.api.identity.admit(&token).await.map_err(|error| {
        let error = QueryError::from(error);
        let code = match error {
            QueryError::TooManyRequests { .. } => 4429,
            _ => 4403,
        };
        refuse(code, error)
    })?;
    let (guard, closing) = hub.connect(&claims, revocations);
    let connection = Admitted {
        _guard: guard,
        closing,
        expires_at: claims.exp,
    };
    let _ = admitted.send(connection);
    let mut data = Data::default();
    data.insert(claims);
    data.insert(Feeds {
        hub,
        // The primary: the projector announced its commit there, and a standby may not have
        // replayed it yet (the change would then be read as it was before).
        reads: state.api.pool.clone(),
    });
    Ok(data)
}

/// `{"token": "…"}`, or `{"Authorization": "Bearer …"}` (any case) as GraphQL clients send it.
fn token_in(payload: &serde_json::Value) -> Option<String> {
    let object = payload.as_object()?;
    if let Some(token) = object.get("token").and_then(|t| t.as_str()) {
        return Some(token.to_owned());
    }
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
        .and_then(auth::bearer_token)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_token_is_read_from_either_shape_of_payload() {
        assert_eq!(token_in(&json!({"token": "abc"})).as_deref(), Some("abc"));
        let header = json!({"Authorization": "Bearer abc"});
        assert_eq!(token_in(&header).as_deref(), Some("abc"));
        assert_eq!(
            token_in(&json!({"authorization": "Bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(token_in(&json!({})), None);
        assert_eq!(token_in(&json!("abc")), None);
    }
}
