//! Registration, login, token refresh and rotation, logout, profile.

use chrono::{DateTime, Duration, Utc};
use entity::enums::Role;
use entity::prelude::*;
use entity::{refresh_token, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, TransactionTrait,
};
use uuid::Uuid;

use crate::auth::password::{hash_password, verify_against_nobody, verify_password};
use crate::auth::throttle::Throttles;
use crate::auth::tokens::{TokenKeys, hash_refresh_token, new_refresh_token};
use crate::auth::{Email, NewPassword, Viewer};
use crate::error::{AppError, AppResult, ConstraintRule};

/// How long a refresh token (and so a session) lives without being used.
pub const REFRESH_TOKEN_TTL_DAYS: i64 = 30;

/// What a successful login or refresh hands the client.
pub struct Session {
    pub user: user::Model,
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
}

pub struct Registration {
    pub email: Email,
    pub password: NewPassword,
    pub name: String,
    pub role: Role,
}

const EMAIL_TAKEN: ConstraintRule = ConstraintRule {
    name: "users_email_key",
    sqlite_columns: "users.email",
    error: || AppError::Conflict("an account with this email already exists".into()),
};

/// Creates an account and signs it in.
pub async fn register(
    db: &DatabaseConnection,
    keys: &TokenKeys,
    registration: Registration,
) -> AppResult<Session> {
    if !matches!(registration.role, Role::Customer | Role::Organizer) {
        return Err(AppError::bad_input(
            "accounts sign up as CUSTOMER or ORGANIZER",
        ));
    }
    // Hash before opening the transaction: it takes tens of milliseconds of CPU.
    let password_hash = hash_password(registration.password.expose()).await?;
    let now = Utc::now();
    let txn = db.begin().await?;
    let user = insert_account(&txn, registration, password_hash, None, now).await?;
    let session = start_session(&txn, keys, user, Uuid::now_v7(), now).await?;
    txn.commit().await?;
    Ok(session)
}

/// Creates a door-staff account working for the signed-in organizer's events.
pub async fn create_staff(
    db: &DatabaseConnection,
    organizer: &Viewer,
    mut registration: Registration,
) -> AppResult<user::Model> {
    if organizer.role != Role::Organizer {
        return Err(AppError::Forbidden(
            "staff accounts are created by the organizer they work for".into(),
        ));
    }
    registration.role = Role::Staff;
    let password_hash = hash_password(registration.password.expose()).await?;
    insert_account(
        db,
        registration,
        password_hash,
        Some(organizer.user_id),
        Utc::now(),
    )
    .await
}

async fn insert_account(
    db: &impl ConnectionTrait,
    registration: Registration,
    password_hash: String,
    organizer_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<user::Model> {
    user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(registration.email.as_str().to_owned()),
        password_hash: Set(password_hash),
        name: Set(registration.name),
        role: Set(registration.role),
        organizer_id: Set(organizer_id),
        avatar_path: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|err| AppError::on_constraint(err, &[EMAIL_TAKEN]))
}

/// Checks credentials, throttled per account and per client address. Failures never reveal whether
/// the email is registered: unknown email and wrong password give the same error after the same work.
pub async fn login(
    db: &DatabaseConnection,
    keys: &TokenKeys,
    throttles: &Throttles,
    email: &str,
    password: &str,
    client_address: &str,
) -> AppResult<Session> {
    let account_key = email.trim().to_lowercase();
    if throttles.login_per_account.is_exhausted(&account_key)
        || throttles.login_per_address.is_exhausted(client_address)
    {
        return Err(AppError::TooManyRequests(
            "too many failed sign-in attempts; try again later".into(),
        ));
    }
    let found = User::find()
        .filter(user::Column::Email.eq(account_key.as_str()))
        .one(db)
        .await?;
    let verified = match &found {
        Some(user) => verify_password(password, &user.password_hash).await?,
        None => verify_against_nobody(password).await?,
    };
    let Some(user) = found.filter(|_| verified) else {
        throttles.login_per_account.record(&account_key);
        throttles.login_per_address.record(client_address);
        return Err(AppError::Unauthenticated(
            "invalid email or password".into(),
        ));
    };
    throttles.login_per_account.clear(&account_key);
    let now = Utc::now();
    let txn = db.begin().await?;
    let session = start_session(&txn, keys, user, Uuid::now_v7(), now).await?;
    txn.commit().await?;
    Ok(session)
}

/// Rotates a refresh token: the presented one becomes used and a new one in the same family is issued.
/// A token presented twice means it leaked (or a client raced itself): the whole family is revoked.
pub async fn refresh(db: &DatabaseConnection, keys: &TokenKeys, token: &str) -> AppResult<Session> {
    let now = Utc::now();
    let invalid = || AppError::Unauthenticated("the refresh token is invalid or expired".into());
    let txn = db.begin().await?;
    let Some(stored) = RefreshToken::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_refresh_token(token)))
        .one(&txn)
        .await?
    else {
        return Err(invalid());
    };
    if stored.revoked_at.is_some() || stored.expires_at <= now {
        return Err(invalid());
    }
    // Claim the token with a conditional update, so two concurrent refreshes cannot both succeed.
    let claimed = RefreshToken::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(stored.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if claimed == 0 {
        txn.rollback().await?;
        revoke_family(db, stored.family_id, now).await?;
        tracing::warn!(user.id = %stored.user_id, "refresh token reuse detected; session family revoked");
        return Err(AppError::Unauthenticated(
            "the refresh token was already used; sign in again".into(),
        ));
    }
    let Some(user) = User::find_by_id(stored.user_id).one(&txn).await? else {
        return Err(invalid());
    };
    let session = start_session(&txn, keys, user, stored.family_id, now).await?;
    txn.commit().await?;
    Ok(session)
}

/// Ends the session the refresh token belongs to (its whole family). Unknown tokens are ignored, so
/// logout is safe to retry.
pub async fn logout(db: &impl ConnectionTrait, token: &str) -> AppResult<()> {
    if let Some(stored) = RefreshToken::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_refresh_token(token)))
        .one(db)
        .await?
    {
        revoke_family(db, stored.family_id, Utc::now()).await?;
    }
    Ok(())
}

/// Revokes every session of a user (after a password change, say).
pub async fn revoke_all_sessions(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    RefreshToken::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

async fn revoke_family(
    db: &impl ConnectionTrait,
    family_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    RefreshToken::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

async fn start_session(
    db: &impl ConnectionTrait,
    keys: &TokenKeys,
    user: user::Model,
    family_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Session> {
    let refresh = new_refresh_token();
    let refresh_token_expires_at = now + Duration::days(REFRESH_TOKEN_TTL_DAYS);
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        family_id: Set(family_id),
        token_hash: Set(refresh.hash),
        expires_at: Set(refresh_token_expires_at),
        used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    let (access_token, access_token_expires_at) = keys.issue(user.id, user.role, now)?;
    Ok(Session {
        user,
        access_token,
        access_token_expires_at,
        refresh_token: refresh.token,
        refresh_token_expires_at,
    })
}

pub async fn find_user(db: &impl ConnectionTrait, id: Uuid) -> AppResult<user::Model> {
    User::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("user"))
}

/// Renames the viewer.
pub async fn update_profile(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    name: String,
) -> AppResult<user::Model> {
    let user = find_user(db, viewer.user_id).await?;
    let mut active: user::ActiveModel = user.into();
    active.name = Set(name);
    active.updated_at = Set(Utc::now());
    Ok(active.update(db).await?)
}

/// Changes the viewer's password after checking the current one, and signs out every session.
pub async fn change_password(
    db: &DatabaseConnection,
    viewer: &Viewer,
    current: &str,
    new: NewPassword,
) -> AppResult<()> {
    let user = find_user(db, viewer.user_id).await?;
    if !verify_password(current, &user.password_hash).await? {
        return Err(AppError::Unauthenticated(
            "the current password is wrong".into(),
        ));
    }
    let password_hash = hash_password(new.expose()).await?;
    let now = Utc::now();
    let txn = db.begin().await?;
    let mut active: user::ActiveModel = user.into();
    active.password_hash = Set(password_hash);
    active.updated_at = Set(now);
    active.update(&txn).await?;
    revoke_all_sessions(&txn, viewer.user_id, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Gives an account another role (admins only; the guard checks).
pub async fn set_role(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    role: Role,
) -> AppResult<user::Model> {
    let user = find_user(db, user_id).await?;
    let mut active: user::ActiveModel = user.into();
    active.role = Set(role);
    active.updated_at = Set(Utc::now());
    Ok(active.update(db).await?)
}

pub async fn set_avatar_path(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    path: Option<String>,
) -> AppResult<user::Model> {
    let user = find_user(db, user_id).await?;
    let mut active: user::ActiveModel = user.into();
    active.avatar_path = Set(path);
    active.updated_at = Set(Utc::now());
    Ok(active.update(db).await?)
}
