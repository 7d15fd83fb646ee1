//! A small GraphQL-over-HTTP client: one POST per operation, answers split into data or an error code.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The outcome of one operation: its data, or the first error's `extensions.code`.
pub enum Answer {
    Data(Value),
    Refused { code: String, message: String },
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    endpoint: String,
}

impl Api {
    pub fn new(base: &str, max_connections: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(max_connections)
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            endpoint: format!("{}/graphql", base.trim_end_matches('/')),
        })
    }

    /// Sends one operation; transport failures are `TRANSPORT`, non-JSON answers `HTTP_<status>`.
    pub async fn call(&self, token: Option<&str>, query: &str, variables: Value) -> Answer {
        let mut request = self
            .http
            .post(&self.endpoint)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                return Answer::Refused {
                    code: "TRANSPORT".into(),
                    message: err.to_string(),
                };
            }
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(_) => {
                return Answer::Refused {
                    code: format!("HTTP_{}", status.as_u16()),
                    message: status.to_string(),
                };
            }
        };
        match body.get("errors").and_then(|e| e.get(0)) {
            Some(error) => Answer::Refused {
                code: error["extensions"]["code"]
                    .as_str()
                    .unwrap_or("UNKNOWN")
                    .to_owned(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
            },
            None => Answer::Data(body["data"].clone()),
        }
    }

    /// An operation that must succeed (set-up and audit).
    pub async fn must(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        match self.call(token, query, variables).await {
            Answer::Data(data) => Ok(data),
            Answer::Refused { code, message } => bail!("{code}: {message}"),
        }
    }

    /// The WebSocket address of the same endpoint.
    pub fn ws_url(&self) -> String {
        self.endpoint.replacen("http", "ws", 1)
    }
}
