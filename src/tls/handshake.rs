//! The TLS handshake stage of the HTTPS listener (SPEC §6: a client that connects and
//! stays silent, or handshakes slowly, cannot hold up other clients).
//!
//! actix's own acceptor gives each worker a fixed number of handshake slots and stops
//! accepting while they are all taken, so a few hundred connections that sent nothing
//! made every other client wait in the backlog until they timed out. Here accepting never
//! stops: each handshake in flight is counted in its worker and under its client address,
//! and when either count is full, the oldest handshake there is closed to make room, if it
//! has been in flight for [`EVICTABLE_AFTER`]. An honest handshake is over in a round trip
//! or two, so the oldest are the ones stalling, and a flood from one address only ever
//! pushes out its own connections. The age matters when many honest clients share an
//! address (a NAT, a proxy, a node starting its workloads): a burst of them is briefly
//! over the count while the server works through their handshakes, and closing the oldest
//! of them at once failed 8,102 of a burst of 10,000 (bench/README.md, "Fleet start").

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::metrics::Registry;

#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    /// From the connection's acceptance to the end of its handshake.
    pub timeout: Duration,
    /// Handshakes in flight in one worker.
    pub per_worker: usize,
    /// Handshakes in flight from one client address, across workers; 0: no such limit.
    pub per_address: usize,
}

/// Why a connection ended before its handshake did.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake not finished within the timeout")]
    Timeout,
    #[error("TLS handshake closed to make room for newer ones")]
    Evicted,
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

/// How long a handshake must have been in flight before it may be closed to make room. A
/// server saturated by a fleet's burst finishes each handshake within tens of
/// milliseconds of accepting it; one still going after this is stalling.
pub const EVICTABLE_AFTER: Duration = Duration::from_millis(500);

/// Handshakes in flight, oldest (lowest id) first, each with when it was accepted and the
/// signal that closes it.
type InFlight = BTreeMap<u64, (Instant, Arc<Notify>)>;

/// What all workers share: handshakes in flight by client address.
#[derive(Debug, Default)]
pub struct Shared {
    next_id: AtomicU64,
    by_address: Mutex<HashMap<IpAddr, InFlight>>,
}

impl Shared {
    fn by_address(&self) -> MutexGuard<'_, HashMap<IpAddr, InFlight>> {
        self.by_address.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One worker's handshake stage.
pub struct Handshakes {
    acceptor: TlsAcceptor,
    limits: HandshakeLimits,
    shared: Arc<Shared>,
    metrics: Arc<Registry>,
    worker: RefCell<InFlight>,
}

/// Makes room for one more: signals the oldest to close until fewer than `cap` are left,
/// as far as they are old enough to be stalling; the count stays over until they are.
fn make_room(in_flight: &mut InFlight, cap: usize, now: Instant) {
    while in_flight.len() >= cap.max(1) {
        let Some(entry) = in_flight.first_entry() else { break };
        if now.duration_since(entry.get().0) < EVICTABLE_AFTER {
            break;
        }
        entry.remove().1.notify_one();
    }
}

/// A handshake's place in the counts, given up when it ends however it ends.
struct Ticket {
    stage: Rc<Handshakes>,
    id: u64,
    address: Option<IpAddr>,
    evict: Arc<Notify>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.stage.worker.borrow_mut().remove(&self.id);
        if let Some(address) = self.address {
            let mut by_address = self.stage.shared.by_address();
            if let Some(in_flight) = by_address.get_mut(&address) {
                in_flight.remove(&self.id);
                if in_flight.is_empty() {
                    by_address.remove(&address);
                }
            }
        }
    }
}

impl Handshakes {
    pub fn new(
        config: Arc<rustls::ServerConfig>,
        limits: HandshakeLimits,
        shared: Arc<Shared>,
        metrics: Arc<Registry>,
    ) -> Rc<Self> {
        Rc::new(Self {
            acceptor: TlsAcceptor::from(config),
            limits,
            shared,
            metrics,
            worker: RefCell::default(),
        })
    }

    fn admit(self: &Rc<Self>, address: Option<IpAddr>) -> Ticket {
        let id = self.shared.next_id.fetch_add(1, Relaxed);
        let evict = Arc::new(Notify::new());
        let now = Instant::now();
        {
            let mut worker = self.worker.borrow_mut();
            make_room(&mut worker, self.limits.per_worker, now);
            worker.insert(id, (now, evict.clone()));
        }
        let address = address.filter(|_| self.limits.per_address > 0);
        if let Some(address) = address {
            let mut by_address = self.shared.by_address();
            let in_flight = by_address.entry(address).or_default();
            make_room(in_flight, self.limits.per_address, now);
            in_flight.insert(id, (now, evict.clone()));
        }
        Ticket {
            stage: self.clone(),
            id,
            address,
            evict,
        }
    }

    /// The handshake of one accepted connection from `peer`.
    pub async fn handshake<IO: AsyncRead + AsyncWrite + Unpin>(
        self: Rc<Self>,
        io: IO,
        peer: Option<SocketAddr>,
    ) -> Result<(TlsStream<IO>, Option<SocketAddr>), HandshakeError> {
        // IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d: one address each.
        let ticket = self.admit(peer.map(|p| p.ip().to_canonical()));
        let accept = tokio::time::timeout(self.limits.timeout, self.acceptor.accept(io));
        let outcome = tokio::select! {
            biased;
            () = ticket.evict.notified() => {
                self.metrics.tls_evictions.fetch_add(1, Relaxed);
                Err(HandshakeError::Evicted)
            }
            done = accept => match done {
                Ok(Ok(stream)) => Ok((stream, peer)),
                Ok(Err(e)) => Err(HandshakeError::Failed(e)),
                Err(_) => {
                    self.metrics.tls_timeouts.fetch_add(1, Relaxed);
                    Err(HandshakeError::Timeout)
                }
            },
        };
        drop(ticket);
        outcome
    }
}
