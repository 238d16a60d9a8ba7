//! Load shedding: request rates per client address and in all, for the device routes
//! (check-ins, events, downloads) and, separately, for the admin routes. A request over a rate
//! is answered 429 with `Retry-After` before its body is read or its token checked.
//!
//! The limits are `governor`'s GCRA: a check is an atomic compare-and-swap on one cell (keyed
//! limiters look the cell up in a sharded map first), so the check-in path takes no global
//! lock. A rate of `n` per second allows bursts of `2n`. Addresses are keyed as the client IP
//! is resolved for rules (`X-Forwarded-For` from trusted proxies), an IPv6 /64 as one.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};

use crate::config::Limits;
use crate::http::client_ip::address_key;
use crate::problem::ApiError;

/// Which limits a route counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Check-ins, event reports, artifact downloads.
    Device,
    /// Every route that takes a token.
    Admin,
    /// `/healthz`, `/readyz`, `/metrics`: never limited (probes and scrapers must get through
    /// while devices are shed).
    Ops,
}

/// The rate limits of one lane.
struct LaneLimits {
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    global: Option<DefaultDirectRateLimiter>,
    /// For the detail: "device" or "admin".
    name: &'static str,
}

/// The rate limits of every lane.
pub struct Shedding {
    device: LaneLimits,
    admin: LaneLimits,
    clock: DefaultClock,
}

/// `n` per second, bursts of `2n`.
fn quota(n: u32) -> Quota {
    let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(n).allow_burst(n.saturating_mul(NonZeroU32::new(2).expect("2 > 0")))
}

impl LaneLimits {
    fn new(name: &'static str, per_address: Option<u32>, global: Option<u32>) -> Self {
        LaneLimits {
            per_address: per_address.map(|n| RateLimiter::keyed(quota(n))),
            global: global.map(|n| RateLimiter::direct(quota(n))),
            name,
        }
    }
}

impl Shedding {
    /// The rates `limits` sets.
    pub fn new(limits: &Limits) -> Self {
        Shedding {
            device: LaneLimits::new("device", limits.device_rate_per_address, limits.device_rate),
            admin: LaneLimits::new("admin", limits.admin_rate_per_address, limits.admin_rate),
            clock: DefaultClock::default(),
        }
    }

    /// Counts a request of `lane` from `client` (asked for only when a per-address rate is
    /// on; `None` when unknown), or refuses it with a 429 that says when to retry.
    pub fn admit(&self, lane: Lane, client: impl FnOnce() -> Option<IpAddr>) -> Result<(), ApiError> {
        let limits = match lane {
            Lane::Device => &self.device,
            Lane::Admin => &self.admin,
            Lane::Ops => return Ok(()),
        };
        if let Some(limiter) = &limits.per_address
            && let Some(ip) = client()
        {
            limiter
                .check_key(&address_key(ip))
                .map_err(|n| self.refusal(n, format!("too many {} requests from this address", limits.name)))?;
        }
        if let Some(limiter) = &limits.global {
            limiter.check().map_err(|n| self.refusal(n, format!("the server is shedding {} requests", limits.name)))?;
        }
        Ok(())
    }

    fn refusal(&self, not_until: NotUntil<<DefaultClock as governor::clock::Clock>::Instant>, why: String) -> ApiError {
        let wait = not_until.wait_time_from(self.clock.now());
        let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::TooManyRequests {
            detail: format!("{why}; retry after {} s", retry_after_s.max(1)),
            retry_after_s: retry_after_s.max(1),
        }
    }

    /// Forgets addresses whose limits are back to full, so the keyed maps do not grow with
    /// every address ever seen (called every minute).
    pub fn forget_idle(&self) {
        for lane in [&self.device, &self.admin] {
            if let Some(limiter) = &lane.per_address {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_then_429_with_retry_after() {
        let limits = Limits { device_rate_per_address: Some(2), admin_rate: Some(1), ..Limits::unlimited() };
        let shedding = Shedding::new(&limits);
        let a: IpAddr = "203.0.113.9".parse().unwrap();
        let b: IpAddr = "203.0.113.10".parse().unwrap();
        for _ in 0..4 {
            shedding.admit(Lane::Device, || Some(a)).unwrap();
        }
        let e = shedding.admit(Lane::Device, || Some(a)).unwrap_err();
        assert!(matches!(&e, ApiError::TooManyRequests { retry_after_s: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("too many device requests from this address"), "{e}");
        shedding.admit(Lane::Device, || Some(b)).unwrap();
        shedding.admit(Lane::Device, || None).unwrap();
        for _ in 0..2 {
            shedding.admit(Lane::Admin, || Some(a)).unwrap();
        }
        let e = shedding.admit(Lane::Admin, || Some(b)).unwrap_err();
        assert!(e.to_string().contains("shedding admin requests"), "{e}");
        for _ in 0..100 {
            shedding.admit(Lane::Ops, || Some(a)).unwrap();
        }
        shedding.forget_idle();
    }
}
