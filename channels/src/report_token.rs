//! [`ReportToken`]: what a device must send with an install event for it to count.
//!
//! The server hands a device tokens in its check-in answer, one per (app, device, version,
//! channel) it may report about; an event counts in the figures health gates read only with
//! the matching token. Tokens are made and checked by the server with a key of its own (this
//! crate only carries them: it holds no key and computes no MAC).

use std::fmt;
use std::str::FromStr;

use crate::error::{ParseError, What};

/// The length of a token in bytes (a MAC truncated to 128 bits); 32 hex digits on the wire.
pub const REPORT_TOKEN_BYTES: usize = 16;

/// A report token: 16 bytes, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportToken([u8; REPORT_TOKEN_BYTES]);

impl ReportToken {
    /// Parses 32 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let why = "expected 32 lowercase hex digits";
        if s.len() != 2 * REPORT_TOKEN_BYTES || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ParseError::new(What::ReportToken, s, why));
        }
        let mut out = [0u8; REPORT_TOKEN_BYTES];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseError::new(What::ReportToken, s, why))?;
        Ok(ReportToken(out))
    }

    /// Wraps token bytes (the server's MAC, truncated).
    pub fn from_bytes(bytes: [u8; REPORT_TOKEN_BYTES]) -> Self {
        ReportToken(bytes)
    }

    /// The raw bytes. Compare them with a constant-time comparison, never with `==`, where
    /// a guess is being checked.
    pub fn as_bytes(&self) -> &[u8; REPORT_TOKEN_BYTES] {
        &self.0
    }
}

impl fmt::Display for ReportToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 2 * REPORT_TOKEN_BYTES];
        hex::encode_to_slice(self.0, &mut out).expect("the buffer is twice the input");
        f.write_str(std::str::from_utf8(&out).expect("hex is ASCII"))
    }
}

impl fmt::Debug for ReportToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportToken({self})")
    }
}

impl FromStr for ReportToken {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl serde::Serialize for ReportToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `collect_str` writes through a stack buffer: no allocation on the check-in path.
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ReportToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn only_32_lowercase_hex_digits_parse() {
        for bad in ["", "ab", &"A".repeat(32), &"g".repeat(32), &"a".repeat(31), &"a".repeat(33), "é"] {
            assert!(ReportToken::parse(bad).is_err(), "{bad:?}");
        }
        let t = ReportToken::parse(&"0f".repeat(16)).unwrap();
        assert_eq!(t.as_bytes(), &[0x0f; 16]);
    }

    proptest! {
        #[test]
        fn text_and_json_round_trip(bytes in any::<[u8; 16]>()) {
            let t = ReportToken::from_bytes(bytes);
            prop_assert_eq!(ReportToken::parse(&t.to_string()).unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(json.len(), 34);
            prop_assert_eq!(serde_json::from_str::<ReportToken>(&json).unwrap(), t);
        }
    }
}
