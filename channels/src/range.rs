//! Ranges over ordered values, [`Range`]: comma-separated comparators, all of which must hold.
//!
//! Used for app-version rules (`>=1.2.0, <2.0.0`) and OS-version rules (`>=10.0.19041`).
//! Comparison is the value's own total order. For versions this differs from Cargo's
//! `semver::VersionReq` on purpose: `>=1.2.0, <2.0.0` here contains `1.3.0-beta.1`, because a
//! release engineer targeting "1.2 up to 2.0" means every build in between.

use std::fmt;
use std::str::FromStr;

use crate::error::{ParseError, What};

/// How a comparator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` (also a bare value)
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// One condition `op value`, e.g. `>=1.2.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparator<T> {
    /// The comparison.
    pub op: Op,
    /// The value compared against.
    pub value: T,
}

/// A non-empty conjunction of comparators: a value is in the range iff every comparator holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range<T> {
    comparators: Vec<Comparator<T>>,
}

impl<T: Ord> Range<T> {
    /// True iff `value` satisfies every comparator.
    pub fn contains(&self, value: &T) -> bool {
        self.comparators.iter().all(|c| {
            let ord = value.cmp(&c.value);
            match c.op {
                Op::Eq => ord.is_eq(),
                Op::Ne => ord.is_ne(),
                Op::Gt => ord.is_gt(),
                Op::Ge => ord.is_ge(),
                Op::Lt => ord.is_lt(),
                Op::Le => ord.is_le(),
            }
        })
    }

    /// The comparators, in the order written.
    pub fn comparators(&self) -> &[Comparator<T>] {
        &self.comparators
    }
}

impl<T: FromStr<Err = ParseError>> Range<T> {
    /// Parses `op value[, op value]...`; ops are `=`, `!=`, `>`, `>=`, `<`, `<=`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() > 512 {
            return Err(ParseError::new(What::Range, s, "must be at most 512 characters"));
        }
        let mut comparators = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(ParseError::new(What::Range, s, "expected comparators like \">=1.2.0, <2.0.0\""));
            }
            let (op, rest) =
                [("!=", Op::Ne), (">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt), ("=", Op::Eq)]
                    .into_iter()
                    .find_map(|(sym, op)| part.strip_prefix(sym).map(|rest| (op, rest)))
                    .unwrap_or((Op::Eq, part));
            let value = rest
                .trim()
                .parse::<T>()
                .map_err(|e| ParseError::new(What::Range, s, format!("in {part:?}: {}", e.reason())))?;
            comparators.push(Comparator { op, value });
        }
        Ok(Range { comparators })
    }
}

impl<T: fmt::Display> fmt::Display for Range<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.comparators.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}", c.op.symbol(), c.value)?;
        }
        Ok(())
    }
}

impl<T: FromStr<Err = ParseError>> FromStr for Range<T> {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl<T: fmt::Display> serde::Serialize for Range<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, T: FromStr<Err = ParseError>> serde::Deserialize<'de> for Range<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OsVersion, Version};

    fn check(range: &str, value: &str, expected: bool) {
        let r: Range<Version> = range.parse().unwrap();
        assert_eq!(r.contains(&value.parse().unwrap()), expected, "{value} in {range}");
    }

    #[test]
    fn version_ranges_include_prereleases_in_between() {
        check(">=1.2.0, <2.0.0", "1.2.0", true);
        check(">=1.2.0, <2.0.0", "1.3.0-beta.1", true);
        check(">=1.2.0, <2.0.0", "2.0.0-beta.1", true);
        check(">=1.2.0, <2.0.0", "2.0.0", false);
        check(">=1.2.0, <2.0.0", "1.1.9", false);
        check("1.4.1", "1.4.1", true);
        check("=1.4.1", "1.4.2", false);
        check("!=1.4.1", "1.4.2", true);
        check(">1.0.0", "1.0.0", false);
        check("<=1.0.0", "1.0.0", true);
    }

    #[test]
    fn os_version_ranges_compare_dotted_numbers() {
        let r: Range<OsVersion> = ">=10.0.19041".parse().unwrap();
        assert!(r.contains(&"10.0.19045".parse().unwrap()));
        assert!(!r.contains(&"10.0.18363".parse().unwrap()));
        assert!(r.contains(&"11".parse().unwrap()));
    }

    #[test]
    fn parse_errors_say_why() {
        for (input, msg) in [
            ("", "expected comparators"),
            (">=1.0.0,", "expected comparators"),
            (">=1.x", "in \">=1.x\""),
            ("~1.2.3", "in \"~1.2.3\""),
        ] {
            let e = Range::<Version>::parse(input).unwrap_err();
            assert!(e.to_string().contains(msg), "{input:?}: {e}");
        }
    }

    #[test]
    fn displays_as_parsed() {
        let r: Range<Version> = ">= 1.2.0 ,<2.0.0".parse().unwrap();
        assert_eq!(r.to_string(), ">=1.2.0, <2.0.0");
    }
}
