//! The signals `registry` catches, and passing them on to the command.

use std::io;
use std::task::Poll;

use libc::c_int;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a caught signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caught {
    /// SIGTERM or SIGINT: deregister, then stop.
    Stop(c_int),
    /// SIGHUP, SIGUSR1, SIGUSR2 or SIGQUIT: for the command, as it comes.
    Forward(c_int),
}

/// Signals caught from now on (none is lost between two reads).
pub struct Signals {
    stop: Vec<(c_int, Signal)>,
    forward: Vec<(c_int, Signal)>,
}

/// Signals a supervised command gets as they come: asking it to reload,
/// to dump its state or to quit at once is its business, not ours.
const FORWARDED: [c_int; 4] = [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGQUIT];

impl Signals {
    /// Catches SIGTERM and SIGINT and, with `forwarding` (a command to pass
    /// them to), the signals in `FORWARDED`.
    pub fn catch(forwarding: bool) -> io::Result<Signals> {
        let listen = |numbers: &[c_int]| -> io::Result<Vec<(c_int, Signal)>> {
            numbers
                .iter()
                .map(|&n| Ok((n, signal(SignalKind::from_raw(n))?)))
                .collect()
        };
        Ok(Signals {
            stop: listen(&[libc::SIGTERM, libc::SIGINT])?,
            forward: if forwarding {
                listen(&FORWARDED)?
            } else {
                Vec::new()
            },
        })
    }

    /// The next signal caught. Cancel-safe: a signal caught while nobody
    /// waits is kept for the next call.
    pub async fn next(&mut self) -> Caught {
        std::future::poll_fn(|cx| {
            for (n, s) in &mut self.stop {
                if s.poll_recv(cx).is_ready() {
                    return Poll::Ready(Caught::Stop(*n));
                }
            }
            for (n, s) in &mut self.forward {
                if s.poll_recv(cx).is_ready() {
                    return Poll::Ready(Caught::Forward(*n));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Sends `signal` to the process `pid` (the command we started).
pub fn send(pid: u32, signal: c_int) {
    // 0 would be our own process group: never a child's PID.
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) on the PID of a child we started and have not reaped
    // (reaping happens only once it exited, after which we send nothing).
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A signal's name, for messages.
pub fn name(signal: c_int) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        other => format!("signal {other}"),
    }
}
