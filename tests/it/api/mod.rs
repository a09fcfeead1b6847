//! Black-box HTTP tests of envoi (SPEC §1 and §2): a real server on a free port, tokens
//! minted here with HMAC-SHA256 by hand, answers compared with what the SPEC says.

mod golden;
mod helpers;
mod policy;
mod protocol;
mod shape;
