//! The async-graphql extension that counts requests, errors, bookings and holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextResolve, NextSubscribe, ResolveInfo,
};
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{PathSegment, Request, Response, ServerResult, Value, Variables};
use futures::StreamExt;

use super::Metrics;

/// Label of a request that failed before its document was parsed (bad JSON extension, unknown
/// persisted query, ...).
const UNPARSED: &str = "(unparsed)";
/// Field label of an error that belongs to no root field (parse, validation, rate limit).
const NO_FIELD: &str = "(request)";
/// Code label of an error without `extensions.code`.
const NO_CODE: &str = "(none)";

pub struct GraphQLMetrics(Metrics);

impl GraphQLMetrics {
    pub fn new(metrics: Metrics) -> Self {
        Self(metrics)
    }
}

impl ExtensionFactory for GraphQLMetrics {
    // Called once per request (or per subscription), so the extension's state is the request's own.
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MetricsExtension {
            metrics: self.0.clone(),
            request: Arc::default(),
        })
    }
}

#[derive(Default)]
struct RequestFacts {
    operation_name: Option<String>,
    /// Operation name, or the first root field of an unnamed operation.
    label: Option<String>,
    kind: Option<&'static str>,
    /// Response key (alias or name) of each root field resolved, to its field name.
    root_fields: HashMap<String, String>,
}

struct MetricsExtension {
    metrics: Metrics,
    /// Shared with the response stream of a subscription, which outlives the hook that made it.
    request: Arc<Mutex<RequestFacts>>,
}

fn lock(facts: &Mutex<RequestFacts>) -> std::sync::MutexGuard<'_, RequestFacts> {
    facts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MetricsExtension {
    fn facts(&self) -> std::sync::MutexGuard<'_, RequestFacts> {
        lock(&self.request)
    }
}

/// Counts each error of a response under its root field and `extensions.code`.
fn count_errors(metrics: &Metrics, facts: &RequestFacts, response: &Response) {
    for error in &response.errors {
        let field = match error.path.first() {
            Some(PathSegment::Field(key)) => facts
                .root_fields
                .get(key)
                .map_or(key.as_str(), String::as_str),
            _ => NO_FIELD,
        };
        let code = error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
            .and_then(|code| match code {
                Value::String(code) => Some(code.as_str()),
                _ => None,
            })
            .unwrap_or(NO_CODE);
        metrics.count_error(field, code);
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for MetricsExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let elapsed = started.elapsed();
        let facts = self.facts();
        let label = facts.label.as_deref().unwrap_or(UNPARSED);
        self.metrics
            .observe_operation(label, facts.kind.unwrap_or("unknown"), elapsed);
        count_errors(&self.metrics, &facts, &response);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let guard = self.metrics.streaming_operation();
        let metrics = self.metrics.clone();
        let facts = Arc::clone(&self.request);
        next.run(ctx, stream)
            .map(move |response| {
                // The guard lives as long as the stream: the gauge drops when the client stops it.
                let _held = &guard;
                if !response.errors.is_empty() {
                    count_errors(&metrics, &lock(&facts), &response);
                }
                response
            })
            .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.facts().operation_name = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut facts = self.facts();
        if let Some((label, kind)) = describe(&document, facts.operation_name.as_deref()) {
            facts.label = Some(label);
            facts.kind = Some(kind);
        }
        Ok(document)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_some() {
            return next.run(ctx, info).await;
        }
        let field = info.name;
        {
            // A subscription resolves its root field again for every message it sends: noted once.
            let mut facts = self.facts();
            let key = info.alias.unwrap_or(field);
            if !facts.root_fields.contains_key(key) {
                facts.root_fields.insert(key.to_owned(), field.to_owned());
            }
        }
        let result = next.run(ctx, info).await;
        if matches!(&result, Ok(Some(value)) if *value != Value::Null) {
            self.metrics.root_field_succeeded(field);
        }
        result
    }
}

/// The label and type of the operation a request runs: its name, or its first root field.
fn describe(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(String, &'static str)> {
    let operation = document
        .operations
        .iter()
        .find(|(name, _)| operation_name.is_none() || name.map(|n| n.as_str()) == operation_name)?;
    let (name, definition) = operation;
    let kind = match definition.node.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    let label = match name {
        Some(name) => name.to_string(),
        None => definition
            .node
            .selection_set
            .node
            .items
            .iter()
            .find_map(|selection| match &selection.node {
                Selection::Field(field) => Some(field.node.name.node.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "(anonymous)".to_owned()),
    };
    Some((label, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).expect("a valid document")
    }

    #[test]
    fn a_named_operation_is_labelled_by_its_name() {
        let document = parse("mutation Buy { bookTickets(input: {}) { id } }");
        assert_eq!(
            describe(&document, None),
            Some(("Buy".to_owned(), "mutation"))
        );
    }

    #[test]
    fn an_unnamed_operation_is_labelled_by_its_first_root_field() {
        let document = parse("{ events { edges { cursor } } venues { edges { cursor } } }");
        assert_eq!(
            describe(&document, None),
            Some(("events".to_owned(), "query"))
        );
    }

    #[test]
    fn the_requested_operation_of_several_is_the_one_labelled() {
        let document = parse(
            "query A { events { edges { cursor } } } query B { venues { edges { cursor } } }",
        );
        assert_eq!(
            describe(&document, Some("B")),
            Some(("B".to_owned(), "query"))
        );
    }
}
