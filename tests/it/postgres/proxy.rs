//! A TCP proxy between envoi and the database, to cut envoi off from it or silence it.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `url` with its host and port replaced by `address`.
pub fn with_address(url: &str, address: SocketAddr) -> String {
    let authority_start = url.find("://").map(|i| i + 3).expect("a URL with a scheme");
    let authority_end = url[authority_start..]
        .find(['/', '?'])
        .map(|i| authority_start + i)
        .unwrap_or(url.len());
    let authority = &url[authority_start..authority_end];
    let user = authority.rsplit_once('@').map(|(user, _)| format!("{user}@"));
    format!(
        "{}{}{address}{}",
        &url[..authority_start],
        user.unwrap_or_default(),
        &url[authority_end..]
    )
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const SILENT: u8 = 2;

/// A TCP proxy to the database that can be taken down (new connections dropped at once,
/// open ones cut), silenced (every connection, open or new, held open with nothing
/// forwarded either way: a network that stops answering), and brought back up, either for
/// every connection (the network heals) or for new ones only (the silenced ones stay
/// silent for good, as behind a firewall or NAT that forgot them).
pub struct Proxy {
    pub address: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

struct ProxyShared {
    mode: AtomicU8,
    /// Connections accepted before this epoch were forgotten: they never forward again.
    epoch: AtomicU64,
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

impl ProxyShared {
    fn cut_all(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn keep(&self, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            self.open.lock().unwrap_or_else(|p| p.into_inner()).push(clone);
        }
    }

    /// Waits while a connection accepted in epoch `born` may not forward; `false` when it
    /// is to end instead.
    fn may_forward(&self, born: u64) -> bool {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            match self.mode.load(Ordering::SeqCst) {
                DOWN => return false,
                UP if born >= self.epoch.load(Ordering::SeqCst) => return true,
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

/// Copies `from` to `to` while the proxy lets connection `born` forward.
fn forward(mut from: TcpStream, mut to: TcpStream, born: u64, state: &ProxyShared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Silenced, the chunk read is held and nothing more is read: the sender's
        // writes pile up in the kernel's buffers, as on a network that went quiet.
        if !state.may_forward(born) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Proxy {
    /// A proxy to `upstream` on a free local port, up or down.
    pub fn start(upstream: SocketAddr, up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(ProxyShared {
            mode: AtomicU8::new(if up { UP } else { DOWN }),
            epoch: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let state = shared.clone();
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if state.mode.load(Ordering::SeqCst) == DOWN {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let born = state.epoch.load(Ordering::SeqCst);
                state.keep(&client);
                let state = state.clone();
                // Silenced, a new connection is accepted and held, its upstream not yet made.
                std::thread::spawn(move || {
                    if !state.may_forward(born) {
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    }
                    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    };
                    state.keep(&server);
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    for (from, to) in [(&client, &server), (&server, &client)] {
                        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                            continue;
                        };
                        let state = state.clone();
                        std::thread::spawn(move || forward(from, to, born, &state));
                    }
                });
            }
        });
        Self {
            address,
            shared,
            accept: Some(accept),
        }
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&self) {
        self.shared.mode.store(DOWN, Ordering::SeqCst);
        self.shared.cut_all();
    }

    /// Stops forwarding anything, on open connections and on new ones, which are accepted
    /// and held: nothing is refused or cut, nothing answers.
    pub fn silence(&self) {
        self.shared.mode.store(SILENT, Ordering::SeqCst);
    }

    /// Accepts and forwards connections again, the held ones included.
    pub fn up(&self) {
        self.shared.mode.store(UP, Ordering::SeqCst);
    }

    /// Accepts and forwards new connections again; those open until now stay silent.
    pub fn up_for_new_connections(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.mode.store(UP, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.mode.store(DOWN, Ordering::SeqCst);
        self.shared.cut_all();
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}
