use std::io::Read;

use async_graphql::{
    Context, Enum, ErrorExtensions, ID, InputObject, Object, Result, ResultExt, SimpleObject,
    Upload,
};
use chrono::{DateTime, Utc};
use entity::user;

use crate::auth::avatar::{MAX_AVATAR_BYTES, avatar_url, remove_avatar, store_avatar};
use crate::auth::guards::RoleGuard;
use crate::auth::service::{self, Registration, Session};
use crate::auth::{Email, NewPassword, parse_name};
use crate::error::AppError;
use crate::gql::{ClientAddress, ContextExt, parse_id};

/// What an account may do.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::Role")]
pub enum Role {
    /// Buys tickets.
    Customer,
    /// Creates venues and events and manages their sales.
    Organizer,
    /// Checks tickets in at the door for their organizer's events.
    Staff,
    /// Can do everything.
    Admin,
}

/// The roles one can sign up with.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum AccountType {
    #[default]
    Customer,
    Organizer,
}

/// An account, as its owner sees it.
#[derive(SimpleObject, Clone)]
pub struct User {
    pub id: ID,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Where the avatar image is served, if one was uploaded.
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<user::Model> for User {
    fn from(model: user::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            email: model.email,
            name: model.name,
            role: model.role.into(),
            avatar_url: model.avatar_path.as_deref().map(avatar_url),
            created_at: model.created_at,
        }
    }
}

/// A signed-in session. Send the access token as `Authorization: Bearer <token>`; before it expires,
/// trade the refresh token for a new pair with `refreshToken` (each refresh token works once).
#[derive(SimpleObject)]
pub struct AuthPayload {
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
    pub user: User,
}

impl From<Session> for AuthPayload {
    fn from(session: Session) -> Self {
        Self {
            access_token: session.access_token,
            access_token_expires_at: session.access_token_expires_at,
            refresh_token: session.refresh_token,
            refresh_token_expires_at: session.refresh_token_expires_at,
            user: session.user.into(),
        }
    }
}

#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub name: String,
    #[graphql(default)]
    pub account_type: AccountType,
}

/// A door-staff account for your events.
#[derive(InputObject)]
pub struct StaffAccountInput {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub name: String,
}

#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct UpdateProfileInput {
    pub name: String,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in account.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        Ok(service::find_user(&state.db, viewer.user_id)
            .await
            .extend()?
            .into())
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account and signs it in. A taken email is CONFLICT.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let state = ctx.state().extend()?;
        let registration = Registration {
            email: Email::parse(&input.email).extend()?,
            password: NewPassword::parse(&input.password).extend()?,
            name: parse_name(&input.name).extend()?,
            role: match input.account_type {
                AccountType::Customer => entity::enums::Role::Customer,
                AccountType::Organizer => entity::enums::Role::Organizer,
            },
        };
        Ok(service::register(&state.db, &state.tokens, registration)
            .await
            .extend()?
            .into())
    }

    /// Creates a door-staff account that can verify and check in tickets of your events (and no
    /// one else's). A taken email is CONFLICT.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn create_staff_account(
        &self,
        ctx: &Context<'_>,
        input: StaffAccountInput,
    ) -> Result<User> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let registration = Registration {
            email: Email::parse(&input.email).extend()?,
            password: NewPassword::parse(&input.password).extend()?,
            name: parse_name(&input.name).extend()?,
            role: entity::enums::Role::Staff,
        };
        Ok(service::create_staff(&state.db, viewer, registration)
            .await
            .extend()?
            .into())
    }

    /// Signs in. Wrong credentials are UNAUTHENTICATED whether or not the email exists; repeated
    /// failures per account or per client address are TOO_MANY_REQUESTS for a while.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let state = ctx.state().extend()?;
        let address = ctx
            .data_opt::<ClientAddress>()
            .map_or("unknown", |a| a.0.as_str());
        Ok(service::login(
            &state.db,
            &state.tokens,
            &state.throttles,
            &input.email,
            &input.password,
            address,
        )
        .await
        .extend()?
        .into())
    }

    /// Trades a refresh token for a new access and refresh token. A refresh token works once: using it
    /// again signs out that session everywhere.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        let state = ctx.state().extend()?;
        Ok(service::refresh(&state.db, &state.tokens, &refresh_token)
            .await
            .extend()?
            .into())
    }

    /// Ends the session of this refresh token. Access tokens already issued stay valid until they expire.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        let state = ctx.state().extend()?;
        service::logout(&state.db, &refresh_token).await.extend()?;
        Ok(true)
    }

    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let name = parse_name(&input.name).extend()?;
        Ok(service::update_profile(&state.db, viewer, name)
            .await
            .extend()?
            .into())
    }

    /// Changes the password and signs out every session of the account.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn change_password(&self, ctx: &Context<'_>, input: ChangePasswordInput) -> Result<bool> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let new = NewPassword::parse(&input.new_password).extend()?;
        service::change_password(&state.db, viewer, &input.current_password, new)
            .await
            .extend()?;
        Ok(true)
    }

    /// Uploads an avatar (multipart request): a PNG, JPEG or WebP image of at most 2 MB, recognised by
    /// its content, not its name.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn upload_avatar(&self, ctx: &Context<'_>, file: Upload) -> Result<User> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let upload = file.value(ctx)?;
        let mut bytes = Vec::new();
        // Read one byte past the limit: enough to know it is too large without reading it all.
        upload
            .into_read()
            .take(MAX_AVATAR_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| {
                AppError::Internal(anyhow::anyhow!("reading an upload: {err}")).extend()
            })?;
        let dir = &state.config.avatar_dir;
        let file_name = store_avatar(dir, viewer.user_id, &bytes).await.extend()?;
        let previous = service::find_user(&state.db, viewer.user_id)
            .await
            .extend()?
            .avatar_path;
        let user = service::set_avatar_path(&state.db, viewer.user_id, Some(file_name))
            .await
            .extend()?;
        if let Some(previous) = previous {
            remove_avatar(dir, &previous).await;
        }
        Ok(user.into())
    }

    /// Gives an account another role. ADMIN only.
    #[graphql(guard = "RoleGuard::ADMIN")]
    async fn set_user_role(&self, ctx: &Context<'_>, user_id: ID, role: Role) -> Result<User> {
        let state = ctx.state().extend()?;
        let user_id = parse_id(&user_id, "userId").extend()?;
        Ok(service::set_role(&state.db, user_id, role.into())
            .await
            .extend()?
            .into())
    }
}
