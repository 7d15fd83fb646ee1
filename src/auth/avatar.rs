//! Avatar images: checked by content (magic bytes), never by file name, and stored on disk.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Largest avatar accepted.
pub const MAX_AVATAR_BYTES: usize = 2 * 1024 * 1024;

/// The URL path avatars are served under.
pub const AVATAR_URL_PREFIX: &str = "/avatars";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Webp,
}

impl ImageKind {
    /// Recognises the image format from its first bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
        if bytes.starts_with(PNG) {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }
}

/// Checks an upload and writes it under `dir`; returns the stored file name.
pub async fn store_avatar(dir: &Path, user_id: Uuid, bytes: &[u8]) -> AppResult<String> {
    if bytes.len() > MAX_AVATAR_BYTES {
        return Err(AppError::bad_input("the avatar is larger than 2 MB"));
    }
    let kind = ImageKind::sniff(bytes)
        .ok_or_else(|| AppError::bad_input("the avatar must be a PNG, JPEG or WebP image"))?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|err| AppError::Internal(anyhow::anyhow!("creating {}: {err}", dir.display())))?;
    // A fresh name per upload: caches never serve a stale picture, and names cannot be guessed.
    let file_name = format!("{user_id}-{}.{}", Uuid::new_v4().simple(), kind.extension());
    let path = dir.join(&file_name);
    tokio::fs::write(&path, bytes)
        .await
        .map_err(|err| AppError::Internal(anyhow::anyhow!("writing {}: {err}", path.display())))?;
    Ok(file_name)
}

/// Removes a previous avatar; a missing file is fine.
pub async fn remove_avatar(dir: &Path, file_name: &str) {
    let path: PathBuf = dir.join(file_name);
    if let Err(err) = tokio::fs::remove_file(&path).await {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %err, "could not remove an old avatar");
        }
    }
}

pub fn avatar_url(file_name: &str) -> String {
    format!("{AVATAR_URL_PREFIX}/{file_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_content() {
        assert_eq!(
            ImageKind::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageKind::Png)
        );
        assert_eq!(
            ImageKind::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(
            ImageKind::sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 "),
            Some(ImageKind::Webp)
        );
        assert_eq!(ImageKind::sniff(b"GIF89a"), None);
        assert_eq!(ImageKind::sniff(b"<svg onload=alert(1)>"), None);
        assert_eq!(ImageKind::sniff(b""), None);
    }
}
