//! Tickets at the door: signed QR payloads (`signing`), verification and exactly-once check-in
//! (`service`), and their GraphQL API.

pub mod graphql;
pub mod service;
pub mod signing;

use crate::error::{AppError, AppResult};

/// Renders a payload as a QR code in SVG.
pub fn qr_svg(payload: &str) -> AppResult<String> {
    let code = qrcode::QrCode::with_error_correction_level(payload, qrcode::EcLevel::M)
        .map_err(|err| AppError::Internal(anyhow::anyhow!("encoding a QR code failed: {err}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}
