//! The line protocol between a program and the child processes it drives:
//! the benchmark's drivers and children (bench/src/driver.rs) and the
//! soak's providers (tests/bin/soak/provider.rs).
//!
//! One command per line on the child's standard input; one reply line per
//! command on its standard output, awaited with a deadline. A thread reads
//! the output as it comes and keeps the lines the program counts as replies
//! (the benchmark's drivers may print other lines, which are passed over).
//! The child's standard error goes where the parent's goes. What commands
//! and replies say is each program's own; this module carries the lines,
//! tells a child that exited from one that is silent, and ends the child:
//! a [`LineChild`] is SIGKILLed and reaped when dropped, unless it was
//! reaped before.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often [`LineChild::stop`] looks whether the child has exited.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// Why a command got no reply.
#[derive(Debug)]
pub enum ChildError {
    /// Writing the command failed (the child has most likely exited).
    Send(io::Error),
    /// The child's standard output ended: it exited.
    Exited,
    /// Reading the child's standard output failed.
    Read(io::Error),
    /// No reply within this deadline.
    Silent(Duration),
}

impl std::fmt::Display for ChildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildError::Send(e) => write!(f, "cannot send: {e}"),
            ChildError::Exited => write!(f, "its output ended"),
            ChildError::Read(e) => write!(f, "cannot read its output: {e}"),
            ChildError::Silent(limit) => write!(f, "no reply within {limit:?}"),
        }
    }
}

impl std::error::Error for ChildError {}

/// A running child process spoken to one line at a time.
pub struct LineChild {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<io::Result<String>>,
}

impl LineChild {
    /// Starts `cmd` with piped standard input and output. Of the lines the
    /// child prints, those `is_reply` accepts are replies; the rest are
    /// read and dropped.
    pub fn spawn(cmd: &mut Command, is_reply: fn(&str) -> bool) -> io::Result<LineChild> {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => (stdin, stdout),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(
                    "the child's standard streams are not piped",
                ));
            }
        };
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let failed = line.is_err();
                if line.as_deref().is_ok_and(|l| !is_reply(l)) {
                    continue;
                }
                if tx.send(line).is_err() || failed {
                    break;
                }
            }
        });
        Ok(LineChild {
            child,
            stdin,
            replies,
        })
    }

    /// The child's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `line` and a newline to the child's standard input.
    pub fn send(&mut self, line: &str) -> Result<(), ChildError> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(ChildError::Send)
    }

    /// The next reply, waiting at most `limit` for it.
    pub fn reply(&mut self, limit: Duration) -> Result<String, ChildError> {
        match self.replies.recv_timeout(limit) {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(e)) => Err(ChildError::Read(e)),
            Err(RecvTimeoutError::Timeout) => Err(ChildError::Silent(limit)),
            Err(RecvTimeoutError::Disconnected) => Err(ChildError::Exited),
        }
    }

    /// Sends `command` and returns its reply, waiting at most `limit` for it.
    pub fn ask(&mut self, command: &str, limit: Duration) -> Result<String, ChildError> {
        self.send(command)?;
        self.reply(limit)
    }

    /// Asks the child to leave (sends `quit`, unanswered), gives it `grace`
    /// to exit, then SIGKILLs it; reaps it either way.
    pub fn stop(&mut self, quit: &str, grace: Duration) {
        let _ = self.send(quit);
        let start = Instant::now();
        while start.elapsed() < grace {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(EXIT_POLL);
        }
        self.kill();
    }

    /// SIGKILLs the child and reaps it (nothing when it was reaped before).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILLs the process `pid`, a child of ours held somewhere else (its
/// [`LineChild`] sees its output end, and reaps it when told to or dropped).
/// The PID must be one we spawned and have not reaped.
pub fn kill_pid(pid: u32) {
    crate::signal(pid, libc::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);
    /// Reads every command and answers none (builtins only: no process of
    /// its own keeps the output open once the shell is killed).
    const MUTE: &str = "while read -r c; do :; done";

    fn sh(script: &str, is_reply: fn(&str) -> bool) -> LineChild {
        LineChild::spawn(Command::new("sh").args(["-c", script]), is_reply).expect("start sh")
    }

    #[test]
    fn a_command_gets_its_reply_and_other_lines_are_passed_over() {
        let script = "while read -r c; do echo noise; echo \"ok $c\"; done";
        let mut child = sh(script, |l| l.starts_with("ok "));
        assert_eq!(child.ask("one", LIMIT).unwrap(), "ok one");
        assert_eq!(child.ask("two", LIMIT).unwrap(), "ok two");
    }

    #[test]
    fn a_silent_child_is_told_from_one_that_exited() {
        let mut silent = sh(MUTE, |_| true);
        let limit = Duration::from_millis(200);
        assert!(matches!(silent.ask("x", limit), Err(ChildError::Silent(l)) if l == limit));
        let mut gone = sh("exit 0", |_| true);
        assert!(matches!(gone.reply(LIMIT), Err(ChildError::Exited)));
    }

    #[test]
    fn stop_kills_a_child_that_ignores_quit() {
        let mut child = sh(MUTE, |_| true);
        let start = Instant::now();
        child.stop("quit", Duration::from_millis(200));
        assert!(start.elapsed() < LIMIT);
        assert!(matches!(child.child.try_wait(), Ok(Some(_))), "reaped");
    }

    #[test]
    fn kill_pid_ends_a_child_held_elsewhere() {
        let mut child = sh(MUTE, |_| true);
        kill_pid(child.pid());
        assert!(matches!(child.reply(LIMIT), Err(ChildError::Exited)));
    }
}
