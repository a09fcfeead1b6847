//! Black-box tests of the `envoi` binary: every test runs the built executable in a
//! scratch folder with a clean environment, as an operator or the platform would.

mod check;
mod completions;
mod diff;
mod environment;
mod exit_status;
mod explain;
mod fetch;
mod help;
mod key_metrics;
mod lint;
mod logs;
mod near_miss;
mod pipe;
mod policy_files;
mod reverse;
mod run;
mod run_fallback;
mod run_redact;
mod run_watch;
mod seal;
mod serve;
mod settings;
mod tls;
mod token;
mod weak_settings;
