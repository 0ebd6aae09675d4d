//! Size limits on what clients send: packages, droplets and buildpacks (the upload's bytes),
//! what an archive may unpack to, and JSON request bodies. The server's `[limits]` settings
//! fill [`Limits`]; each refusal names its [`Limit`], so the 413 says which setting to change.

use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult};

/// How large an upload, an unpacked archive or a request body may be, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The `bits` zip of `POST /v3/packages/:guid/upload` (CF: 1 GiB).
    pub package_bytes: u64,
    /// The droplet tgz of `POST /v3/droplets/:guid/upload`.
    pub droplet_bytes: u64,
    /// The zip of `POST /v3/buildpacks/:guid/upload`.
    pub buildpack_bytes: u64,
    /// What one package, droplet or buildpack may unpack to (zip bombs stop here).
    pub unpacked_bytes: u64,
    /// Entries (files, directories, links) in one archive.
    pub archive_entries: u64,
    /// A JSON request body.
    pub request_body_bytes: u64,
}

impl Limits {
    /// Cloud Controller's 1 GiB for uploads; 4 GiB and 200,000 entries unpacked; 1 MiB of JSON.
    pub const DEFAULT: Limits = Limits {
        package_bytes: 1 << 30,
        droplet_bytes: 1 << 30,
        buildpack_bytes: 1 << 30,
        unpacked_bytes: 4 << 30,
        archive_entries: 200_000,
        request_body_bytes: 1 << 20,
    };

    /// The bytes `limit` allows.
    pub fn get(&self, limit: Limit) -> u64 {
        match limit {
            Limit::Package => self.package_bytes,
            Limit::Droplet => self.droplet_bytes,
            Limit::Buildpack => self.buildpack_bytes,
            Limit::Unpacked => self.unpacked_bytes,
            Limit::RequestBody => self.request_body_bytes,
        }
    }

    /// The blobstore's extraction limits for an archive uploaded as `upload`.
    pub(crate) fn archive(&self, upload: Limit) -> hearth_blobstore::archive::Limits {
        hearth_blobstore::archive::Limits {
            max_archive_bytes: self.get(upload),
            max_unpacked_bytes: self.unpacked_bytes,
            max_entries: self.archive_entries,
        }
    }

    /// The extraction limits for an archive already accepted into the blobstore (a package
    /// also holds the matched files it was assembled with, so only what it unpacks to counts).
    pub fn stored_archive(&self) -> hearth_blobstore::archive::Limits {
        hearth_blobstore::archive::Limits {
            max_archive_bytes: u64::MAX,
            max_unpacked_bytes: self.unpacked_bytes,
            max_entries: self.archive_entries,
        }
    }

    /// The most a multipart upload's body may carry: the file, plus room for the form's
    /// other fields (a package's `resources` list, up to 100,000 entries).
    pub(crate) fn multipart_body(&self, upload: Limit) -> usize {
        let room = if upload == Limit::Package { 64 << 20 } else { 1 << 20 };
        usize::try_from(self.get(upload).saturating_add(room)).unwrap_or(usize::MAX)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Which limit a request went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Package,
    Droplet,
    Buildpack,
    Unpacked,
    RequestBody,
}

impl Limit {
    /// The `[limits]` key (and, with dashes, the `hearth server` flag) that sets it.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::Package => "max_package_bytes",
            Limit::Droplet => "max_droplet_bytes",
            Limit::Buildpack => "max_buildpack_bytes",
            Limit::Unpacked => "max_unpacked_bytes",
            Limit::RequestBody => "max_request_body_bytes",
        }
    }

    /// What went over it, as the error's sentence names it.
    fn what(self) -> &'static str {
        match self {
            Limit::Package => "the package upload",
            Limit::Droplet => "the droplet upload",
            Limit::Buildpack => "the buildpack upload",
            Limit::Unpacked => "what the archive unpacks to",
            Limit::RequestBody => "the request body",
        }
    }

    /// What the client can do before asking for a higher limit.
    fn advice(self) -> &'static str {
        match self {
            Limit::Package | Limit::Unpacked => "leave out files the app does not need (.cfignore), or ",
            Limit::Droplet | Limit::Buildpack | Limit::RequestBody => "",
        }
    }

    /// The 413's detail: what was too large, the limit, and what to change.
    pub(crate) fn refusal(self, bytes: u64) -> String {
        let size = match human(bytes) {
            exact if exact.ends_with("bytes") => exact,
            rounded => format!("{rounded} ({bytes} bytes)"),
        };
        format!(
            "{} is larger than the limit of {size}: {}ask the platform operator to raise {} in hearth server's \
             [limits]",
            self.what(),
            self.advice(),
            self.setting(),
        )
    }
}

/// `1 GiB`, `512 MiB`, `64 KiB` or `100 bytes`: the largest unit that divides the size.
fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    UNITS
        .iter()
        .find(|(_, n)| bytes >= *n && bytes.is_multiple_of(*n))
        .map(|(unit, n)| format!("{} {unit}", bytes / n))
        .unwrap_or_else(|| format!("{bytes} bytes"))
}

/// A multipart error as the API answers it: over the body limit is `limit`'s 413.
pub(crate) fn form_error(limit: Limit, limits: &Limits) -> impl Fn(MultipartError) -> ApiError + Copy {
    let bytes = limits.get(limit);
    move |e: MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit, bytes },
        _ => ApiError::MessageParse(format!("the upload is not valid multipart form data: {}", e.body_text())),
    }
}

/// Streams one form field to `dest` (created anew), counting: past `limit` it stops with the
/// 413 (the caller's temp directory goes, so nothing is kept). Answers the bytes written.
pub(crate) async fn save_field(
    field: &mut Field<'_>,
    dest: &std::path::Path,
    limit: Limit,
    limits: &Limits,
) -> ApiResult<u64> {
    let max = limits.get(limit);
    let bad_form = form_error(limit, limits);
    let mut file = tokio::fs::File::create(dest).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut written = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
        written = written.saturating_add(chunk.len() as u64);
        if written > max {
            return Err(ApiError::PayloadTooLarge { limit, bytes: max });
        }
        file.write_all(&chunk).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    file.flush().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(written)
}

/// A blobstore error as the API answers it; an upload (or archive) over its size is
/// `upload`'s 413, one that unpacks to too much is `max_unpacked_bytes`'s.
pub(crate) fn blob_error(e: hearth_blobstore::Error, upload: Limit) -> ApiError {
    use hearth_blobstore::{Error, ErrorKind};
    match e {
        Error::UnpackedTooLarge { limit } => ApiError::PayloadTooLarge { limit: Limit::Unpacked, bytes: limit },
        Error::TooLarge { limit } | Error::ArchiveTooLarge { limit, .. } => {
            ApiError::PayloadTooLarge { limit: upload, bytes: limit }
        }
        e => match e.kind() {
            ErrorKind::Unprocessable | ErrorKind::TooLarge => ApiError::Unprocessable(e.to_string()),
            ErrorKind::NotFound => ApiError::NotFound("Blob"),
            ErrorKind::Internal => ApiError::Internal(format!("blobstore: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_limit_and_the_setting() {
        let text = Limit::Package.refusal(1 << 30);
        assert!(text.contains("1 GiB (1073741824 bytes)") && text.contains("max_package_bytes"), "{text}");
        assert!(Limit::RequestBody.refusal(1000).contains("limit of 1000 bytes: ask"));
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human(1536 << 20), "1536 MiB");
        assert_eq!(human(64 << 10), "64 KiB");
        assert_eq!(human(0), "0 bytes");
    }

    #[test]
    fn archives_get_the_upload_limit_and_the_unpacked_limit() {
        let limits = Limits { droplet_bytes: 10, unpacked_bytes: 20, archive_entries: 3, ..Limits::DEFAULT };
        let a = limits.archive(Limit::Droplet);
        assert_eq!((a.max_archive_bytes, a.max_unpacked_bytes, a.max_entries), (10, 20, 3));
        assert_eq!(limits.multipart_body(Limit::Droplet), 10 + (1 << 20));
    }
}
