//! The cap on open connections per client address. Without it one host could hold every file
//! descriptor (26,000 idle connections did, and check-ins took 4.5 s).
//!
//! [`ConnectionCap::on_connect`] runs once per accepted TCP connection, before its first
//! request: it counts the connection under its peer's address (an IPv6 /64 counts as one, see
//! [`address_key`]) and stores a [`Slot`] in the connection's data, which gives the count
//! back when the connection closes. A connection over the cap is answered at once with a 429
//! problem (best effort: the socket's buffer takes it without waiting) and shut down, so its
//! descriptor is freed as soon as the worker sees the end of the stream. Trusted proxies are
//! exempt: their connections carry many clients. Counting takes one short lock on one of 64
//! shards per connection, nothing per request.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use ipnet::IpNet;

use crate::http::client_ip::address_key;
use crate::problem::ApiError;

const SHARDS: usize = 64;

/// Seconds a refused client is told to wait.
const RETRY_AFTER_S: u64 = 5;

/// Open connections per client address, against a cap.
pub struct ConnectionCap {
    cap: u32,
    trusted: Vec<IpNet>,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<IpAddr, u32>>]>,
}

/// A counted connection; dropping it (when the connection closes) gives the count back.
pub struct Slot {
    counter: Arc<ConnectionCap>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter.release(self.key);
    }
}

/// Whether a connection may stay open.
#[derive(Debug)]
pub enum Admission {
    /// Counted; the slot gives the count back when dropped.
    Admitted(Slot),
    /// Not counted: a trusted proxy.
    Exempt,
    /// Over the cap for its address.
    Refused,
}

impl ConnectionCap {
    /// At most `cap` connections per address, except from `trusted` proxies.
    pub fn new(cap: u32, trusted: Vec<IpNet>) -> Arc<Self> {
        Arc::new(ConnectionCap {
            cap,
            trusted,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    fn shard(&self, key: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        // A poisoned shard only means a panic elsewhere held it; its counts are still counts.
        self.shards[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a new connection from `peer`, unless its address is at the cap.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Admission {
        if self.trusted.iter().any(|n| n.contains(&peer)) {
            return Admission::Exempt;
        }
        let key = address_key(peer);
        let mut shard = self.shard(key);
        let open = shard.entry(key).or_insert(0);
        if *open >= self.cap {
            return Admission::Refused;
        }
        *open += 1;
        Admission::Admitted(Slot { counter: self.clone(), key })
    }

    fn release(&self, key: IpAddr) {
        let mut shard = self.shard(key);
        if let Some(open) = shard.get_mut(&key) {
            *open -= 1;
            if *open == 0 {
                shard.remove(&key);
            }
        }
    }

    /// Open connections counted for `peer`'s address.
    #[cfg(test)]
    fn open(&self, peer: IpAddr) -> u32 {
        let key = address_key(peer);
        self.shard(key).get(&key).copied().unwrap_or(0)
    }

    /// The `HttpServer::on_connect` hook: counts the connection, or refuses it.
    pub fn on_connect(self: &Arc<Self>, io: &dyn std::any::Any, data: &mut Extensions) {
        let Some(stream) = io.downcast_ref::<TcpStream>() else { return };
        let Ok(peer) = stream.peer_addr() else { return };
        match self.admit(peer.ip()) {
            Admission::Admitted(slot) => {
                data.insert(slot);
            }
            Admission::Exempt => {}
            Admission::Refused => {
                // Counted, and logged only at debug: a flood of refusals must not flood the log.
                metrics::counter!("halftone_connections_refused_total").increment(1);
                tracing::debug!(peer = %peer.ip(), cap = self.cap, "connection refused: too many from one address");
                refuse(stream, self.cap);
            }
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({})", self.key)
    }
}

/// Answers 429 without waiting (what the socket buffer takes) and shuts the connection down;
/// the worker then sees the end of the stream and drops it.
fn refuse(stream: &TcpStream, cap: u32) {
    let problem = ApiError::TooManyRequests {
        detail: format!("too many open connections from one address (at most {cap}); close some and retry"),
        retry_after_s: RETRY_AFTER_S,
    }
    .problem();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: {}\r\nretry-after: {RETRY_AFTER_S}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        crate::problem::PROBLEM_JSON,
        body.len()
    );
    // Through a second descriptor of the same socket (no unsafe code needed): tokio's own
    // `try_write` would not write before the reactor has seen the socket writable. The socket
    // is non-blocking, so this takes what the buffer holds without waiting. The shutdown then
    // ends the socket itself; the worker's descriptor reads the end of the stream and closes.
    use std::io::Write as _;
    use std::os::fd::AsFd as _;
    if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
        let mut socket = std::net::TcpStream::from(fd);
        let _ = socket.write(&[head.as_bytes(), &body].concat());
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_per_address_given_back_on_close() {
        let cap = ConnectionCap::new(2, vec!["10.0.0.0/8".parse().unwrap()]);
        let a: IpAddr = "203.0.113.9".parse().unwrap();
        let b: IpAddr = "203.0.113.10".parse().unwrap();
        let one = cap.admit(a);
        let two = cap.admit(a);
        assert!(matches!((&one, &two), (Admission::Admitted(_), Admission::Admitted(_))));
        assert!(matches!(cap.admit(a), Admission::Refused));
        assert!(matches!(cap.admit(b), Admission::Admitted(_)), "another address has its own count");
        assert_eq!(cap.open(a), 2);
        drop(one);
        assert_eq!(cap.open(a), 1);
        assert!(matches!(cap.admit(a), Admission::Admitted(_)));
        assert!(matches!(cap.admit("10.1.2.3".parse().unwrap()), Admission::Exempt));
        drop(two);
        assert_eq!(cap.open(b), 0, "a dropped admission gave its count back");
    }
}
