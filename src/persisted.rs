//! Persisted queries, as an async-graphql extension on both transports (HTTP and WebSocket share the
//! schema, so they share the cache and the safelist).
//!
//! - Automatic persisted queries (Apollo's APQ protocol): a client sends
//!   `extensions.persistedQuery.sha256Hash` alone; an unknown hash is `PERSISTED_QUERY_NOT_FOUND`, the
//!   client sends the document with its hash once, and later requests carry only the hash.
//! - Known documents only (`PERSISTED_QUERIES_ONLY`): the server accepts the documents of a manifest
//!   loaded at start and nothing else, so a production API runs only queries its own clients were built
//!   with. A raw or unknown document is `PERSISTED_QUERY_REQUIRED`.
//!
//! - Raw documents are remembered too (unless only known documents are accepted): a client that sends
//!   the same query text again and again, as SPAs and load generators do, has it parsed once. Parsing
//!   was a few per cent of the server's CPU in a booking storm.
//!
//! async-graphql ships an APQ extension, but its errors carry no `extensions.code` and it has no
//! safelist; this one speaks the same protocol with our codes. Documents are kept parsed, and the
//! parse hook of the other extensions (the mutation rate limit, metrics) still sees every document.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ErrorExtensions, Pos, Request, ServerError, ServerResult};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// How persisted queries behave, from Config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedQueryConfig {
    /// Accept only the documents of the manifest.
    pub only_known: bool,
    /// JSON manifest of documents by sha256: required with `only_known`, preloaded otherwise.
    pub manifest: Option<std::path::PathBuf>,
    /// Documents remembered from clients (APQ); 0 turns automatic registration off.
    pub cache_size: usize,
}

impl Default for PersistedQueryConfig {
    fn default() -> Self {
        Self {
            only_known: false,
            manifest: None,
            cache_size: 1000,
        }
    }
}

/// The manifest file: a JSON object of documents by their sha256 (hex), or the manifest Apollo's
/// `generate-persisted-query-manifest` writes (`{ "operations": [{ "id", "body", ... }] }`).
#[derive(Deserialize)]
#[serde(untagged)]
enum ManifestFile {
    Apollo { operations: Vec<ApolloOperation> },
    Map(HashMap<String, String>),
}

#[derive(Deserialize)]
struct ApolloOperation {
    id: String,
    body: String,
}

/// The `persistedQuery` request extension.
#[derive(Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

/// The extension factory; cheap to clone, every clone shares the documents.
#[derive(Clone)]
pub struct PersistedQueries {
    only_known: bool,
    known: Arc<HashMap<String, ExecutableDocument>>,
    cache: Option<Arc<Mutex<lru::LruCache<String, ExecutableDocument>>>>,
}

/// The lowercase hex sha256 of a document, as clients compute it.
pub fn document_hash(document: &str) -> String {
    format!("{:x}", Sha256::digest(document.as_bytes()))
}

impl PersistedQueries {
    /// Loads the manifest, if any. Fails when it cannot be read, a document does not parse or does not
    /// match its hash, or when only known documents are wanted and there is no manifest.
    pub fn load(config: &PersistedQueryConfig) -> anyhow::Result<Self> {
        let known = match &config.manifest {
            Some(path) => read_manifest(path)?,
            None if config.only_known => {
                anyhow::bail!("PERSISTED_QUERIES_ONLY needs PERSISTED_QUERIES_MANIFEST")
            }
            None => HashMap::new(),
        };
        let cache = NonZeroUsize::new(config.cache_size)
            .filter(|_| !config.only_known)
            .map(|size| Arc::new(Mutex::new(lru::LruCache::new(size))));
        Ok(Self {
            only_known: config.only_known,
            known: Arc::new(known),
            cache,
        })
    }

    fn remembered(&self, hash: &str) -> Option<ExecutableDocument> {
        if let Some(document) = self.known.get(hash) {
            return Some(document.clone());
        }
        let cache = self.cache.as_ref()?;
        lock(cache).get(hash).cloned()
    }

    fn remember(&self, hash: String, document: ExecutableDocument) {
        if let Some(cache) = &self.cache {
            lock(cache).put(hash, document);
        }
    }

    fn resolve(&self, mut request: Request) -> Result<Request, AppError> {
        let Some(extension) = request.extensions.remove("persistedQuery") else {
            if !self.only_known {
                self.parse_once(&mut request);
                return Ok(request);
            }
            // A raw document is fine if it is one of ours, byte for byte.
            let document = self
                .known
                .get(&document_hash(&request.query))
                .ok_or(AppError::PersistedQueryRequired)?;
            request.set_parsed_query(document.clone());
            return Ok(request);
        };
        let persisted: PersistedQuery = async_graphql::from_value(extension)
            .map_err(|_| AppError::bad_input("extensions.persistedQuery is malformed"))?;
        if persisted.version != 1 {
            return Err(AppError::bad_input(
                "only version 1 of persisted queries is supported",
            ));
        }
        let hash = persisted.sha256_hash.to_ascii_lowercase();
        if request.query.is_empty() {
            let document = self
                .remembered(&hash)
                .ok_or(AppError::PersistedQueryNotFound)?;
            request.set_parsed_query(document);
            return Ok(request);
        }
        if document_hash(&request.query) != hash {
            return Err(AppError::bad_input(
                "persistedQuery.sha256Hash is not the hash of the query",
            ));
        }
        if let Some(document) = self.known.get(&hash) {
            request.set_parsed_query(document.clone());
        } else if self.only_known {
            return Err(AppError::PersistedQueryRequired);
        } else if let Some(document) = self.parse_and_remember(&request.query, hash) {
            request.set_parsed_query(document);
        }
        Ok(request)
    }

    /// Gives a raw document its parse from the cache, or parses and remembers it (under its hash, so a
    /// later hash-only request finds it as well).
    fn parse_once(&self, request: &mut Request) {
        if self.cache.is_none() {
            return;
        }
        if let Some(document) = self.raw_document(&request.query) {
            request.set_parsed_query(document);
        }
    }

    /// The parse of a raw document: remembered, or parsed now and remembered (with the cache on).
    /// `None` when it does not parse: a document that does not parse is not remembered, and the
    /// normal parse reports it.
    pub fn raw_document(&self, query: &str) -> Option<ExecutableDocument> {
        let hash = document_hash(query);
        if let Some(document) = self.remembered(&hash) {
            return Some(document);
        }
        self.parse_and_remember(query, hash)
    }

    fn parse_and_remember(&self, query: &str, hash: String) -> Option<ExecutableDocument> {
        let document = async_graphql::parser::parse_query(query).ok()?;
        self.remember(hash, document.clone());
        Some(document)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_manifest(path: &Path) -> anyhow::Result<HashMap<String, ExecutableDocument>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the persisted query manifest {}",
            path.display()
        )
    })?;
    let file: ManifestFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is neither a JSON object of documents by sha256 nor an Apollo manifest",
            path.display()
        )
    })?;
    let entries: Vec<(String, String)> = match file {
        ManifestFile::Apollo { operations } => operations
            .into_iter()
            .map(|operation| (operation.id, operation.body))
            .collect(),
        ManifestFile::Map(map) => map.into_iter().collect(),
    };
    entries
        .into_iter()
        .map(|(hash, body)| {
            let hash = hash.to_ascii_lowercase();
            anyhow::ensure!(
                document_hash(&body) == hash,
                "persisted query manifest: {hash} is not the sha256 of its document"
            );
            let document = async_graphql::parser::parse_query(&body)
                .with_context(|| format!("persisted query manifest: {hash} does not parse"))?;
            Ok((hash, document))
        })
        .collect()
}

impl ExtensionFactory for PersistedQueries {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for PersistedQueries {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = self.resolve(request).map_err(refusal)?;
        next.run(ctx, request).await
    }
}

fn refusal(error: AppError) -> ServerError {
    error.extend().into_server_error(Pos::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &str = "{ events { edges { cursor } } }";

    fn request(query: &str, hash: Option<&str>) -> Request {
        let mut request = Request::new(query);
        if let Some(hash) = hash {
            request.extensions.insert(
                "persistedQuery".into(),
                async_graphql::Value::from_json(
                    serde_json::json!({ "version": 1, "sha256Hash": hash }),
                )
                .expect("a value"),
            );
        }
        request
    }

    fn code(result: Result<Request, AppError>) -> &'static str {
        result.err().map_or("OK", |error| error.code())
    }

    #[test]
    fn a_hash_that_is_not_the_documents_is_refused() {
        let apq = PersistedQueries::load(&PersistedQueryConfig::default()).expect("loads");
        assert_eq!(
            code(apq.resolve(request(QUERY, Some(&"0".repeat(64))))),
            "BAD_USER_INPUT"
        );
    }

    #[test]
    fn without_a_cache_nothing_is_remembered() {
        let config = PersistedQueryConfig {
            cache_size: 0,
            ..PersistedQueryConfig::default()
        };
        let apq = PersistedQueries::load(&config).expect("loads");
        let hash = document_hash(QUERY);
        assert_eq!(code(apq.resolve(request(QUERY, Some(&hash)))), "OK");
        assert_eq!(
            code(apq.resolve(request("", Some(&hash)))),
            "PERSISTED_QUERY_NOT_FOUND"
        );
    }

    #[test]
    fn a_raw_document_is_parsed_once_and_then_known_by_its_hash() {
        let apq = PersistedQueries::load(&PersistedQueryConfig::default()).expect("loads");
        let hash = document_hash(QUERY);
        assert_eq!(
            code(apq.resolve(request("", Some(&hash)))),
            "PERSISTED_QUERY_NOT_FOUND"
        );
        assert_eq!(code(apq.resolve(request(QUERY, None))), "OK");
        assert!(apq.remembered(&hash).is_some(), "parsed and remembered");
        assert_eq!(code(apq.resolve(request("", Some(&hash)))), "OK");
        // A raw document that does not parse is left to async-graphql to report, and not remembered.
        let broken = "{ events { ";
        assert_eq!(code(apq.resolve(request(broken, None))), "OK");
        assert!(apq.remembered(&document_hash(broken)).is_none());
    }

    #[test]
    fn only_known_documents_need_a_manifest() {
        let config = PersistedQueryConfig {
            only_known: true,
            ..PersistedQueryConfig::default()
        };
        assert!(PersistedQueries::load(&config).is_err());
    }

    #[test]
    fn a_manifest_entry_must_be_the_hash_of_its_document() {
        let path = std::env::temp_dir().join(format!("manifest-{}.json", uuid::Uuid::new_v4()));
        let wrong = serde_json::json!({ "0".repeat(64): QUERY });
        std::fs::write(&path, wrong.to_string()).expect("written");
        let config = PersistedQueryConfig {
            manifest: Some(path.clone()),
            ..PersistedQueryConfig::default()
        };
        assert!(PersistedQueries::load(&config).is_err());
        let apollo = serde_json::json!({ "format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{ "id": document_hash(QUERY), "name": "Events", "type": "query", "body": QUERY }] });
        std::fs::write(&path, apollo.to_string()).expect("written");
        let known = PersistedQueries::load(&config).expect("an Apollo manifest loads");
        assert_eq!(
            code(known.resolve(request("", Some(&document_hash(QUERY))))),
            "OK"
        );
        let _ = std::fs::remove_file(path);
    }
}
