//! Role guards for GraphQL fields. ADMIN passes every guard.

use async_graphql::{Context, ErrorExtensions, Guard, Result, ResultExt};
use entity::enums::Role;

use crate::error::AppError;
use crate::gql::ContextExt;

/// Lets a signed-in viewer through if their role is one of `allowed` (or ADMIN).
/// No viewer is UNAUTHENTICATED; the wrong role is FORBIDDEN.
pub struct RoleGuard(&'static [Role]);

impl RoleGuard {
    pub const SIGNED_IN: Self = Self(&[Role::Customer, Role::Organizer, Role::Staff]);
    pub const ORGANIZER: Self = Self(&[Role::Organizer]);
    pub const STAFF_OR_ORGANIZER: Self = Self(&[Role::Staff, Role::Organizer]);
    pub const ADMIN: Self = Self(&[]);
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let viewer = ctx.viewer().extend()?;
        if viewer.is_admin() || self.0.contains(&viewer.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden("your role does not allow this".into()).extend())
        }
    }
}
