//! What this replica saw of each rollout's step reports: [`ReportsWatch`], the scheduler's
//! memory of when a step's install reports last grew (`ReportsSeen`), from which
//! `StepExhaustion` tells an exhausted proving step (docs/gates.md, *The last look*).
//!
//! It is kept in memory only, per replica: a restart, or another replica taking the
//! scheduler's lease, starts every wait afresh (the reports are "first seen" then). That only
//! delays a last look by up to the gate's `exhausted_after_s`; it can never take one early, since
//! a wait ends only after that long without new reports as seen by the replica that judges.
//! A rollout's entry restarts when its revision changes (a new step, a pause, a resume, an
//! engineer's edit), and entries of rollouts no longer watched are dropped after each tick.

use std::collections::HashMap;
use std::sync::Mutex;

use halftone_channels::{AppId, ChannelName, ReportsSeen, Version};

type Key = (AppId, Version, ChannelName);

/// Each watched rollout's step reports and when they last grew, with the rollout's revision
/// they were seen at.
#[derive(Debug, Default)]
pub struct ReportsWatch {
    seen: Mutex<HashMap<Key, (u64, ReportsSeen)>>,
}

impl ReportsWatch {
    /// Records `reports` for the rollout at `revision` at `now_ms` and returns what is known:
    /// the wait restarts when the count or the revision changed.
    pub fn observe(&self, key: Key, revision: u64, reports: u64, now_ms: u64) -> ReportsSeen {
        let mut seen = self.seen.lock().expect("the reports watch is never poisoned");
        let entry = seen.entry(key).or_insert((revision, ReportsSeen::new(reports, now_ms)));
        let next = if entry.0 == revision { entry.1.seen(reports, now_ms) } else { ReportsSeen::new(reports, now_ms) };
        *entry = (revision, next);
        next
    }

    /// What was last seen of the rollout at `revision`, if this replica watches it.
    pub fn get(&self, key: &Key, revision: u64) -> Option<ReportsSeen> {
        let seen = self.seen.lock().expect("the reports watch is never poisoned");
        seen.get(key).filter(|(r, _)| *r == revision).map(|(_, s)| *s)
    }

    /// Forgets every rollout but `watched`.
    pub fn keep_only(&self, watched: &[Key]) {
        let mut seen = self.seen.lock().expect("the reports watch is never poisoned");
        seen.retain(|k, _| watched.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_revision_or_count_restarts_the_wait() {
        let w = ReportsWatch::default();
        let key =
            (AppId::parse("notes").unwrap(), Version::parse("1.1.0").unwrap(), ChannelName::parse("stable").unwrap());
        assert_eq!(w.observe(key.clone(), 3, 10, 1_000).grew_at_ms(), 1_000);
        assert_eq!(w.observe(key.clone(), 3, 10, 9_000).grew_at_ms(), 1_000);
        assert_eq!(w.observe(key.clone(), 3, 12, 9_500).grew_at_ms(), 9_500);
        assert_eq!(w.observe(key.clone(), 4, 12, 9_900).grew_at_ms(), 9_900);
        assert_eq!(w.get(&key, 4).map(|s| s.reports()), Some(12));
        assert_eq!(w.get(&key, 3), None);
        w.keep_only(&[]);
        assert_eq!(w.get(&key, 4), None);
    }
}
