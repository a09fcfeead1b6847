//! An optional bound on failed authentications per client address: past the limit in a
//! minute, the address gets 429 until the minute is over. Off by default; the platform's
//! addresses (or a proxy's) can be exempted. Only failures write to the table, and a
//! lookup happens only while the limit is on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{ConfigError, ServerSettings};

const SHARDS: usize = 16;
/// Addresses tracked per shard before old entries are dropped.
const SHARD_CAPACITY: usize = 4096;
pub const WINDOW: Duration = Duration::from_secs(60);

/// A network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: u128,
    prefix: u32,
    v4: bool,
}

impl Network {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an address or a CIDR network"))?;
        let (bits, v4, max) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), true, 32),
            IpAddr::V6(a) => (u128::from(a), false, 128),
        };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: bad prefix length"))?,
            None => max,
        };
        Ok(Self {
            base: bits & mask(prefix, max),
            prefix,
            v4,
        })
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (addr, self.v4) {
            (IpAddr::V4(a), true) => u128::from(u32::from(a)) & mask(self.prefix, 32) == self.base,
            (IpAddr::V6(a), false) => u128::from(a) & mask(self.prefix, 128) == self.base,
            (IpAddr::V6(a), true) => a.to_ipv4_mapped().is_some_and(|a| self.contains(IpAddr::V4(a))),
            (IpAddr::V4(_), false) => false,
        }
    }
}

fn mask(prefix: u32, width: u32) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let ones = (!0u128) << (128 - prefix);
    ones >> (128 - width)
}

#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    exempt: Vec<Network>,
    shards: Vec<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

impl FailureLimiter {
    /// The limiter that `server.auth_failure_limit` asks for, if it is set.
    pub fn from_settings(server: &ServerSettings) -> Result<Option<Self>, ConfigError> {
        if server.auth_failure_limit == 0 {
            return Ok(None);
        }
        let exempt = server
            .auth_failure_exempt
            .iter()
            .map(|n| Network::parse(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| ConfigError::Invalid {
                key: "server.auth_failure_exempt",
                problem,
            })?;
        Ok(Some(Self::new(server.auth_failure_limit, exempt)))
    }

    pub fn new(limit: u32, exempt: Vec<Network>) -> Self {
        Self {
            limit,
            exempt,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, addr: &IpAddr) -> &Mutex<HashMap<IpAddr, (Instant, u32)>> {
        let n = match addr {
            IpAddr::V4(a) => a.octets()[3] as usize,
            IpAddr::V6(a) => a.octets()[15] as usize,
        };
        &self.shards[n % SHARDS]
    }

    /// Whether `addr` has used up its failures for the current window.
    pub fn is_blocked(&self, addr: IpAddr) -> bool {
        if self.exempt.iter().any(|n| n.contains(addr)) {
            return false;
        }
        let shard = self.shard(&addr).lock().unwrap_or_else(|p| p.into_inner());
        shard
            .get(&addr)
            .is_some_and(|(since, count)| since.elapsed() < WINDOW && *count >= self.limit)
    }

    /// Counts a failed authentication from `addr`.
    pub fn record_failure(&self, addr: IpAddr) {
        if self.exempt.iter().any(|n| n.contains(addr)) {
            return;
        }
        let mut shard = self.shard(&addr).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&addr) {
            shard.retain(|_, (since, _)| since.elapsed() < WINDOW);
            if shard.len() >= SHARD_CAPACITY {
                // A flood of addresses: forget the oldest rather than grow without bound.
                let oldest = shard.iter().min_by_key(|(_, (since, _))| *since).map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    shard.remove(&oldest);
                }
            }
        }
        let entry = shard.entry(addr).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_their_addresses() {
        let net = Network::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(Network::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap()));
        assert!(Network::parse("::/0").unwrap().contains("2001:db8::1".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nope").is_err());
    }

    #[test]
    fn an_address_is_blocked_after_its_limit_and_exempt_ones_never_are() {
        let limiter = FailureLimiter::new(3, vec![Network::parse("192.168.0.0/16").unwrap()]);
        let bad: IpAddr = "203.0.113.7".parse().unwrap();
        let platform: IpAddr = "192.168.4.4".parse().unwrap();
        for _ in 0..3 {
            assert!(!limiter.is_blocked(bad));
            limiter.record_failure(bad);
            limiter.record_failure(platform);
        }
        assert!(limiter.is_blocked(bad));
        assert!(!limiter.is_blocked(platform));
        assert!(!limiter.is_blocked("203.0.113.8".parse().unwrap()));
    }
}
