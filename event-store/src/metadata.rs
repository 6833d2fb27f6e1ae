use std::collections::HashMap;

use aggregates::Actor;
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// Who, when and why, stored with every event. postgres-es stores metadata as a string map.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMetadata {
    pub tenant_id: Uuid,
    pub actor: Actor,
    /// The request or process chain this change belongs to.
    pub correlation_id: Uuid,
    /// The request or event that directly caused it.
    pub causation_id: Uuid,
    pub request_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub client: Option<String>,
    /// The W3C trace context of the span that made the change (`crate::trace`), so the relay
    /// and the consumers continue the request's trace.
    pub traceparent: Option<String>,
    /// When the actor is an API key: its id (also the actor's `user_id`), so the audit log
    /// names the key.
    pub api_key_id: Option<Uuid>,
}

impl EventMetadata {
    /// The stored form: a JSON object of strings (postgres-es's metadata map).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.to_map()
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        )
    }

    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            ("tenant_id".to_owned(), self.tenant_id.to_string()),
            ("correlation_id".to_owned(), self.correlation_id.to_string()),
            ("causation_id".to_owned(), self.causation_id.to_string()),
            ("request_id".to_owned(), self.request_id.to_string()),
            (
                "recorded_at".to_owned(),
                self.recorded_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
            ),
        ]);
        match &self.actor {
            Actor::User { user_id, .. } => {
                map.insert("user_id".to_owned(), user_id.to_string());
            }
            Actor::System { process } => {
                map.insert("system_process".to_owned(), process.clone());
            }
        }
        if let Some(key) = self.api_key_id {
            map.insert("api_key_id".to_owned(), key.to_string());
        }
        if let Some(client) = &self.client {
            map.insert("client".to_owned(), client.clone());
        }
        if let Some(traceparent) = &self.traceparent {
            map.insert(crate::trace::TRACEPARENT.to_owned(), traceparent.clone());
        }
        map
    }
}
