//! Request-wide guardrails as an async-graphql extension: stable codes for errors raised before any
//! resolver runs (parse, validation, depth and complexity limits), and the per-user mutation rate limit.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

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
