//! envoi as its command's parent, for `--redact` and `--watch` (SPEC §8).
//!
//! - Signals that ask a process to stop or reload (INT, TERM, HUP, QUIT, USR1, USR2) are
//!   forwarded to the command; envoi leaves when the command does, with its status
//!   (128 + N when a signal N ended it).
//! - `--redact`: the command's standard output and error come through pipes, and every
//!   value received is masked on the way ([`redact`]).
//! - `--watch`: the answer is fetched again every interval, alongside everything else (a
//!   slow fetch holds up neither signals nor the command's exit). An answer that differs
//!   from the last one is written, then the command restarted (TERM, then KILL after
//!   `--grace`); the same answer does nothing; a failed fetch or write keeps the command
//!   running and says so.

use std::future::Future;
use std::os::unix::process::ExitStatusExt as _;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::signal::unix::SignalKind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::answer::Answer;
use crate::client::fetch::FetchError;
use crate::client::redact::{Redactor, Values};
use crate::client::run::{self, RunError, RunSettings};
use crate::client::{files, say, warn};

/// The signals passed on to the command.
const FORWARDED: [(fn() -> SignalKind, nix::sys::signal::Signal); 6] = [
    (SignalKind::interrupt, nix::sys::signal::Signal::SIGINT),
    (SignalKind::terminate, nix::sys::signal::Signal::SIGTERM),
    (SignalKind::hangup, nix::sys::signal::Signal::SIGHUP),
    (SignalKind::quit, nix::sys::signal::Signal::SIGQUIT),
    (SignalKind::user_defined1, nix::sys::signal::Signal::SIGUSR1),
    (SignalKind::user_defined2, nix::sys::signal::Signal::SIGUSR2),
];

/// How long the last of the command's output may take to come through once it exited
/// (a process it left behind may hold its pipes open).
const LAST_OUTPUT: Duration = Duration::from_secs(2);

type Refetch<'a> = Pin<Box<dyn Future<Output = Result<Answer, FetchError>> + 'a>>;

enum Event {
    Exited(std::io::Result<ExitStatus>),
    Signal(nix::sys::signal::Signal),
    Tick,
    Fetched(Result<Answer, FetchError>),
}

/// Runs the command as the module says, until it exits; returns the status to leave with.
pub async fn supervise(settings: &RunSettings, mut answer: Answer) -> Result<u8, RunError> {
    let mut signals = forward_signals()?;
    let mut values = Values::of(&answer);
    let mut child = Child::start(settings, &answer, &values)?;
    let mut ticks = settings.watch.map(|every| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    let mut refetch: Option<Refetch<'_>> = None;
    loop {
        let event = tokio::select! {
            status = child.process.wait() => Event::Exited(status),
            Some(signal) = signals.recv() => Event::Signal(signal),
            () = tick(&mut ticks), if refetch.is_none() => Event::Tick,
            fetched = pending(&mut refetch) => Event::Fetched(fetched),
        };
        match event {
            Event::Exited(status) => {
                let status = status.map_err(|cause| RunError::Wait {
                    program: run::program(&settings.command),
                    cause,
                })?;
                child.last_output().await;
                return Ok(exit_code(status));
            }
            Event::Signal(signal) if typed_signals_reach_the_command(signal) => {}
            Event::Signal(signal) => child.signal(signal),
            Event::Tick => refetch = Some(Box::pin(run::fetch_and_keep(settings))),
            Event::Fetched(fetched) => {
                refetch = None;
                let program = run::program(&settings.command);
                let new = match fetched {
                    Ok(new) if new.body == answer.body => continue,
                    Ok(new) => new,
                    Err(error) => {
                        warn(&format!(
                            "--watch: the answer could not be fetched; {program} keeps running: {error}"
                        ));
                        continue;
                    }
                };
                let written =
                    run::check_env(&new).and_then(|()| Ok(files::write_all(settings.root.as_deref(), &new.files)?));
                if let Err(error) = written {
                    warn(&format!(
                        "--watch: the new answer could not be written; {program} keeps running: {error}"
                    ));
                    continue;
                }
                child.stop(settings.grace).await;
                values = values.with(&Values::of(&new));
                answer = new;
                child = Child::start(settings, &answer, &values)?;
                say(&format!(
                    "--watch: the answer changed: files written, {program} restarted"
                ));
            }
        }
    }
}

async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn pending(refetch: &mut Option<Refetch<'_>>) -> Result<Answer, FetchError> {
    match refetch {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Whether `signal` is one a terminal sends (Ctrl-C, Ctrl-\) and envoi is in that
/// terminal's foreground process group: the command is in the same group, so the
/// terminal delivered it there already, and forwarding it would deliver it twice (many
/// servers take a second SIGINT as "stop now"). `sudo` skips these for the same reason.
fn typed_signals_reach_the_command(signal: nix::sys::signal::Signal) -> bool {
    use nix::sys::signal::Signal::{SIGINT, SIGQUIT};
    let stdin = std::io::stdin();
    matches!(signal, SIGINT | SIGQUIT)
        && std::io::IsTerminal::is_terminal(&stdin)
        && nix::unistd::tcgetpgrp(&stdin).is_ok_and(|group| group == nix::unistd::getpgrp())
}

/// The forwarded signals, caught from now on (so envoi no longer dies of them).
fn forward_signals() -> Result<mpsc::UnboundedReceiver<nix::sys::signal::Signal>, RunError> {
    let (sender, receiver) = mpsc::unbounded_channel();
    for (kind, signal) in FORWARDED {
        let mut stream = tokio::signal::unix::signal(kind()).map_err(RunError::Runtime)?;
        let sender = sender.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if sender.send(signal).is_err() {
                    break;
                }
            }
        });
    }
    Ok(receiver)
}

/// 0-255 as a shell reports it: the exit code, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
        (None, None) => 1,
    }
}

/// The running command and the tasks that carry its output.
struct Child {
    process: tokio::process::Child,
    pumps: Vec<JoinHandle<()>>,
}

impl Child {
    fn start(settings: &RunSettings, answer: &Answer, values: &Values) -> Result<Self, RunError> {
        let mut command = tokio::process::Command::from(run::command(settings, answer));
        if settings.redact {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut process = command.spawn().map_err(|cause| RunError::Start {
            program: run::program(&settings.command),
            cause,
        })?;
        let mut pumps = Vec::new();
        if let Some(stdout) = process.stdout.take() {
            pumps.push(tokio::spawn(pump(stdout, tokio::io::stdout(), values.clone())));
        }
        if let Some(stderr) = process.stderr.take() {
            pumps.push(tokio::spawn(pump(stderr, tokio::io::stderr(), values.clone())));
        }
        Ok(Self { process, pumps })
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(pid) = self.process.id().and_then(|pid| i32::try_from(pid).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// TERM, then KILL after `grace`; returns once the command has exited.
    async fn stop(&mut self, grace: Duration) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(grace, self.process.wait()).await.is_err() {
            let _ = self.process.kill().await;
        }
        self.last_output().await;
    }

    async fn last_output(&mut self) {
        for pump in self.pumps.drain(..) {
            let _ = tokio::time::timeout(LAST_OUTPUT, pump).await;
        }
    }
}

/// Copies `from` to `to`, masking `values`, flushing whatever may go out at once.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, values: Values) {
    let mut redactor = Redactor::new(values);
    let mut buffer = zeroize::Zeroizing::new(vec![0u8; 16 * 1024]);
    let mut out = zeroize::Zeroizing::new(Vec::new());
    loop {
        out.clear();
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => redactor.feed(&buffer[..read], &mut out),
        }
        if !out.is_empty() && (to.write_all(&out).await.is_err() || to.flush().await.is_err()) {
            // The reader is gone: the pipe closes, and the command learns it as it would
            // without envoi in between (EPIPE, SIGPIPE).
            return;
        }
    }
    out.clear();
    redactor.finish(&mut out);
    let _ = to.write_all(&out).await;
    let _ = to.flush().await;
}
