//! `seatMapChanged` served straight to the socket, for the documents most of a crowd sends: the
//! subscription field alone, selecting only its scalar fields (`kind seq statuses statusChanges`, what
//! a client following the compact formats asks for).
//!
//! Through async-graphql every message of every subscriber is executed as a query of its own: the
//! selection resolved field by field through the extensions, a response tree built, serialised, then
//! wrapped in the protocol's envelope, on the connection's task, which then wakes its writer. With
//! 10,000 subscribers that was most of the server's CPU during a storm. A recognised document is
//! rendered here instead, by the connection's writer, from the same [`SeatMapUpdate`]s
//! ([`seat_map_updates`]), to the same JSON.
//!
//! Recognition is deliberately narrow: a single subscription operation, no fragments, directives,
//! variable defaults or persisted-query extensions, arguments and variables of exactly the schema's
//! types. Anything else (and any set-up that fails: an unknown event, a malformed id) goes through
//! async-graphql as before, which validates it and reports errors in its own words.

use std::collections::HashSet;

use async_graphql::Name;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection,
};
use async_graphql_value::Value as GqlValue;
use futures::Stream;
use serde_json::Value;

use crate::auth::Viewer;
use crate::error::AppResult;
use crate::events::subscriptions::{
    SeatMapUpdate, SeatMapUpdateKind, SeatSnapshotFormat, seat_map_updates,
};
use crate::gql::parse_id;
use crate::persisted::PersistedQueries;
use crate::state::AppState;

const FIELD: &str = "seatMapChanged";

/// A `seatMapChanged` subscription the WebSocket serves itself.
#[derive(Debug, PartialEq)]
pub struct DirectSeatMap {
    /// The root field's response key: its alias, or `seatMapChanged`.
    root_key: String,
    event_id: String,
    since_seq: Option<i64>,
    format: SeatSnapshotFormat,
    /// Response key and field of each selected field, in the document's order.
    selection: Vec<(String, Scalar)>,
}

/// The fields of `SeatMapUpdate` a direct subscription may select.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    EventId,
    Kind,
    Seq,
    PreviousSeq,
    Statuses,
    StatusChanges,
    Typename,
}

impl Scalar {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "eventId" => Self::EventId,
            "kind" => Self::Kind,
            "seq" => Self::Seq,
            "previousSeq" => Self::PreviousSeq,
            "statuses" => Self::Statuses,
            "statusChanges" => Self::StatusChanges,
            "__typename" => Self::Typename,
            _ => return None,
        })
    }
}

impl DirectSeatMap {
    /// The subscription a `subscribe` (or legacy `start`) payload asks for, when it is one this module
    /// serves; `None` sends it through async-graphql. The document is parsed through the persisted
    /// queries' cache, so a crowd sending one text parses it once.
    pub fn recognize(payload: &Value, documents: &PersistedQueries) -> Option<Self> {
        let query = payload.get("query")?.as_str()?;
        if !payload.get("extensions").is_none_or(|extensions| {
            extensions.is_null() || *extensions == Value::Object(<_>::default())
        }) {
            return None;
        }
        let empty = serde_json::Map::new();
        let variables = match payload.get("variables") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(variables)) => variables,
            Some(_) => return None,
        };
        let operation_name = match payload.get("operationName") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name.as_str()),
            Some(_) => return None,
        };
        let document = documents.raw_document(query)?;
        Self::from_document(&document, operation_name, variables)
    }

    fn from_document(
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &serde_json::Map<String, Value>,
    ) -> Option<Self> {
        if !document.fragments.is_empty() {
            return None;
        }
        let operation = match &document.operations {
            // async-graphql refuses a name for an anonymous operation; so it must see this one.
            DocumentOperations::Single(_) if operation_name.is_some() => return None,
            DocumentOperations::Single(operation) => operation,
            DocumentOperations::Multiple(operations) if operations.len() == 1 => {
                let (name, operation) = operations.iter().next()?;
                if operation_name.is_some_and(|wanted| wanted != name.as_str()) {
                    return None;
                }
                operation
            }
            DocumentOperations::Multiple(_) => return None,
        };
        let operation = &operation.node;
        if operation.ty != OperationType::Subscription || !operation.directives.is_empty() {
            return None;
        }
        let [root] = operation.selection_set.node.items.as_slice() else {
            return None;
        };
        let Selection::Field(field) = &root.node else {
            return None;
        };
        let field = &field.node;
        if field.name.node != FIELD || !field.directives.is_empty() {
            return None;
        }

        // Each declared variable: its type, and whether an argument used it (GraphQL refuses unused
        // ones, so must this).
        let mut declared = Vec::new();
        for definition in &operation.variable_definitions {
            let definition = &definition.node;
            if !definition.directives.is_empty() || definition.default_value.is_some() {
                return None;
            }
            declared.push((
                definition.name.node.clone(),
                definition.var_type.node.to_string(),
            ));
        }
        let mut used = HashSet::new();
        let mut argument = |value: &GqlValue, variable_types: &[&str]| -> Option<Value> {
            match value {
                GqlValue::Variable(name) => {
                    let (_, ty) = declared.iter().find(|(declared, _)| declared == name)?;
                    if !variable_types.contains(&ty.as_str()) {
                        return None;
                    }
                    used.insert(name.clone());
                    Some(variables.get(name.as_str()).cloned().unwrap_or(Value::Null))
                }
                GqlValue::Null => Some(Value::Null),
                GqlValue::String(text) => Some(Value::String(text.clone())),
                GqlValue::Number(number) => Some(Value::Number(number.clone())),
                GqlValue::Enum(name) => Some(Value::String(name.to_string())),
                _ => None,
            }
        };

        let mut event_id = None;
        let mut since_seq = None;
        let mut format = SeatSnapshotFormat::default();
        let mut named = HashSet::new();
        for (name, value) in &field.arguments {
            if !named.insert(name.node.as_str()) {
                return None;
            }
            let value = &value.node;
            match name.node.as_str() {
                "eventId" => {
                    if matches!(value, GqlValue::Number(_) | GqlValue::Enum(_)) {
                        return None;
                    }
                    match argument(value, &["ID!"])? {
                        Value::String(id) => event_id = Some(id),
                        _ => return None,
                    }
                }
                "sinceSeq" => {
                    if matches!(value, GqlValue::String(_) | GqlValue::Enum(_)) {
                        return None;
                    }
                    since_seq = match argument(value, &["Int", "Int!"])? {
                        Value::Null => None,
                        Value::Number(number) => Some(number.as_i64()?),
                        _ => return None,
                    };
                }
                "snapshotFormat" => {
                    if matches!(value, GqlValue::String(_) | GqlValue::Null) {
                        return None;
                    }
                    format = match argument(value, &["SeatSnapshotFormat!"])? {
                        Value::String(format) => match format.as_str() {
                            "SEATS" => SeatSnapshotFormat::Seats,
                            "STATUSES" => SeatSnapshotFormat::Statuses,
                            "RUNS" => SeatSnapshotFormat::Runs,
                            _ => return None,
                        },
                        _ => return None,
                    };
                }
                _ => return None,
            }
        }
        let event_id = event_id?;
        if declared.len() != used.len() {
            return None;
        }

        let mut keys = HashSet::new();
        let mut selection = Vec::new();
        for item in &field.selection_set.node.items {
            let Selection::Field(selected) = &item.node else {
                return None;
            };
            let selected = &selected.node;
            if !selected.arguments.is_empty()
                || !selected.directives.is_empty()
                || !selected.selection_set.node.items.is_empty()
            {
                return None;
            }
            let key = response_key(
                selected.alias.as_ref().map(|a| &a.node),
                &selected.name.node,
            );
            if !keys.insert(key.clone()) {
                return None;
            }
            selection.push((key, Scalar::named(selected.name.node.as_str())?));
        }
        if selection.is_empty() {
            return None;
        }
        Some(Self {
            root_key: response_key(field.alias.as_ref().map(|a| &a.node), &field.name.node),
            event_id,
            since_seq,
            format,
            selection,
        })
    }

    /// The subscription's messages, or the reason it cannot start (which async-graphql then reports
    /// to the client in its own words).
    pub async fn updates(
        &self,
        state: &AppState,
        viewer: Option<&Viewer>,
    ) -> AppResult<impl Stream<Item = SeatMapUpdate> + Send + use<>> {
        let event_id = parse_id(&async_graphql::ID(self.event_id.clone()), "eventId")?;
        seat_map_updates(state, viewer, event_id, self.since_seq, self.format).await
    }

    /// The protocol message carrying `update` to subscription `id`: what async-graphql would send,
    /// `next` (graphql-transport-ws) or `data` (legacy graphql-ws).
    pub fn render(&self, id: &str, legacy: bool, update: &SeatMapUpdate) -> String {
        let text_len = update.statuses.as_deref().map_or(0, str::len)
            + update.status_changes.as_deref().map_or(0, str::len);
        let mut out = String::with_capacity(160 + text_len);
        out.push_str(if legacy {
            r#"{"type":"data","id":"#
        } else {
            r#"{"type":"next","id":"#
        });
        push_json_str(&mut out, id);
        out.push_str(r#","payload":{"data":{"#);
        push_json_str(&mut out, &self.root_key);
        out.push_str(":{");
        for (at, (key, scalar)) in self.selection.iter().enumerate() {
            if at > 0 {
                out.push(',');
            }
            push_json_str(&mut out, key);
            out.push(':');
            match scalar {
                Scalar::EventId => push_json_str(&mut out, &update.event_id),
                Scalar::Kind => out.push_str(match update.kind {
                    SeatMapUpdateKind::Snapshot => r#""SNAPSHOT""#,
                    SeatMapUpdateKind::Delta => r#""DELTA""#,
                }),
                Scalar::Seq => out.push_str(&update.seq.to_string()),
                Scalar::PreviousSeq => match update.previous_seq {
                    Some(seq) => out.push_str(&seq.to_string()),
                    None => out.push_str("null"),
                },
                Scalar::Statuses => push_optional_str(&mut out, update.statuses.as_deref()),
                Scalar::StatusChanges => {
                    push_optional_str(&mut out, update.status_changes.as_deref());
                }
                Scalar::Typename => out.push_str(r#""SeatMapUpdate""#),
            }
        }
        out.push_str("}}}}");
        out
    }
}

fn response_key(alias: Option<&Name>, name: &Name) -> String {
    alias.unwrap_or(name).to_string()
}

fn push_optional_str(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => push_json_str(out, text),
        None => out.push_str("null"),
    }
}

/// `text` as a JSON string. Statuses, ids and keys never need escaping, so they are copied as
/// they are; anything else goes through serde_json's escaping.
fn push_json_str(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&Value::from(text).to_string());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn documents() -> PersistedQueries {
        PersistedQueries::load(&Default::default()).expect("no manifest to read")
    }

    fn recognize(query: &str, variables: Value) -> Option<DirectSeatMap> {
        DirectSeatMap::recognize(
            &json!({ "query": query, "variables": variables }),
            &documents(),
        )
    }

    const EVENT: &str = "0f9d3c1e-2f6b-4a7e-9c1d-5b8e7a6f4c3d";

    #[test]
    fn the_compact_follow_is_recognised_with_its_arguments() {
        let direct = recognize(
            "subscription($e: ID!, $since: Int) { seatMapChanged(eventId: $e, sinceSeq: $since, snapshotFormat: RUNS) { kind seq statuses statusChanges } }",
            json!({ "e": EVENT, "since": 41 }),
        )
        .expect("recognised");
        assert_eq!(direct.event_id, EVENT);
        assert_eq!(direct.since_seq, Some(41));
        assert!(direct.format == SeatSnapshotFormat::Runs);
        assert_eq!(direct.root_key, "seatMapChanged");
        let keys: Vec<&str> = direct.selection.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["kind", "seq", "statuses", "statusChanges"]);

        let literal = recognize(
            &format!(
                r#"subscription Follow {{ map: seatMapChanged(eventId: "{EVENT}") {{ t: __typename seq }} }}"#
            ),
            Value::Null,
        )
        .expect("recognised");
        assert_eq!(literal.root_key, "map");
        assert!(literal.format == SeatSnapshotFormat::Seats);
        assert_eq!(literal.since_seq, None);
    }

    #[test]
    fn anything_async_graphql_must_judge_is_left_to_it() {
        let refused = [
            // An object field, fragments, directives, other root fields.
            "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind seats { seatId } } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e) { ...F } } fragment F on SeatMapUpdate { kind }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind @include(if: true) } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e) @skip(if: false) { kind } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind } availabilityChanged(eventId: $e) { seq } }",
            "subscription($e: ID!) { availabilityChanged(eventId: $e) { seq } }",
            "query($e: ID!) { seatMap(eventId: $e) { eventId } }",
            // Validation errors: wrong variable types, unused or undeclared variables, duplicates.
            "subscription($e: ID) { seatMapChanged(eventId: $e) { kind } }",
            "subscription($e: ID!, $x: Int) { seatMapChanged(eventId: $e) { kind } }",
            "subscription { seatMapChanged(eventId: $e) { kind } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind kind } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind nope } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e, snapshotFormat: \"RUNS\") { kind } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e, snapshotFormat: LETTERS) { kind } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e) }",
            "subscription { seatMapChanged { kind } }",
            "subscription($e: ID! = \"x\") { seatMapChanged(eventId: $e) { kind } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e, sinceSeq: 1.5) { kind } }",
            "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind } ",
        ];
        for query in refused {
            assert_eq!(recognize(query, json!({ "e": EVENT })), None, "{query}");
        }
        // A variable of the wrong JSON type, and a persisted-query extension.
        let follow = "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind } }";
        assert_eq!(recognize(follow, json!({ "e": 7 })), None);
        assert_eq!(recognize(follow, json!({})), None);
        assert!(recognize(follow, json!({ "e": EVENT })).is_some());
        let persisted = json!({ "query": follow, "variables": { "e": EVENT },
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "00" } } });
        assert_eq!(DirectSeatMap::recognize(&persisted, &documents()), None);
        // An operation name that is not the document's.
        let named = |query: &str, name: &str| {
            DirectSeatMap::recognize(
                &json!({ "query": query, "variables": { "e": EVENT }, "operationName": name }),
                &documents(),
            )
        };
        assert_eq!(named(follow, "Follow"), None);
        let follow_named = "subscription Follow($e: ID!) { seatMapChanged(eventId: $e) { kind } }";
        assert_eq!(named(follow_named, "Other"), None);
        assert!(named(follow_named, "Follow").is_some());
    }

    #[test]
    fn a_message_is_rendered_as_async_graphql_would_send_it() {
        let direct = recognize(
            "subscription($e: ID!) { m: seatMapChanged(eventId: $e, snapshotFormat: STATUSES) { __typename eventId kind seq p: previousSeq statuses statusChanges } }",
            json!({ "e": EVENT }),
        )
        .expect("recognised");
        let update = SeatMapUpdate {
            event_id: async_graphql::ID(EVENT.to_owned()),
            kind: SeatMapUpdateKind::Delta,
            seq: 12,
            previous_seq: Some(9),
            seats: Arc::from(Vec::new()),
            statuses: None,
            status_changes: Some(Arc::from("0H17S")),
        };
        let text = direct.render("sub \"1\"", false, &update);
        let message: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            message,
            json!({ "type": "next", "id": "sub \"1\"", "payload": { "data": { "m": {
                "__typename": "SeatMapUpdate", "eventId": EVENT, "kind": "DELTA", "seq": 12,
                "p": 9, "statuses": null, "statusChanges": "0H17S" } } } })
        );
        let legacy: Value = serde_json::from_str(&direct.render("1", true, &update)).expect("JSON");
        assert_eq!(legacy["type"], "data");
    }
}
