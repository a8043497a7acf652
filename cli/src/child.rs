//! The supervised command: started in a process group of its own, told to
//! stop if `registry` dies.

use std::ffi::OsString;
use std::io;

use tokio::process::{Child, Command};

use crate::exit::{self, Failure};

/// Starts `command` (program and arguments) with our stdin, stdout and stderr.
///
/// Its own process group: a terminal's Ctrl-C reaches `registry` alone,
/// which deregisters and drains before passing SIGINT on. Its parent-death
/// signal is SIGTERM: if `registry` is killed (even SIGKILL) the command is
/// asked to stop instead of serving on unregistered, holding its port
/// against the `registry run` restarted in its place.
pub fn start(command: &[OsString]) -> Result<Child, Failure> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Failure::Usage("no COMMAND given after '--'".into()))?;
    let parent = std::process::id();
    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0).kill_on_drop(false);
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe calls (prctl, getppid, raise).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then no signal would come.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                libc::raise(libc::SIGTERM);
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|err| {
        let status = match err.kind() {
            io::ErrorKind::NotFound => exit::COMMAND_NOT_FOUND,
            _ => exit::CANNOT_EXECUTE,
        };
        Failure::Spawn {
            status,
            message: format!("cannot run {}: {err}", program.to_string_lossy()),
        }
    })
}

/// The command as a person would type it, for messages.
pub fn display(command: &[OsString]) -> String {
    let words: Vec<String> = command
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    words.join(" ")
}
