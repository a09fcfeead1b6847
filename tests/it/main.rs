//! envoi's black-box tests, in one test binary (one link instead of six): the real
//! server over real HTTP, in this process or as the built `envoi` binary, with a module
//! per topic. `cargo test --test it api::` runs one topic.

mod api;
mod cli;
mod hostile;
mod postgres;
mod reload;
mod seal;
mod support;
