//! Health checks: a registration that carries a [`Check`] is written only
//! once the service answers its probe, withdrawn after `fails` probes in a
//! row fail, and written back after `passes` in a row pass. The probes:
//!
//! - `tcp://HOST:PORT`: a TCP connection is accepted;
//! - `http://HOST:PORT/PATH`: a `GET` answered with a 2xx status;
//! - `grpc://HOST:PORT[/SERVICE]`: the standard `grpc.health.v1.Health/Check`
//!   answers `SERVING` (for SERVICE, or the server as a whole).
//!
//! Every probe has a timeout. The checks run on the library's runtime, one
//! task per checked registration, and stop with it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::timefmt;

/// Default time between two probes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default consecutive failures before a registration is withdrawn.
pub const DEFAULT_FAILS: u32 = 3;
/// Default consecutive passes before a withdrawn registration comes back.
pub const DEFAULT_PASSES: u32 = 1;
/// Default wait for the first passing probe before a registration fails.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How a service's health is checked (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    url: String,
    probe: Probe,
    /// Time between two probes.
    pub interval: Duration,
    /// The longest one probe may take (at most the interval).
    pub timeout: Duration,
    /// Consecutive failures before the registration is withdrawn.
    pub fails: u32,
    /// Consecutive passes before a withdrawn registration is written back.
    pub passes: u32,
    /// How long registering waits for the first passing probe.
    pub ready_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    Tcp { addr: String },
    Http { addr: String, path: String },
    Grpc { addr: String, service: String },
}

impl Check {
    /// A check of `url` (`tcp://`, `http://` or `grpc://`), with the default
    /// interval (1 s), timeout (1 s), thresholds (3 failures, 1 pass) and
    /// readiness wait (60 s).
    pub fn parse(url: &str) -> Result<Check> {
        let bad = |why: &str| Error::invalid("check", format!("{url:?} {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            bad("must be tcp://HOST:PORT, http://HOST:PORT/PATH or grpc://HOST:PORT[/SERVICE]")
        })?;
        let (addr, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        crate::names::split_addr(addr).map_err(|_| bad("needs HOST:PORT after the scheme"))?;
        let addr = addr.to_string();
        let probe = match scheme {
            "tcp" if path.is_empty() || path == "/" => Probe::Tcp { addr },
            "tcp" => return Err(bad("takes no path")),
            "http" => Probe::Http {
                addr,
                path: if path.is_empty() {
                    "/".into()
                } else {
                    path.to_string()
                },
            },
            "grpc" => Probe::Grpc {
                addr,
                service: path.trim_start_matches('/').to_string(),
            },
            _ => return Err(bad("has a scheme other than tcp, http or grpc")),
        };
        Ok(Check {
            url: url.to_string(),
            probe,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_INTERVAL,
            fails: DEFAULT_FAILS,
            passes: DEFAULT_PASSES,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        })
    }

    /// The same check with the settings given (`None` keeps the default),
    /// refused by name when out of range: what every binding calls.
    pub fn tuned(
        mut self,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        fails: Option<u32>,
        passes: Option<u32>,
    ) -> Result<Check> {
        self.interval = interval.unwrap_or(self.interval);
        self.timeout = timeout.unwrap_or(self.timeout);
        self.fails = fails.unwrap_or(self.fails);
        self.passes = passes.unwrap_or(self.passes);
        self.validate()?;
        Ok(self)
    }

    /// The probe's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks the numbers (also called when registering).
    pub(crate) fn validate(&self) -> Result<()> {
        let day = Duration::from_secs(86_400);
        if self.interval < Duration::from_millis(10) || self.interval > day {
            return Err(Error::invalid(
                "check interval",
                format!(
                    "{} is not between 10 ms and a day",
                    timefmt::human_duration(&self.interval)
                ),
            ));
        }
        if self.timeout.is_zero() || self.timeout > day {
            return Err(Error::invalid(
                "check timeout",
                format!(
                    "{} is not between 1 ms and a day",
                    timefmt::human_duration(&self.timeout)
                ),
            ));
        }
        if self.fails == 0 {
            return Err(Error::invalid("check fails", "must be at least 1"));
        }
        if self.passes == 0 {
            return Err(Error::invalid("check passes", "must be at least 1"));
        }
        Ok(())
    }

    /// One probe: `Err` says why it failed.
    pub async fn probe(&self) -> std::result::Result<(), String> {
        let limit = self.timeout.min(self.interval);
        let run = async {
            match &self.probe {
                Probe::Tcp { addr } => TcpStream::connect(addr.as_str())
                    .await
                    .map(drop)
                    .map_err(|e| format!("cannot connect: {e}")),
                Probe::Http { addr, path } => http_get(addr, path).await,
                Probe::Grpc { addr, service } => grpc_check(addr, service).await,
            }
        };
        match tokio::time::timeout(limit, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "no answer within {}",
                timefmt::human_duration(&limit)
            )),
        }
    }

    /// Probes until one passes, at most `ready_timeout`.
    pub(crate) async fn wait_ready(&self) -> Result<()> {
        let until = tokio::time::Instant::now() + self.ready_timeout;
        loop {
            let why = match self.probe().await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if tokio::time::Instant::now() + self.interval > until {
                tracing::info!(check = %self.url, %why, "never healthy while registering");
                return Err(Error::Timeout {
                    operation: "registering (waiting for the first passing health check)",
                    after: self.ready_timeout,
                });
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

/// Where a registration stands, for its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// In etcd (or being healed back into it).
    Live,
    /// Withdrawn by the application (a drain): the check leaves it out.
    WithdrawnByApp,
    /// Withdrawn by its check: written back once the check passes again.
    WithdrawnByCheck,
}

/// The registration a check watches over.
pub(crate) trait Checked: Send + Sync + 'static {
    /// `None` once the registration is gone (deregistered, client closed).
    fn standing(&self) -> Option<Standing>;
    /// Withdraws (`true`) or writes back (`false`) the registration.
    fn set_by_check(
        &self,
        withdraw: bool,
        reason: String,
    ) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// Probes every interval while the registration lives: withdraws it after
/// `fails` failures in a row, writes it back after `passes` passes in a row.
pub(crate) async fn watch_over(check: Check, target: impl Checked) {
    let (mut fails, mut passes) = (0u32, 0u32);
    loop {
        tokio::time::sleep(check.interval).await;
        let Some(standing) = target.standing() else {
            return;
        };
        match check.probe().await {
            Ok(()) => {
                fails = 0;
                passes = passes.saturating_add(1);
                if standing == Standing::WithdrawnByCheck && passes >= check.passes {
                    let reason = format!("health check {} passes again", check.url);
                    let _ = target.set_by_check(false, reason).await;
                }
            }
            Err(why) => {
                passes = 0;
                fails = fails.saturating_add(1);
                if standing == Standing::Live && fails >= check.fails {
                    let reason = format!(
                        "health check {} failed {fails} times in a row: {why}",
                        check.url
                    );
                    let _ = target.set_by_check(true, reason).await;
                }
            }
        }
    }
}

/// The most of an HTTP answer a probe reads.
const MAX_HTTP_ANSWER: usize = 16 * 1024;

/// `GET path` over HTTP/1.1; passes on a 2xx status.
async fn http_get(addr: &str, path: &str) -> std::result::Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: libregistry\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    // Read the whole answer (the server closes after it: `Connection:
    // close`), so the server sees a clean close rather than a reset; a few
    // KiB at most, the probe's timeout bounding the wait.
    let mut answer = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while answer.len() < MAX_HTTP_ANSWER {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) if !answer.is_empty() => break,
            Err(e) => return Err(format!("cannot read the answer: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&answer[..answer.len().min(64)]);
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                status_line.lines().next().unwrap_or("")
            )
        })?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status}"))
    }
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (status 1 is `SERVING`).
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// The standard gRPC health check; passes when the answer is `SERVING`.
async fn grpc_check(addr: &str, service: &str) -> std::result::Result<(), String> {
    const SERVING: i32 = 1;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address: {e}"))?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| format!("not ready: {e}"))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let request = tonic::Request::new(HealthCheckRequest {
        service: service.to_string(),
    });
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let answer = grpc
        .unary(request, path, codec)
        .await
        .map_err(|status| format!("health check refused: {}", status.message()))?;
    match answer.into_inner().status {
        SERVING => Ok(()),
        other => Err(format!("serving status {other} (not SERVING)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_urls_are_parsed_or_refused_by_name() {
        let http = Check::parse("http://127.0.0.1:8080/healthz").unwrap();
        assert_eq!(
            http.probe,
            Probe::Http {
                addr: "127.0.0.1:8080".into(),
                path: "/healthz".into()
            }
        );
        assert_eq!(
            Check::parse("grpc://localhost:50051/greeter")
                .unwrap()
                .probe,
            Probe::Grpc {
                addr: "localhost:50051".into(),
                service: "greeter".into()
            }
        );
        assert!(Check::parse("tcp://[::1]:80").is_ok());
        for bad in [
            "127.0.0.1:80",
            "ftp://h:1",
            "tcp://h:1/x",
            "http://h/healthz",
            "grpc://:1",
        ] {
            let err = Check::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid check:"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn probes_pass_and_fail_with_their_reason() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let status = if String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = conn
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let check = |url: String| Check::parse(&url).unwrap();
        assert_eq!(check(format!("http://{addr}/ok")).probe().await, Ok(()));
        assert_eq!(
            check(format!("http://{addr}/bad")).probe().await,
            Err("HTTP status 503".into())
        );
        assert_eq!(check(format!("tcp://{addr}")).probe().await, Ok(()));
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let refused = check(format!("tcp://{closed}")).probe().await.unwrap_err();
        assert!(refused.starts_with("cannot connect"), "{refused}");
    }
}
