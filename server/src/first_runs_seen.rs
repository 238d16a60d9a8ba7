//! What this replica saw of each gated rollout's first runs over the last crash window:
//! [`FirstRunsWatch`], a `Settling` per rollout, from which the gate reads the **settled**
//! first runs, those reported at least the comparison's `crash_window_s` ago (proof that the
//! crash rate is no worse counts crashes against them only; docs/gates.md, *Crashes come
//! late*).
//!
//! It is kept in memory only, per replica, like `ReportsWatch`: a restart, or another replica
//! taking the scheduler's lease, starts every history afresh, so no first run counts as settled
//! until a crash window has passed. That delays proof of the crash rate by up to a window; it
//! can never give proof early, since a first run counts only once this replica has seen it for
//! a whole window. Histories of rollouts the scheduler no longer watches are dropped after
//! each tick; on a replica that does not tick (another holds the lease), the status views
//! keep histories too, and those not looked at for a week are dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use halftone_channels::{AppId, ChannelName, Settling, Version};

type Key = (AppId, Version, ChannelName);

/// A history not looked at for this long is dropped (on a replica without the lease).
const IDLE_MS: u64 = 7 * 86_400_000;

/// Each gated rollout's history of its release's first-run count.
#[derive(Debug, Default)]
pub struct FirstRunsWatch {
    seen: Mutex<HashMap<Key, (Settling, u64)>>,
}

impl FirstRunsWatch {
    /// Records that the rollout's release had `first_runs` (cumulative) at `now_ms` and returns
    /// how many it had at least `window_ms` before (a lower bound; 0 until this replica has
    /// watched it that long).
    pub fn settled(&self, key: &Key, first_runs: u64, now_ms: u64, window_ms: u64) -> u64 {
        let mut seen = self.seen.lock().expect("the first runs watch is never poisoned");
        if !seen.contains_key(key) {
            seen.retain(|_, (_, looked_at)| now_ms.saturating_sub(*looked_at) < IDLE_MS);
        }
        let (history, looked_at) = match seen.get_mut(key) {
            Some(entry) => entry,
            None => seen.entry(key.clone()).or_default(),
        };
        *looked_at = now_ms;
        history.observe(now_ms, first_runs, window_ms);
        history.settled(now_ms, window_ms)
    }

    /// Forgets every rollout but `watched`.
    pub fn keep_only(&self, watched: &[Key]) {
        let mut seen = self.seen.lock().expect("the first runs watch is never poisoned");
        seen.retain(|k, _| watched.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_runs_settle_a_window_after_this_replica_first_saw_them() {
        let w = FirstRunsWatch::default();
        let key =
            (AppId::parse("notes").unwrap(), Version::parse("1.1.0").unwrap(), ChannelName::parse("stable").unwrap());
        const DAY: u64 = 86_400_000;
        // A replica that starts with 500 first runs already counted has not seen them for a day.
        assert_eq!(w.settled(&key, 500, 10 * DAY, DAY), 0);
        assert_eq!(w.settled(&key, 800, 10 * DAY + 3_600_000, DAY), 0);
        assert_eq!(w.settled(&key, 900, 11 * DAY, DAY), 500);
        assert_eq!(w.settled(&key, 900, 11 * DAY + 3_600_000, DAY), 800);
        w.keep_only(&[]);
        assert_eq!(w.settled(&key, 900, 12 * DAY, DAY), 0, "a forgotten rollout starts afresh");
        // A history nobody looked at for a week is dropped when another is added.
        let other = (key.0.clone(), Version::parse("1.2.0").unwrap(), key.2.clone());
        w.settled(&other, 0, 20 * DAY, DAY);
        assert_eq!(w.seen.lock().unwrap().len(), 1);
    }
}
