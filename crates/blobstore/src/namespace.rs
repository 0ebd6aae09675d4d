//! Namespaces and keys: what a blob is called. Packages, droplets and buildpacks are keyed by
//! the SHA-256 of their bytes; the resource cache (CF's resource pool) by the SHA-1 the cf CLI
//! sends in `resource_matches`; build caches by their app's guid (one each, replaced).

use crate::error::{Error, Result};

/// One kind of blob; each has its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    Packages,
    Droplets,
    Buildpacks,
    /// An app's build cache, keyed by the app's guid (written with `BlobStore::put_file_as`).
    BuildpackCache,
    /// The app-file cache, keyed by SHA-1.
    Resources,
}

impl Namespace {
    pub const ALL: [Namespace; 5] = [
        Namespace::Packages,
        Namespace::Droplets,
        Namespace::Buildpacks,
        Namespace::BuildpackCache,
        Namespace::Resources,
    ];

    /// The directory (local) or key prefix (S3) of the namespace.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Packages => "packages",
            Namespace::Droplets => "droplets",
            Namespace::Buildpacks => "buildpacks",
            Namespace::BuildpackCache => "buildpack_cache",
            Namespace::Resources => "resources",
        }
    }

    fn key_len(self) -> (usize, &'static str) {
        match self {
            Namespace::Resources => (40, "40 lowercase hex digits (a SHA-1)"),
            Namespace::BuildpackCache => (36, "a guid (36 lowercase hex digits and dashes)"),
            Namespace::Packages | Namespace::Droplets | Namespace::Buildpacks => {
                (64, "64 lowercase hex digits (a SHA-256)")
            }
        }
    }

    /// Checks that `key` is a well-formed key here (so it is also a safe file name).
    pub fn check_key(self, key: &str) -> Result<()> {
        let (len, expected) = self.key_len();
        let dashes = if self == Namespace::BuildpackCache { &[8, 13, 18, 23][..] } else { &[] };
        let ok = key.len() == len
            && key.bytes().enumerate().all(|(i, b)| {
                if dashes.contains(&i) { b == b'-' } else { b.is_ascii_digit() || (b'a'..=b'f').contains(&b) }
            });
        if ok { Ok(()) } else { Err(Error::BadKey { namespace: self.as_str(), key: key.to_string(), expected }) }
    }

    /// The key a blob with these digests has here (build caches: the SHA-256 too, but they are
    /// stored under their app's guid).
    pub fn key_of(self, blob: &Digests) -> String {
        match self {
            Namespace::Resources => blob.sha1.clone(),
            Namespace::Packages | Namespace::Droplets | Namespace::Buildpacks | Namespace::BuildpackCache => {
                blob.sha256.clone()
            }
        }
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What hashing a blob's bytes gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub sha1: String,
    pub size: u64,
}

/// A stored blob: its key in its namespace and its digests (CF shows both on packages and droplets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub namespace: Namespace,
    pub key: String,
    pub sha256: String,
    pub sha1: String,
    pub size: u64,
}

impl Blob {
    pub(crate) fn new(namespace: Namespace, digests: Digests) -> Blob {
        let key = namespace.key_of(&digests);
        Blob { namespace, key, sha256: digests.sha256, sha1: digests.sha1, size: digests.size }
    }
}

/// SHA-256 and SHA-1 of a stream, computed while it passes (aws-lc-rs, the one crypto backend).
pub(crate) struct Hasher {
    sha256: aws_lc_rs::digest::Context,
    sha1: aws_lc_rs::digest::Context,
    size: u64,
}

impl Hasher {
    pub(crate) fn new() -> Hasher {
        Hasher {
            sha256: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            sha1: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY),
            size: 0,
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.sha1.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn finish(self) -> Digests {
        Digests { sha256: hex::encode(self.sha256.finish()), sha1: hex::encode(self.sha1.finish()), size: self.size }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_per_namespace() {
        let sha256 = "a".repeat(64);
        let sha1 = "0123456789abcdef0123456789abcdef01234567";
        assert!(Namespace::Packages.check_key(&sha256).is_ok());
        assert!(Namespace::Packages.check_key(sha1).is_err());
        assert!(Namespace::Resources.check_key(sha1).is_ok());
        assert!(Namespace::Resources.check_key(&sha256).is_err());
        assert!(Namespace::Droplets.check_key(&"A".repeat(64)).is_err());
        assert!(Namespace::Droplets.check_key(&format!("../{}", "a".repeat(61))).is_err());
        assert!(Namespace::BuildpackCache.check_key("0f8e2b1c-4d5a-4e6f-9a0b-1c2d3e4f5a6b").is_ok());
        assert!(Namespace::BuildpackCache.check_key(&sha256).is_err());
        assert!(Namespace::BuildpackCache.check_key("../e2b1c-4d5a-4e6f-9a0b-1c2d3e4f5a6b00").is_err());
        assert!(Namespace::BuildpackCache.check_key("0F8E2B1C-4D5A-4E6F-9A0B-1C2D3E4F5A6B").is_err());
    }

    #[test]
    fn digests_of_known_bytes() {
        let mut h = Hasher::new();
        h.update(b"hello ");
        h.update(b"world");
        let d = h.finish();
        assert_eq!(d.sha1, "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        assert_eq!(d.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(d.size, 11);
    }
}
