//! A stand-in for a server that speaks the protocol but is not envoi: every request gets
//! the status and body it was last given, and the requests are counted. For the client's tests of
//! forms envoi never sends (a mode as a number, an owner as a JSON number, paths that
//! climb) and of statuses on demand.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct FakeServer {
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    requests: Arc<AtomicUsize>,
    answer: Arc<Mutex<(u16, String)>>,
}

impl FakeServer {
    /// Answers every request with `status` and `body` (as JSON), in a thread that lives
    /// as long as the test binary: it only ever waits in `accept`.
    pub fn answering(status: u16, body: impl Into<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("an address"));
        let answer = Arc::new(Mutex::new((status, body.into())));
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let current = answer.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let (status, body) = current.lock().expect("not poisoned").clone();
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, requests, answer }
    }

    /// Answers with `status` and `body` from now on.
    pub fn set(&self, status: u16, body: impl Into<String>) {
        *self.answer.lock().expect("not poisoned") = (status, body.into());
    }

    /// How many requests came in so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
