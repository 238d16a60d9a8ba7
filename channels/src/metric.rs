//! App metrics: the figures an app reports besides install events. A [`MetricName`] (a short
//! slug), its [`MetricKind`] (a numeric `value` with the [`Direction`] that is better, or a
//! named `counter`), an app's declared [`MetricSet`] (at most [`MAX_METRICS`]; a report
//! naming anything else is refused), a reported [`MetricValue`] (finite and bounded) and a
//! counter's [`CounterFigures`] (its sum and the devices that reported it, so a rate per
//! device can be formed).
//!
//! Values are aggregated per build in a [`Distribution`](crate::Distribution); gates judge
//! them with a [`MetricGate`](crate::MetricGate).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ParseError, What, check_slug, string_newtype};

/// The longest metric name.
pub const MAX_METRIC_NAME: usize = 64;
/// The most metrics an app may declare: each costs a few KiB per release and channel.
pub const MAX_METRICS: usize = 32;
/// The largest magnitude a value may have: beyond it sums and variances lose their precision,
/// and no session length, frame time or business figure needs more.
pub const MAX_METRIC_MAGNITUDE: f64 = 1e12;
/// The most one counter report may add at once.
pub const MAX_COUNT: u64 = 1_000_000;

/// A metric's name: 1–64 characters from `[a-z0-9_.]`, starting with a letter
/// (`session_length_s`, `frame.first_ms`). Shared (`Arc`): cloning allocates nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricName(std::sync::Arc<str>);

impl MetricName {
    /// Parses a metric name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_slug(
            What::MetricName,
            s,
            MAX_METRIC_NAME,
            |c| c.is_ascii_lowercase(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_'),
            "lowercase letters, digits, '.' and '_'",
        )?;
        Ok(MetricName(s.into()))
    }
}
string_newtype!(MetricName);

/// Which way a value metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Smaller is better (time to first frame, memory).
    Lower,
    /// Larger is better (session length, purchases per session).
    Higher,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Lower => "lower is better",
            Direction::Higher => "higher is better",
        })
    }
}

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A numeric figure per observation (a session's length): count, mean, variance and
    /// quantiles are kept per build; gates can judge it.
    Value(Direction),
    /// A named counter (purchases, errors shown): its sum per build and the devices that
    /// reported it are kept.
    Counter,
}

/// The metrics an app declared, by name: at most [`MAX_METRICS`], names unique.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricSet(BTreeMap<MetricName, MetricKind>);

impl MetricSet {
    /// The set of these declarations; refuses duplicates and more than [`MAX_METRICS`].
    pub fn new(declared: impl IntoIterator<Item = (MetricName, MetricKind)>) -> Result<Self, ParseError> {
        let mut set = BTreeMap::new();
        for (name, kind) in declared {
            if set.len() == MAX_METRICS {
                return Err(ParseError::new(
                    What::MetricSet,
                    "",
                    format!("an app declares at most {MAX_METRICS} metrics"),
                ));
            }
            if set.insert(name.clone(), kind).is_some() {
                return Err(ParseError::new(What::MetricSet, name.as_str(), "is declared twice"));
            }
        }
        Ok(MetricSet(set))
    }

    /// The kind of the metric named `name`, if declared.
    pub fn kind(&self, name: &str) -> Option<MetricKind> {
        self.0.get(name).copied()
    }

    /// The declared name equal to `name` (a shared copy), with its kind.
    pub fn get(&self, name: &str) -> Option<(&MetricName, MetricKind)> {
        self.0.get_key_value(name).map(|(n, k)| (n, *k))
    }

    /// Every declaration, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&MetricName, MetricKind)> {
        self.0.iter().map(|(n, k)| (n, *k))
    }

    /// How many metrics are declared.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One observed value: finite, with a magnitude of at most [`MAX_METRIC_MAGNITUDE`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct MetricValue(f64);

impl MetricValue {
    /// Checks `v` is finite and not too large.
    pub fn new(v: f64) -> Result<Self, ParseError> {
        if !v.is_finite() {
            return Err(ParseError::new(What::MetricValue, &v.to_string(), "must be a finite number"));
        }
        if v.abs() > MAX_METRIC_MAGNITUDE {
            return Err(ParseError::new(What::MetricValue, &v.to_string(), "must be at most 1e12 in magnitude"));
        }
        Ok(MetricValue(v))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for MetricValue {
    type Error = ParseError;
    fn try_from(v: f64) -> Result<Self, ParseError> {
        MetricValue::new(v)
    }
}

impl From<MetricValue> for f64 {
    fn from(v: MetricValue) -> f64 {
        v.0
    }
}

/// A counter's figures for one build: what its devices added up, and how many devices did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CounterFigures {
    /// The sum of every count reported.
    pub sum: u64,
    /// Distinct devices that reported it (approximate beyond a few hundred).
    pub devices: u64,
}

impl CounterFigures {
    /// The sum per reporting device, when any device reported.
    pub fn per_device(&self) -> Option<f64> {
        (self.devices > 0).then(|| self.sum as f64 / self.devices as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), &str>) {
        match (MetricName::parse(input), expected) {
            (Ok(n), Ok(())) => assert_eq!(n.as_str(), input),
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{e}"),
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn metric_names() {
        check("session_length_s", Ok(()));
        check("frame.first_ms", Ok(()));
        check(&"a".repeat(64), Ok(()));
        check("", Err("must not be empty"));
        check(&"a".repeat(65), Err("at most 64"));
        check("Session", Err("'S' is not allowed"));
        check("9lives", Err("must start with"));
        check("_x", Err("must start with"));
        check("a-b", Err("'-' is not allowed"));
        check("a b", Err("' ' is not allowed"));
    }

    #[test]
    fn values_are_finite_and_bounded() {
        assert_eq!(MetricValue::new(312.5).unwrap().get(), 312.5);
        assert_eq!(MetricValue::new(-4.0).unwrap().get(), -4.0);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e13, -1e13] {
            assert!(MetricValue::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<MetricValue>("1e300").is_err());
        assert_eq!(serde_json::from_str::<MetricValue>("2.5").unwrap().get(), 2.5);
    }

    #[test]
    fn a_metric_set_is_bounded_and_has_unique_names() {
        let n = |i: usize| MetricName::parse(&format!("m{i}")).unwrap();
        let set = MetricSet::new((0..MAX_METRICS).map(|i| (n(i), MetricKind::Counter))).unwrap();
        assert_eq!(set.len(), MAX_METRICS);
        assert_eq!(set.kind("m3"), Some(MetricKind::Counter));
        assert_eq!(set.kind("m99"), None);
        let err = MetricSet::new((0..=MAX_METRICS).map(|i| (n(i), MetricKind::Counter))).unwrap_err();
        assert!(err.to_string().contains("at most 32"), "{err}");
        let twice = [(n(1), MetricKind::Counter), (n(1), MetricKind::Value(Direction::Lower))];
        assert!(MetricSet::new(twice).unwrap_err().to_string().contains("declared twice"));
    }

    #[test]
    fn a_rate_per_device() {
        assert_eq!(CounterFigures { sum: 30, devices: 20 }.per_device(), Some(1.5));
        assert_eq!(CounterFigures::default().per_device(), None);
    }
}
