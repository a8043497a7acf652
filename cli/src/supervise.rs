//! `registry run` and `registry register`: register a service, keep it
//! registered while its command runs (or until a signal), and leave in
//! order: the key goes first, then the command is told.
//!
//! Leaving deregisters rather than withdraws: `registry` is on its way out
//! and will never restore the key, and a deregister is one delete that etcd
//! confirms, after which the health check stops. The lease is revoked when
//! `registry` exits (or expires within its TTL if etcd cannot be reached).

use std::ffi::OsString;
use std::process::{ExitCode, ExitStatus};
use std::time::Duration;

use libregistry::{Client, Error, Event, Registration, Service};
use tokio::process::Child;

use crate::child;
use crate::exit::{self, Failure};
use crate::signals::{self, Caught, Signals};

/// Wait between two attempts to register while etcd is unavailable.
const RETRY: Duration = Duration::from_secs(1);

/// `registry run`: see the module docs and `registry run --help`.
pub async fn run(
    client: Client,
    service: Service,
    drain: Duration,
    command: &[OsString],
) -> Result<ExitCode, Failure> {
    let mut signals = Signals::catch(true).map_err(cannot_catch)?;
    let mut child = match child::start(command) {
        Ok(child) => child,
        Err(failure) => {
            close(&client).await;
            return Err(failure);
        }
    };
    let pid = child.id().unwrap_or(0);
    note(format!("started {} (pid {pid})", child::display(command)));
    let mut events = client.events();

    // Registered once its check passes, unless the command ends first.
    let registering = register(&client, &service);
    tokio::pin!(registering);
    let registration = loop {
        tokio::select! {
            registered = &mut registering => match registered {
                Ok(registration) => break registration,
                Err(err) => {
                    note(format!("cannot register: {err}; stopping {pid}"));
                    signals::send(pid, libc::SIGTERM);
                    finish(&client, &mut child, pid, &mut signals).await?;
                    return Err(Failure::Etcd(err));
                }
            },
            status = child.wait() => return exited(&client, status, " before it was registered").await,
            caught = signals.next() => match caught {
                Caught::Stop(signal) => {
                    // Not registered yet: nothing to drain. Closing revokes
                    // the lease, so a registration landing just now goes too.
                    close(&client).await;
                    note(format!("{}: passing it on to {pid}", signals::name(signal)));
                    signals::send(pid, signal);
                    return finish(&client, &mut child, pid, &mut signals).await;
                }
                Caught::Forward(signal) => signals::send(pid, signal),
            },
        }
    };
    note(format!("registered {}", registration.key()));

    // Registered: until the command exits or we are told to stop.
    let stop = loop {
        tokio::select! {
            status = child.wait() => {
                deregister(&registration).await;
                return exited(&client, status, "").await;
            }
            caught = signals.next() => match caught {
                Caught::Stop(signal) => break signal,
                Caught::Forward(signal) => signals::send(pid, signal),
            },
            Some(event) = events.next() => report(&event),
        }
    };

    // Leaving: deregister, drain, then pass the signal on.
    note(format!(
        "{}: deregistering, then passing it on to {pid} after {} s",
        signals::name(stop),
        drain.as_secs_f64()
    ));
    deregister(&registration).await;
    let drained = tokio::time::sleep(drain);
    tokio::pin!(drained);
    loop {
        tokio::select! {
            () = &mut drained => break,
            status = child.wait() => return exited(&client, status, " while draining").await,
            caught = signals.next() => match caught {
                Caught::Stop(signal) => {
                    note(format!("{}: drain cut short", signals::name(signal)));
                    break;
                }
                Caught::Forward(signal) => signals::send(pid, signal),
            },
        }
    }
    signals::send(pid, stop);
    finish(&client, &mut child, pid, &mut signals).await
}

/// `registry register`: registered until SIGTERM or SIGINT, then deregistered.
pub async fn register_until_stopped(client: Client, service: Service) -> Result<ExitCode, Failure> {
    let mut signals = Signals::catch(false).map_err(cannot_catch)?;
    let mut events = client.events();
    let registering = register(&client, &service);
    tokio::pin!(registering);
    let registration = tokio::select! {
        registered = &mut registering => match registered {
            Ok(registration) => registration,
            Err(err) => {
                close(&client).await;
                return Err(Failure::Etcd(err));
            }
        },
        caught = signals.next() => {
            note(format!("{}: stopping before registration", name_of(caught)));
            close(&client).await;
            return Ok(ExitCode::SUCCESS);
        }
    };
    note(format!("registered {}", registration.key()));
    let caught = loop {
        tokio::select! {
            caught = signals.next() => break caught,
            Some(event) = events.next() => report(&event),
        }
    };
    note(format!("{}: deregistering", name_of(caught)));
    deregister(&registration).await;
    close(&client).await;
    Ok(ExitCode::SUCCESS)
}

/// Registers, trying again while etcd is unavailable; other errors (a
/// refused permission, a bad setting) end the attempts.
async fn register(client: &Client, service: &Service) -> Result<Registration, Error> {
    loop {
        match client.register(service).await {
            Ok(registration) => return Ok(registration),
            Err(err) if err.is_transient() => {
                note(format!(
                    "cannot register yet: {err}; trying again in {} s",
                    RETRY.as_secs()
                ));
                tokio::time::sleep(RETRY).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Waits for the command to exit (it was told to), passing on every signal
/// caught meanwhile; then closes the client. Its exit status is ours.
async fn finish(
    client: &Client,
    child: &mut Child,
    pid: u32,
    signals: &mut Signals,
) -> Result<ExitCode, Failure> {
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            caught = signals.next() => match caught {
                Caught::Stop(signal) | Caught::Forward(signal) => signals::send(pid, signal),
            },
        }
    };
    exited(client, status, "").await
}

/// The command exited: closes the client (revoking the lease) and hands
/// on its status.
async fn exited(
    client: &Client,
    status: std::io::Result<ExitStatus>,
    when: &str,
) -> Result<ExitCode, Failure> {
    let status = status.map_err(lost_child);
    match &status {
        Ok(status) => note(format!("command ended ({status}){when}")),
        Err(_) => note(format!("command ended{when}")),
    }
    close(client).await;
    Ok(exit::of_child(status?))
}

/// Deletes the key (bounded by the request timeout); a failure is only
/// reported: the key still goes with the lease.
async fn deregister(registration: &Registration) {
    match registration.deregister().await {
        Ok(()) => note(format!("deregistered {}", registration.key())),
        Err(err) => note(format!(
            "cannot deregister {}: {err} (it goes with the lease)",
            registration.key()
        )),
    }
}

/// Revokes the lease (bounded in time by the library).
async fn close(client: &Client) {
    if let Err(err) = client.close().await {
        note(format!("closing: {err}"));
    }
}

/// The events a person running `registry` wants to hear of.
fn report(event: &Event) {
    match event {
        Event::Withdrawn { key, reason } => note(format!("withdrawn {key}: {reason}")),
        Event::Reinstated { key, reason } => note(format!("reinstated {key}: {reason}")),
        Event::LeaseLost { reason, .. } => {
            note(format!("lease lost ({reason}): registering again"))
        }
        Event::Restored { outage, .. } => note(format!(
            "registered again after {:.1} s",
            outage.as_secs_f64()
        )),
        Event::KeyRestored { key } => note(format!("{key} was deleted by someone else: put back")),
        Event::Conflict { key, .. } => note(format!("{key} is now held by another process")),
        Event::TookOver { key, .. } => {
            note(format!("{key} was held by another process: taken over"))
        }
        _ => {}
    }
}

fn name_of(caught: Caught) -> String {
    match caught {
        Caught::Stop(signal) | Caught::Forward(signal) => signals::name(signal),
    }
}

fn note(message: String) {
    eprintln!("registry: {message}");
}

fn cannot_catch(err: std::io::Error) -> Failure {
    Failure::Local(format!("cannot catch signals: {err}"))
}

fn lost_child(err: std::io::Error) -> Failure {
    Failure::Local(format!("cannot wait for the command: {err}"))
}
