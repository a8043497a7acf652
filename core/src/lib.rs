//! libregistry: register services in etcd the way gRPC-go's resolver reads
//! them, and never lose a registration while the process lives.
//!
//! ```no_run
//! use libregistry::{blocking, Options, Service};
//! let client = blocking::Client::connect(Options::new().ttl_secs(10))?;
//! let reg = client.register(&Service::new("micro", "127.0.0.1:4000").region("beijing"))?;
//! assert_eq!(reg.key(), "/micro/127.0.0.1:4000");
//! reg.update([("weight", "0")])?; // drain
//! reg.deregister()?;
//! client.close()?; // revokes the lease: everything of this client vanishes at once
//! # Ok::<(), libregistry::Error>(())
//! ```
//!
//! Modules, one concept each: [`options`] (configuration), [`service`]
//! (what is registered, validation), [`wire`] (the key layouts and value
//! formats: the seed's, go-zero's and kratos's),
//! `runtime` (the process's tokio runtime), `keepalive` (the lease's
//! keepalive loop), `supervisor` (writes and heals registrations),
//! [`events`], [`client`] (async API) and [`blocking`]; for consumers,
//! [`instance`] (decoding what providers wrote), [`discovery`] (list and
//! watch) and [`pick`] (load balancing).

#![warn(missing_docs)]

pub mod blocking;
pub mod client;
pub mod discovery;
mod env;
mod error;
pub mod events;
pub mod health;
pub mod instance;
mod jitter;
mod keepalive;
pub mod logs;
mod members;
pub mod metrics;
mod names;
pub mod options;
pub mod pick;
mod requests;
mod runtime;
pub mod security;
pub mod service;
mod supervisor;
pub mod timefmt;
pub mod wire;

pub use client::{Client, Registration};
pub use discovery::{Change, Watcher};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, EventStream, LostReason};
pub use instance::Instance;
pub use metrics::Metrics;
pub use options::Options;
pub use pick::{Balance, PickPolicy};
pub use runtime::spawn;
pub use security::{Credentials, Secret, TlsFiles};
pub use service::Service;
pub use wire::Layout;

/// This library's version, registered as `frameVersion`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
