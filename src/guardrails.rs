//! Request-wide guardrails as an async-graphql extension: stable codes for errors raised before any
//! resolver runs (parse, validation, depth and complexity limits), strings PostgreSQL cannot store,
//! and the per-user mutation rate limit.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};
use async_graphql_value::{ConstValue, Value};

use crate::auth::Viewer;
use crate::auth::throttle::Throttles;

pub struct Guardrails {
    throttles: Arc<Throttles>,
}

impl Guardrails {
    pub fn new(throttles: Arc<Throttles>) -> Self {
        Self { throttles }
    }
}

impl ExtensionFactory for Guardrails {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardrailsExtension {
            throttles: Arc::clone(&self.throttles),
        })
    }
}

struct GuardrailsExtension {
    throttles: Arc<Throttles>,
}

/// Sets `extensions.code` on an error that has none.
pub fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
    error
}

#[async_graphql::async_trait::async_trait]
impl Extension for GuardrailsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next
            .run(ctx, query, variables)
            .await
            .map_err(|error| with_code(error, "GRAPHQL_PARSE_FAILED"))?;
        // PostgreSQL text cannot hold NUL: refused here with a code, not as a database error from
        // whichever insert meets it first (a coalesced batch's would fail every buyer in it).
        if variables.values().any(has_nul) || document_has_nul(&document) {
            return Err(with_code(
                ServerError::new("strings must not contain NUL (\\u0000) characters", None),
                "BAD_USER_INPUT",
            ));
        }
        let has_mutation = document
            .operations
            .iter()
            .any(|(_, operation)| operation.node.ty == OperationType::Mutation);
        if has_mutation {
            if let Some(viewer) = ctx.data_opt::<Viewer>() {
                if !self
                    .throttles
                    .mutations_per_user
                    .try_acquire(&viewer.user_id.to_string())
                {
                    return Err(with_code(
                        ServerError::new("too many requests; slow down and retry shortly", None),
                        "TOO_MANY_REQUESTS",
                    ));
                }
            }
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|error| {
                    // async-graphql reports the limits only through these messages.
                    let code = if error.message.contains("nested too deep") {
                        "QUERY_TOO_DEEP"
                    } else if error.message.contains("too complex") {
                        "QUERY_TOO_COMPLEX"
                    } else {
                        "GRAPHQL_VALIDATION_FAILED"
                    };
                    with_code(error, code)
                })
                .collect()
        })
    }
}

fn has_nul(value: &ConstValue) -> bool {
    match value {
        ConstValue::String(text) => text.contains('\0'),
        ConstValue::List(items) => items.iter().any(has_nul),
        ConstValue::Object(fields) => fields.values().any(has_nul),
        _ => false,
    }
}

/// Whether a string literal anywhere in the document (arguments, directives, variable defaults)
/// holds a NUL.
fn document_has_nul(document: &ExecutableDocument) -> bool {
    let literal_has_nul = |value: &Value| {
        // Variables are checked with the request's variables; here they are nothing.
        value
            .clone()
            .into_const_with(|_| Ok::<_, std::convert::Infallible>(ConstValue::Null))
            .is_ok_and(|value| has_nul(&value))
    };
    fn selections_have_nul(set: &SelectionSet, literal_has_nul: &dyn Fn(&Value) -> bool) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                field
                    .arguments
                    .iter()
                    .chain(field.directives.iter().flat_map(|d| &d.node.arguments))
                    .any(|(_, value)| literal_has_nul(&value.node))
                    || selections_have_nul(&field.selection_set.node, literal_has_nul)
            }
            Selection::InlineFragment(fragment) => {
                selections_have_nul(&fragment.node.selection_set.node, literal_has_nul)
            }
            Selection::FragmentSpread(_) => false,
        })
    }
    let defaults_have_nul = document.operations.iter().any(|(_, operation)| {
        operation
            .node
            .variable_definitions
            .iter()
            .any(|definition| {
                definition
                    .node
                    .default_value
                    .as_ref()
                    .is_some_and(|value| has_nul(&value.node))
            })
    });
    let operations = document
        .operations
        .iter()
        .map(|(_, operation)| &operation.node.selection_set.node);
    let fragments = document
        .fragments
        .values()
        .map(|fragment| &fragment.node.selection_set.node);
    defaults_have_nul
        || operations
            .chain(fragments)
            .any(|set| selections_have_nul(set, &literal_has_nul))
}
