//! Delta updates: [`Patch`], a signed binary patch that turns one earlier build (its *base*)
//! into a release's artifact (its *result*); [`Patches`], an artifact's patches, at most one
//! per base; and [`patch_message`], the exact bytes a patch signature covers.
//!
//! The signed message for a patch is these UTF-8 lines, each ending in `\n`, and nothing else:
//!
//! ```text
//! halftone-patch-v1
//! app=<app id>
//! version=<version of the result>
//! os=<os>
//! arch=<arch>
//! format=<patch format>
//! base-sha256=<lowercase hex>
//! base-size=<decimal bytes>
//! sha256=<lowercase hex of the result>
//! size=<decimal bytes of the result>
//! patch-sha256=<lowercase hex of the patch file>
//! patch-size=<decimal bytes of the patch file>
//! ```
//!
//! Its first line differs from the artifact message's (`halftone-artifact-v1`), so a
//! signature over one is never a signature over the other: an artifact signature cannot be
//! replayed as a patch signature, nor the reverse. The base and the result are both named, so
//! a patch verifies only for the base it was made from and the build it makes; and the
//! result it makes is verified again, as a full download is, with the artifact's own
//! signature. Only the release engineer's key signs it (`halftone publish` builds and signs
//! patches; the server, which holds no release key, cannot).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{ParseError, What};
use crate::{Sha256, Signatures, SignedFields};

/// How a patch's bytes turn the base into the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PatchFormat {
    /// A zstd frame compressed with the base as its dictionary prefix (zstd's `--patch-from`,
    /// "reference prefix"): decompress the patch with the whole base as the prefix. The frame
    /// names its window size, which bounds the memory needed to apply it (about the window,
    /// at least the base's size, plus the result streamed out).
    ZstdPatchFrom,
}

impl PatchFormat {
    /// The format's name in messages and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            PatchFormat::ZstdPatchFrom => "zstd-patch-from",
        }
    }
}

impl fmt::Display for PatchFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PatchFormat {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "zstd-patch-from" => Ok(PatchFormat::ZstdPatchFrom),
            _ => Err(ParseError::new(What::Patch, s, "unknown patch format (known: zstd-patch-from)")),
        }
    }
}

impl serde::Serialize for PatchFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> serde::Deserialize<'de> for PatchFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The zstd window log of a `zstd-patch-from` patch from a base of `base` bytes to a result
/// of `result` bytes: the highest bit of the larger size, plus one (the rule of
/// `zstd --patch-from`), so the whole base stays referenceable; at least zstd's minimum (10)
/// and at most its 64-bit maximum (31, a 2 GiB window). Builders use it, and appliers refuse a
/// patch that asks for a larger window, which bounds the memory a patch can make them use.
pub fn zstd_window_log(base: u64, result: u64) -> u32 {
    let larger = base.max(result).max(1);
    (64 - larger.leading_zeros() + 1).clamp(10, 31)
}

/// A file named by its content: SHA-256 and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Blob {
    /// SHA-256 of the bytes.
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
}

/// A signed patch from one base build to the artifact that holds it (its result).
///
/// The result is not stored here: it is always the artifact's own digest and size, so a
/// patch cannot name another result than the build it is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// How to apply it.
    pub format: PatchFormat,
    /// The build it applies to.
    pub base: Blob,
    /// The patch file itself (stored, like artifacts, under its digest).
    pub file: Blob,
    /// Signatures over [`patch_message`] by the app's release keys.
    pub signatures: Signatures,
}

impl Patch {
    /// The message this patch's signatures must cover, for the result `artifact`.
    pub fn message(&self, artifact: SignedFields<'_>) -> String {
        patch_message(PatchFields { artifact, format: self.format, base: &self.base, patch: &self.file })
    }
}

/// What a patch signature covers: the result (as the artifact message names it), the format,
/// the base, and the patch file.
#[derive(Debug, Clone, Copy)]
pub struct PatchFields<'a> {
    /// The result: app, version, target, digest and size of the artifact the patch makes.
    pub artifact: SignedFields<'a>,
    /// The patch format.
    pub format: PatchFormat,
    /// The build the patch applies to.
    pub base: &'a Blob,
    /// The patch file.
    pub patch: &'a Blob,
}

/// The exact bytes that are signed for a patch (see the module documentation).
pub fn patch_message(f: PatchFields<'_>) -> String {
    let a = f.artifact;
    format!(
        "halftone-patch-v1\napp={}\nversion={}\nos={}\narch={}\nformat={}\nbase-sha256={}\nbase-size={}\nsha256={}\nsize={}\npatch-sha256={}\npatch-size={}\n",
        a.app,
        a.version,
        a.target.os,
        a.target.arch,
        f.format,
        f.base.sha256,
        f.base.size,
        a.sha256,
        a.size,
        f.patch.sha256,
        f.patch.size
    )
}

/// The most patches one artifact may carry (one per base).
pub const MAX_PATCHES: usize = 16;

/// An artifact's patches, by base digest: at most [`MAX_PATCHES`], one per base, none whose
/// base is the result itself, each smaller than the result (a patch no smaller than the full
/// file saves nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patches(BTreeMap<Sha256, Patch>);

impl Patches {
    /// Checks the list against the result `result` it makes.
    pub fn new(list: Vec<Patch>, result: &Blob) -> Result<Self, ParseError> {
        let mut map = BTreeMap::new();
        if list.len() > MAX_PATCHES {
            let count = format!("{} patches", list.len());
            return Err(ParseError::new(What::Patch, &count, format!("at most {MAX_PATCHES} patches per artifact")));
        }
        for p in list {
            let base = p.base.sha256.to_string();
            if p.base.sha256 == result.sha256 {
                return Err(ParseError::new(What::Patch, &base, "a patch's base must differ from its result"));
            }
            if p.file.size >= result.size {
                let why = format!(
                    "the patch ({} bytes) must be smaller than the file it makes ({})",
                    p.file.size, result.size
                );
                return Err(ParseError::new(What::Patch, &base, why));
            }
            if map.insert(p.base.sha256, p).is_some() {
                return Err(ParseError::new(What::Patch, &base, "two patches from one base"));
            }
        }
        Ok(Patches(map))
    }

    /// The patch from the build whose digest is `base`, if there is one.
    pub fn from_base(&self, base: &Sha256) -> Option<&Patch> {
        self.0.get(base)
    }

    /// The patches, by base digest.
    pub fn iter(&self) -> impl Iterator<Item = &Patch> {
        self.0.values()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppId, KeyId, PublicKey, Signature, Target, TrustedKeys, Version};
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    fn result_fields() -> (AppId, Version, Target, Sha256) {
        (
            AppId::parse("notes").unwrap(),
            Version::parse("1.2.3").unwrap(),
            Target { os: "windows".parse().unwrap(), arch: "x86_64".parse().unwrap() },
            Sha256::digest(b"hello"),
        )
    }

    fn blob(bytes: &[u8]) -> Blob {
        Blob { sha256: Sha256::digest(bytes), size: bytes.len() as u64 }
    }

    fn patch(base: Blob, file: Blob) -> Patch {
        Patch {
            format: PatchFormat::ZstdPatchFrom,
            base,
            file,
            signatures: Signatures::one(KeyId::parse("k").unwrap(), Signature::from_bytes([0; 64])),
        }
    }

    #[test]
    fn the_vector_published_in_the_api_doc_holds() {
        use crate::test_support::{doc_row, doc_section};
        let doc = doc_section("### Patch test vector");
        let seed: [u8; 32] = hex::decode(doc_row(doc, "private seed (hex)")).unwrap().try_into().unwrap();
        let sk = SigningKey::from_bytes(&seed);
        let base = blob(doc_row(doc, "base bytes").as_bytes());
        let file = blob(doc_row(doc, "patch bytes").as_bytes());
        assert_eq!(base.sha256.to_string(), doc_row(doc, "base sha256"));
        assert_eq!(file.sha256.to_string(), doc_row(doc, "patch sha256"));
        let (app, version, target, sha256) = result_fields();
        let artifact = SignedFields { app: &app, version: &version, target: &target, sha256: &sha256, size: 5 };
        let msg =
            patch_message(PatchFields { artifact, format: PatchFormat::ZstdPatchFrom, base: &base, patch: &file });
        let literal = doc.lines().find_map(|l| l.strip_prefix("`\"halftone-patch-v1")).unwrap();
        let literal = format!("halftone-patch-v1{}", literal.trim_end_matches("\"`.")).replace("\\n", "\n");
        assert_eq!(msg, literal);
        assert!(doc.contains(&format!("The message is {} bytes", msg.len())));
        let signature = doc
            .lines()
            .find(|l| l.len() == 128 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .expect("the doc shows the signature");
        assert_eq!(hex::encode(sk.sign(msg.as_bytes()).to_bytes()), signature);
    }

    #[test]
    fn the_message_is_exactly_the_documented_lines_and_not_an_artifact_message() {
        let (app, version, target, sha256) = result_fields();
        let artifact = SignedFields { app: &app, version: &version, target: &target, sha256: &sha256, size: 5 };
        let (base, file) = (blob(b"hell"), blob(b"p"));
        let msg =
            patch_message(PatchFields { artifact, format: PatchFormat::ZstdPatchFrom, base: &base, patch: &file });
        assert_eq!(msg.lines().count(), 12);
        assert!(msg.starts_with(
            "halftone-patch-v1\napp=notes\nversion=1.2.3\nos=windows\narch=x86_64\nformat=zstd-patch-from\n"
        ));
        assert!(msg.ends_with(&format!("patch-sha256={}\npatch-size=1\n", file.sha256)));
        assert!(!msg.starts_with("halftone-artifact-v1"));
        assert_ne!(msg, crate::signed_message(artifact));
    }

    #[test]
    fn patches_keep_their_rules() {
        let result = blob(b"the result, ten bytes or more");
        let ok = |b: &[u8]| patch(blob(b), blob(b"tiny"));
        assert_eq!(Patches::new(vec![ok(b"a"), ok(b"b")], &result).unwrap().len(), 2);
        let e = Patches::new(vec![ok(b"a"), ok(b"a")], &result).unwrap_err();
        assert!(e.to_string().contains("two patches from one base"), "{e}");
        let e = Patches::new(vec![patch(result, blob(b"tiny"))], &result).unwrap_err();
        assert!(e.to_string().contains("must differ from its result"), "{e}");
        let e = Patches::new(vec![patch(blob(b"a"), blob(&[0; 64]))], &result).unwrap_err();
        assert!(e.to_string().contains("must be smaller"), "{e}");
        let many = (0..=MAX_PATCHES).map(|i| ok(&[i as u8])).collect();
        assert!(Patches::new(many, &result).is_err());
        let p = Patches::new(vec![ok(b"a")], &result).unwrap();
        assert!(p.from_base(&Sha256::digest(b"a")).is_some());
        assert!(p.from_base(&Sha256::digest(b"b")).is_none());
        assert_eq!("zstd-patch-from".parse::<PatchFormat>().unwrap(), PatchFormat::ZstdPatchFrom);
        assert!("bsdiff".parse::<PatchFormat>().is_err());
    }

    fn arb_blob() -> impl Strategy<Value = Blob> {
        (any::<[u8; 32]>(), 0u64..1 << 40).prop_map(|(d, size)| Blob { sha256: Sha256::from_bytes(d), size })
    }

    proptest! {
        /// A patch signature verifies for its own base, result and patch file, and for no
        /// other base, result (digest, size, version, target) or patch file; and never as an
        /// artifact signature.
        #[test]
        fn a_patch_verifies_only_for_its_base_and_its_result(
            base in arb_blob(), other_base in arb_blob(), result in arb_blob(), other_result in arb_blob(),
            file in arb_blob(), other_file in arb_blob(), seed in any::<[u8; 32]>(),
        ) {
            let sk = SigningKey::from_bytes(&seed);
            let pk = PublicKey::from_bytes(sk.verifying_key().to_bytes());
            prop_assume!(pk.is_ok());
            let pk = pk.unwrap();
            let keys = TrustedKeys::new([(pk.fingerprint(), pk)]).unwrap();
            let (app, version, target, _) = result_fields();
            let other_version = Version::parse("1.2.4").unwrap();
            let other_target = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
            fn fields<'a>(app: &'a AppId, version: &'a Version, target: &'a Target, r: &'a Blob) -> SignedFields<'a> {
                SignedFields { app, version, target, sha256: &r.sha256, size: r.size }
            }
            let msg = |a, b: &Blob, f: &Blob| patch_message(PatchFields { artifact: a, format: PatchFormat::ZstdPatchFrom, base: b, patch: f });
            let signed = msg(fields(&app, &version, &target, &result), &base, &file);
            let signature = Signature::from_bytes(sk.sign(signed.as_bytes()).to_bytes());
            let verifies = |m: String| keys.verify(&pk.fingerprint(), m.as_bytes(), &signature).is_ok();
            prop_assert!(verifies(msg(fields(&app, &version, &target, &result), &base, &file)));
            prop_assert_eq!(verifies(msg(fields(&app, &version, &target, &result), &other_base, &file)), other_base == base);
            prop_assert_eq!(verifies(msg(fields(&app, &version, &target, &other_result), &base, &file)), other_result == result);
            prop_assert_eq!(verifies(msg(fields(&app, &version, &target, &result), &base, &other_file)), other_file == file);
            prop_assert!(!verifies(msg(fields(&app, &other_version, &target, &result), &base, &file)));
            prop_assert!(!verifies(msg(fields(&app, &version, &other_target, &result), &base, &file)));
            prop_assert!(!verifies(crate::signed_message(fields(&app, &version, &target, &result))));
        }
    }
}
