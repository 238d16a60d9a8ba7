//! [`NetworkCap`]: how many devices one client network may stand for in a release's figures.
//!
//! Report tokens are free to get (check in with a made-up device id), so one host could
//! otherwise stand for any number of devices in the figures health gates read. The aggregator
//! counts a device's events for a release only if the device is one of the first `limit`
//! distinct devices seen from its [`Network`] (an IPv4 /24, an IPv6 /56) for that release, on
//! any channel (gates read every channel of a release together, so a per-channel cap would give
//! a network `limit` devices per channel).
//!
//! Memory is bounded: per release at most [`MAX_NETWORKS`] networks are tracked, each with at
//! most `limit` device hashes (8 bytes each). When the table is full, networks that hold a
//! single device are forgotten (such a network can then count `limit` more, so one network may
//! reach `limit + 1`); when every tracked network holds two or more devices, devices of new
//! networks are counted untracked, and [`Admission::Untracked`] says so (a metric counts them).
//! The table lives in memory only: a restart, and each replica, starts it afresh.

use std::collections::HashMap;
use std::net::IpAddr;

/// The most networks tracked per release.
pub const MAX_NETWORKS: usize = 65_536;

/// A client network: the /24 of an IPv4 address, the /56 of an IPv6 address (IPv4-mapped
/// IPv6 addresses count as IPv4), or unknown (no peer address), which is one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// The first three bytes of an IPv4 address.
    V4([u8; 3]),
    /// The first seven bytes of an IPv6 address.
    V6([u8; 7]),
    /// No address was known.
    Unknown,
}

impl Network {
    /// The network of a client address.
    pub fn of(ip: Option<IpAddr>) -> Network {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => {
                let o = v4.octets();
                Network::V4([o[0], o[1], o[2]])
            }
            Some(IpAddr::V6(v6)) => {
                let o = v6.octets();
                Network::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6]])
            }
            None => Network::Unknown,
        }
    }
}

/// Whether a device's event counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The device is (now) one of its network's counted devices.
    Counted,
    /// Its network already counts `limit` other devices: the event is not counted.
    OverCap,
    /// The table was full of networks with several devices: counted without being tracked.
    Untracked,
}

/// The devices counted per network for one release.
#[derive(Debug, Default)]
pub struct NetworkCap {
    networks: HashMap<Network, Vec<u64>>,
}

impl NetworkCap {
    /// Decides whether `device` (its hash) from `network` counts, at most `limit` per network,
    /// and remembers it if so. Idempotent: a counted device stays counted.
    pub fn admit(&mut self, network: Network, device: u64, limit: usize) -> Admission {
        if let Some(devices) = self.networks.get_mut(&network) {
            if devices.contains(&device) {
                return Admission::Counted;
            }
            if devices.len() >= limit {
                return Admission::OverCap;
            }
            devices.push(device);
            return Admission::Counted;
        }
        if self.networks.len() >= MAX_NETWORKS {
            self.networks.retain(|_, devices| devices.len() > 1);
            if self.networks.len() >= MAX_NETWORKS {
                return Admission::Untracked;
            }
        }
        if limit == 0 {
            return Admission::OverCap;
        }
        self.networks.insert(network, vec![device]);
        Admission::Counted
    }

    /// How many networks are tracked.
    #[cfg(test)]
    pub fn networks(&self) -> usize {
        self.networks.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn networks_are_ipv4_slash_24_and_ipv6_slash_56() {
        for (a, b, same) in [
            ("203.0.113.1", "203.0.113.254", true),
            ("203.0.113.1", "203.0.114.1", false),
            ("::ffff:203.0.113.9", "203.0.113.1", true),
            ("2001:db8:1:ff::1", "2001:db8:1:aa:ffff::2", true),
            ("2001:db8:1:ff::1", "2001:db8:1:1ff::1", false),
            ("2001:db8:1:ff::1", "203.0.113.1", false),
        ] {
            assert_eq!(Network::of(ip(a)) == Network::of(ip(b)), same, "{a} {b}");
        }
        assert_eq!(Network::of(None), Network::Unknown);
    }

    #[test]
    fn a_network_counts_at_most_limit_devices_and_a_counted_device_stays_counted() {
        let mut cap = NetworkCap::default();
        let home = Network::of(ip("198.51.100.7"));
        let admitted: Vec<_> = (0..5).map(|d| cap.admit(home, d, 3)).collect();
        use Admission::*;
        assert_eq!(admitted, [Counted, Counted, Counted, OverCap, OverCap]);
        assert_eq!(cap.admit(home, 1, 3), Counted, "a device already counted reports again");
        assert_eq!(cap.admit(Network::of(ip("198.51.101.7")), 9, 3), Counted, "another network has its own cap");
    }

    #[test]
    fn a_full_table_forgets_single_device_networks_then_counts_untracked() {
        let mut cap = NetworkCap::default();
        for n in 0..MAX_NETWORKS as u32 {
            let b = n.to_be_bytes();
            assert_eq!(cap.admit(Network::V4([b[1], b[2], b[3]]), u64::from(n), 2), Admission::Counted);
        }
        // Every network holds one device: the next new network makes room by forgetting them.
        assert_eq!(cap.admit(Network::V6([1; 7]), 1, 2), Admission::Counted);
        assert_eq!(cap.networks(), 1);
        for n in 0..MAX_NETWORKS as u32 {
            let b = n.to_be_bytes();
            let net = Network::V4([b[1], b[2], b[3]]);
            cap.admit(net, 0, 2);
            cap.admit(net, 1, 2);
        }
        assert_eq!(cap.admit(Network::V6([2; 7]), 1, 2), Admission::Untracked);
        assert!(cap.networks() <= MAX_NETWORKS);
    }

    proptest! {
        /// Whatever the order of reports, no network counts more than `limit` distinct devices,
        /// and each network counts exactly min(limit, its distinct devices).
        #[test]
        fn no_network_counts_more_than_its_cap(
            reports in proptest::collection::vec((0u8..4, 0u64..40), 0..400),
            limit in 1usize..10,
        ) {
            let mut cap = NetworkCap::default();
            let mut counted: HashMap<u8, std::collections::HashSet<u64>> = HashMap::new();
            let mut seen: HashMap<u8, std::collections::HashSet<u64>> = HashMap::new();
            for (net, device) in reports {
                seen.entry(net).or_default().insert(device);
                if cap.admit(Network::V4([10, 0, net]), device, limit) == Admission::Counted {
                    counted.entry(net).or_default().insert(device);
                }
            }
            for (net, devices) in &seen {
                let n = counted.get(net).map_or(0, |c| c.len());
                prop_assert_eq!(n, devices.len().min(limit));
            }
        }
    }
}
