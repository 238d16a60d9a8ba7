//! Deterministic percentage bucketing: [`Bucket`] and [`bucket`].
//!
//! A device's bucket for a rollout is
//!
//! ```text
//! bucket = u64_big_endian(SHA-256(salt ‖ 0x00 ‖ key)[0..8]) mod 10000
//! ```
//!
//! where `salt` is the rollout's salt (default `app:version`) and `key` is the stickiness key
//! (the device id, or the user id when the rollout follows users and one is present), both as
//! UTF-8. The `0x00` separator cannot occur in either (both are printable). A device is in a
//! rollout of `p` basis points iff `bucket < p`: raising `p` only ever adds devices, and the
//! same device always lands in the same bucket. The bias of `mod 10000` on a 64-bit value is
//! below 10⁻¹⁵.

use sha2::{Digest, Sha256};

/// A device's fixed position, 0..=9999, in a rollout with a given salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Bucket(u16);

impl Bucket {
    /// The position, 0..=9999.
    pub fn get(self) -> u16 {
        self.0
    }

    /// A chosen bucket, for tests at the edges of a share.
    #[cfg(test)]
    pub(crate) fn at(n: u16) -> Self {
        assert!(n < 10_000, "buckets are 0..=9999");
        Bucket(n)
    }
}

/// The bucket of stickiness `key` under `salt` (see the module documentation).
pub fn bucket(salt: &str, key: &str) -> Bucket {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Bucket((u64::from_be_bytes(first) % 10_000) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_pin_the_documented_function() {
        // Recomputed by hand from the definition; changing the function would move every
        // device in every running rollout, so these must never change.
        let manual = |salt: &str, key: &str| {
            let d = Sha256::digest([salt.as_bytes(), &[0], key.as_bytes()].concat());
            (u64::from_be_bytes(d[..8].try_into().unwrap()) % 10_000) as u16
        };
        for (salt, key) in [("notes:1.2.0", "device-1"), ("x", "y"), ("notes:2.0.0-beta.1", "设备")] {
            assert_eq!(bucket(salt, key).get(), manual(salt, key));
            assert!(bucket(salt, key).get() < 10_000);
        }
        assert_ne!(bucket("a", "bc"), bucket("ab", "c"));
    }

    #[test]
    fn the_vectors_published_in_the_api_doc_hold() {
        let rows = crate::test_support::doc_table(crate::test_support::doc_section("## 7."));
        assert_eq!(rows.len(), 5, "docs/api.md §7 publishes five vectors");
        for row in rows {
            let [salt, key, first8, bucket_doc] = &row[..] else { panic!("a vector has four cells: {row:?}") };
            let digest = Sha256::digest([salt.as_bytes(), &[0], key.as_bytes()].concat());
            assert_eq!(hex::encode(&digest[..8]), *first8, "first 8 bytes for {salt:?} {key:?}");
            assert_eq!(bucket(salt, key).get().to_string(), *bucket_doc, "bucket for {salt:?} {key:?}");
        }
    }
}
