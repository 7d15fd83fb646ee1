//! Password hashing with argon2id (the crate's default algorithm and parameters).
//!
//! One hash is tens of milliseconds of CPU and 19 MiB of memory. Run on the async runtime it would stall
//! every other request on that worker thread (an on-sale starts with a crowd signing in), so hashing
//! runs on the blocking pool, at most one per core at a time: a sign-in crowd queues here instead of
//! taking the memory of hundreds of hashes at once.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use std::sync::LazyLock;

use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
});

/// Runs one argon2 computation off the async runtime, at most one per core at a time.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> AppResult<T> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|err| AppError::Internal(anyhow::anyhow!("the hashing queue closed: {err}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| AppError::Internal(anyhow::anyhow!("password hashing stopped: {err}")))
}

/// Hashes a password into a PHC string (algorithm, parameters and salt included).
pub async fn hash_password(password: &str) -> AppResult<String> {
    let password = password.to_owned();
    off_the_runtime(move || hash_now(&password)).await?
}

/// Whether `password` matches the stored PHC hash. A malformed stored hash never matches.
pub async fn verify_password(password: &str, stored_hash: &str) -> AppResult<bool> {
    let (password, stored_hash) = (password.to_owned(), stored_hash.to_owned());
    off_the_runtime(move || verify_now(&password, &stored_hash)).await
}

/// Spends the effort of one real verification and answers false: a sign-in for an unknown email must
/// take as long as a wrong password, or its timing tells which emails have accounts.
pub async fn verify_against_nobody(password: &str) -> AppResult<bool> {
    let password = password.to_owned();
    off_the_runtime(move || {
        let _ = verify_now(&password, &NOBODYS_HASH);
        false
    })
    .await
}

/// A real argon2id hash with the parameters of stored ones. Computed on first use, which happens
/// inside [`off_the_runtime`], never on an async worker.
static NOBODYS_HASH: LazyLock<String> =
    LazyLock::new(|| hash_now("no account has this password").unwrap_or_default());

fn hash_now(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| AppError::Internal(anyhow::anyhow!("hashing a password failed: {err}")))
}

fn verify_now(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hash = hash_password("correct horse battery staple")
            .await
            .expect("hashing works");
        assert!(hash.starts_with("$argon2id$"));
        let verify = |password: &'static str, hash: String| async move {
            verify_password(password, &hash)
                .await
                .expect("verifying works")
        };
        assert!(verify("correct horse battery staple", hash.clone()).await);
        assert!(!verify("Correct horse battery staple", hash).await);
        assert!(!verify("anything", "not-a-phc-string".into()).await);
    }
}
