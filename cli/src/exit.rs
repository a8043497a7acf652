//! Exit statuses and the failures that lead to them: one place says which
//! failure exits how, and how it is worded on stderr.

use std::process::ExitCode;

/// etcd failed (unreachable, refused, timed out: the library's error is
/// printed), or something else did.
pub const FAILED: u8 = 1;
/// Bad usage: the message names the argument (clap uses the same status).
pub const USAGE: u8 = 2;
/// `get` found no instance under the key.
pub const NOT_FOUND: u8 = 3;
/// The command exists but cannot be executed (as the shells say).
pub const CANNOT_EXECUTE: u8 = 126;
/// The command was not found (as the shells say).
pub const COMMAND_NOT_FOUND: u8 = 127;

/// Why `registry` stops short of what it was asked.
#[derive(Debug)]
pub enum Failure {
    /// A bad argument or setting, named in the message.
    Usage(String),
    /// What the library reported.
    Etcd(libregistry::Error),
    /// Nothing registered under the key.
    NotFound(String),
    /// The command could not be started.
    Spawn { status: u8, message: String },
    /// Anything else local (signals could not be set up, stdout failed).
    Local(String),
}

impl From<libregistry::Error> for Failure {
    fn from(err: libregistry::Error) -> Self {
        Failure::Etcd(err)
    }
}

/// Prints a failure the way it is read by a person and exits with its status.
pub fn report(failure: Failure) -> ExitCode {
    let status = match failure {
        Failure::Usage(message) => {
            eprintln!("error: {message}\n\nFor more information, try '--help'.");
            USAGE
        }
        Failure::Etcd(err) => {
            eprintln!("registry: {err}");
            FAILED
        }
        Failure::NotFound(message) => {
            eprintln!("registry: {message}");
            NOT_FOUND
        }
        Failure::Spawn { status, message } => {
            eprintln!("registry: {message}");
            status
        }
        Failure::Local(message) => {
            eprintln!("registry: {message}");
            FAILED
        }
    };
    ExitCode::from(status)
}

/// The status a finished child hands on: its own, or 128+N when signal N
/// ended it (as the shells report it).
pub fn of_child(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
