//! GraphQL plumbing shared by every domain: context access, DataLoaders, IDs, cursors, page sizes.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, ErrorExtensions, ID};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The client's address as the server saw it (or as a trusted proxy reported it).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

/// The DataLoaders of one HTTP request or one WebSocket connection, each made when a field first
/// asks for it: most requests (a booking mutation) use none, and making all of them up front was a
/// few allocations per request for nothing. They batch the loads of resolvers that run together and
/// cache no rows, so a connection's loaders never answer with a row older than the load.
pub struct Loaders {
    db: DatabaseConnection,
    made: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Loaders {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            made: Mutex::new(HashMap::new()),
        }
    }

    /// The loader of type `T`, made with `make` (its tuple constructor) the first time.
    pub fn get<T: Send + Sync + 'static>(
        &self,
        make: fn(DatabaseConnection) -> T,
    ) -> Arc<DataLoader<T>> {
        let mut made = self
            .made
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let loader = made
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(DataLoader::new(make(self.db.clone()), tokio::spawn)))
            .clone();
        drop(made);
        // Keyed by `T`'s own TypeId, so the entry always holds a `DataLoader<T>`.
        loader
            .downcast::<DataLoader<T>>()
            .unwrap_or_else(|_| Arc::new(DataLoader::new(make(self.db.clone()), tokio::spawn)))
    }
}

/// Typed access to what the server put into the GraphQL context.
pub trait ContextExt {
    fn state(&self) -> AppResult<&AppState>;
    /// The signed-in caller; UNAUTHENTICATED when there is none.
    fn viewer(&self) -> AppResult<&Viewer>;
    /// The caller if signed in.
    fn viewer_opt(&self) -> Option<&Viewer>;
}

impl ContextExt for Context<'_> {
    fn viewer(&self) -> AppResult<&Viewer> {
        self.viewer_opt()
            .ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))
    }

    fn viewer_opt(&self) -> Option<&Viewer> {
        self.data_opt::<Viewer>()
    }

    fn state(&self) -> AppResult<&AppState> {
        self.data::<AppState>().map_err(|_| {
            AppError::Internal(anyhow::anyhow!("AppState missing from the GraphQL context"))
        })
    }
}

/// Loads `key` through this request's (or connection's) loader of type `T`, made on first use:
/// `load_one(ctx, VenueByIdLoader, venue_id).await?`. A failed load keeps its `extensions.code`.
pub async fn load_one<T, K>(
    ctx: &Context<'_>,
    make: fn(DatabaseConnection) -> T,
    key: K,
) -> async_graphql::Result<Option<T::Value>>
where
    T: Loader<K, Error = Arc<AppError>>,
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
{
    let loaders = ctx.data::<Loaders>().map_err(|_| {
        AppError::Internal(anyhow::anyhow!("Loaders missing from the GraphQL context")).extend()
    })?;
    loaders
        .get(make)
        .load_one(key)
        .await
        .map_err(|err| err.extend())
}

/// Parses a GraphQL `ID` argument; `what` names it in the error.
pub fn parse_id(id: &ID, what: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| AppError::bad_input(format!("{what} is not a valid ID")))
}

/// The default and largest page sizes of every connection.
pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// Validates a connection's `first` argument.
pub fn page_size(first: Option<i32>) -> AppResult<usize> {
    match first {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n >= 1 && n as usize <= MAX_PAGE_SIZE => Ok(n as usize),
        Some(_) => Err(AppError::bad_input(format!(
            "first must be between 1 and {MAX_PAGE_SIZE}"
        ))),
    }
}

/// A keyset cursor: the sort key of the last row seen and its id as the tie-breaker.
/// Opaque to clients (base64url), but not secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub id: Uuid,
}

impl Cursor {
    pub fn new(key: impl Into<String>, id: Uuid) -> Self {
        Self {
            key: key.into(),
            id,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.id, self.key))
    }

    pub fn decode(cursor: &str) -> AppResult<Self> {
        let invalid = || AppError::bad_input("after is not a valid cursor");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (id, key) = text.split_once('|').ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Self::new(key, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_even_when_the_key_contains_the_separator() {
        let cursor = Cursor::new("AC/DC | Live", Uuid::now_v7());
        assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
    }

    #[test]
    fn garbage_cursors_are_bad_user_input() {
        for garbage in ["", "!!!", "bm90LWEtY3Vyc29y"] {
            assert!(matches!(
                Cursor::decode(garbage),
                Err(AppError::BadUserInput(_))
            ));
        }
    }

    #[test]
    fn page_sizes_outside_the_bounds_are_refused() {
        assert_eq!(page_size(None).ok(), Some(DEFAULT_PAGE_SIZE));
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(101)).is_err());
        assert_eq!(page_size(Some(100)).ok(), Some(100));
    }
}
