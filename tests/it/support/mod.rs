//! The one support library of the black-box tests.
//!
//! - [`workspace`]: a scratch folder, the built binary run in it with a clean
//!   environment, what a finished command did ([`Ran`]);
//! - [`server`]: the server guard, `envoi` as a child process on a free port, killed
//!   when it drops;
//! - [`app`]: envoi built in this process, for tests that hand it a policy or limits;
//! - [`jwt`]: tokens minted and checked with `hmac` and `sha2`, independent of envoi;
//! - [`raw_http`]: HTTP/1.1 by hand over a `TcpStream`;
//! - [`fake`]: a server that is not envoi, answering what a test tells it to.
//!
//! What belongs to one topic (its keys, its policies, a database, a proxy) lives with
//! that topic's tests.

pub mod app;
pub mod fake;
pub mod jwt;
pub mod raw_http;
pub mod server;
pub mod workspace;

pub use fake::FakeServer;
pub use server::Server;
pub use workspace::{clean_command, example_policy, free_port, toml_string, Ran, Workspace};
