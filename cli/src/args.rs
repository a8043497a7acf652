//! The command line: subcommands, flags and the parsers that refuse a bad
//! value naming its flag (clap then exits 2). What needs the library's
//! rules on the whole service or the options is checked in `settings`.

use std::ffi::OsString;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use libregistry::health::Check;
use libregistry::Service;

const ABOUT: &str =
    "Register any process in etcd the way libregistry does, and read what is registered.";

const LONG_ABOUT: &str = "\
Register any process in etcd the way libregistry does (keys and values that
gRPC-go's etcd resolver reads), and read what is registered.

`registry run` wraps a server: it starts the command, registers it (once its
health check passes, with --check), keeps it registered while the command
runs and the check passes, deregisters it before passing SIGTERM or SIGINT
on, and exits with the command's exit code.";

const AFTER_HELP: &str = "\
Connection settings: --endpoints and --ttl (before or after the command),
else the environment the library reads: REGISTRY_ENDPOINTS, REGISTRY_TTL,
REGISTRY_PREFIX, REGISTRY_CA_FILE, REGISTRY_CERT_FILE, REGISTRY_KEY_FILE,
REGISTRY_USER, REGISTRY_PASSWORD (and REGISTRY_ZONE, REGISTRY_WEIGHT... as
metadata defaults).

Exit status: 0 done; 1 etcd failed (the library's error is printed); 2 bad
usage (the message names the argument); 3 `get` found no instance. `run`
exits with its command's status (128+N when a signal N ended it; 126 or
127 when the command cannot be started).";

const RUN_AFTER_HELP: &str = "\
In order: connect to etcd (exit 1 if it cannot be reached; the command is
not started), start COMMAND in a process group of its own, register it
(with --check: once the first probe passes, however long the command takes
to get there), then wait.
- COMMAND exits: the key is deleted at once; `registry` exits with its status.
- SIGTERM or SIGINT: the key is deleted first, consumers get --drain seconds
  to move away while COMMAND still serves, then the signal is passed on and
  `registry` waits for COMMAND to exit. A second SIGTERM or SIGINT during
  the drain passes the signal on at once.
- SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT: passed on to COMMAND as they come.
- The check fails --check-fails times in a row: the key is withdrawn, and
  written back as soon as a probe passes again.
- `registry` itself killed (SIGKILL): the key goes with its lease within
  the TTL; COMMAND gets SIGTERM (it would otherwise serve unregistered).

Example:
  registry run --name micro --addr 127.0.0.1:8080 --check http://127.0.0.1:8080/healthz \\
      --meta zone=zone1 -- ./server --port 8080";

/// `registry`: the parsed command line.
#[derive(Debug, Parser)]
#[command(
    name = "registry",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach etcd: flags accepted before or after the subcommand.
#[derive(Debug, Args)]
pub struct Connection {
    /// etcd endpoints, comma-separated [default: $REGISTRY_ENDPOINTS, else http://127.0.0.1:2379]
    #[arg(
        long,
        global = true,
        value_name = "URL,...",
        help_heading = "Connection"
    )]
    pub endpoints: Option<String>,
    /// Lease TTL in seconds, at least 2 [default: $REGISTRY_TTL, else 10]
    #[arg(long, global = true, value_name = "SECS", help_heading = "Connection")]
    pub ttl: Option<u32>,
    /// Also print the library's logs on stderr (-v: info, -vv: debug)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command and keep it registered while it runs (and its check passes)
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Register a service until SIGTERM or SIGINT (scripts, sidecars)
    Register(ServiceArgs),
    /// List the instances of a service
    List(ListArgs),
    /// Print each change of a service's instances as it happens
    Watch(WatchArgs),
    /// Print the instance registered under one key
    Get(GetArgs),
}

/// What `run` and `register` register.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Service name: 1..=128 of [A-Za-z0-9._-]
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub name: String,
    /// Where consumers connect: HOST:PORT (IPv4, [IPv6] or a DNS name)
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: String,
    /// A metadata entry, repeatable: zone=zone1, weight=50, or any key of [A-Za-z0-9._-]
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,
    /// Registered only while this probe passes: tcp://HOST:PORT, http://HOST:PORT/PATH (2xx)
    /// or grpc://HOST:PORT[/SERVICE] (grpc.health.v1 SERVING)
    #[arg(long, value_name = "URL", value_parser = parse_check)]
    pub check: Option<Check>,
    /// Seconds between two probes, e.g. 0.5 [default: 1]
    #[arg(long, value_name = "SECS", value_parser = parse_secs, requires = "check")]
    pub check_interval: Option<Duration>,
    /// Failed probes in a row before the key is withdrawn [default: 3]
    #[arg(long, value_name = "N", requires = "check")]
    pub check_fails: Option<u32>,
}

/// `registry run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Seconds between deregistering and passing SIGTERM or SIGINT on to the command
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub drain: Duration,
    /// The command to run and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `registry list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The service
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,
    /// table: key, address, zone, weight, metadata; json: the instances;
    /// prometheus-sd: Prometheus's file/HTTP service-discovery JSON
    #[arg(short, long, value_name = "FORMAT", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `registry watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The service
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,
    /// text: one line per change; json: one JSON object per line
    #[arg(short, long, value_name = "FORMAT", value_enum, default_value_t = ChangeFormat::Text)]
    pub output: ChangeFormat,
}

/// `registry get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key, e.g. /micro/127.0.0.1:4000 (with REGISTRY_PREFIX in front when set)
    #[arg(value_name = "KEY")]
    pub key: String,
    /// As for `list`
    #[arg(short, long, value_name = "FORMAT", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// How `list` and `get` print instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    PrometheusSd,
}

/// How `watch` prints changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChangeFormat {
    Text,
    Json,
}

/// A service name, by the library's rules.
fn parse_name(text: &str) -> Result<String, String> {
    // Any valid address will do: only the name is judged here.
    Service::new(text, "127.0.0.1:1")
        .validate_identity()
        .map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

/// `KEY=VALUE`, the key by the library's rules (the value is judged with
/// the whole service, in `settings`).
fn parse_meta(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, but {text:?} has no '='"))?;
    let mut probe = Service::new("x", "127.0.0.1:1");
    probe.set(key, value).map_err(|e| e.to_string())?;
    Ok((key.to_string(), value.to_string()))
}

fn parse_check(text: &str) -> Result<Check, String> {
    Check::parse(text).map_err(|e| e.to_string())
}

/// Seconds as a whole or decimal number: `2`, `0.5`.
fn parse_secs(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("expected a number of seconds such as 2 or 0.5, not {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn values_are_refused_naming_what_is_wrong() {
        assert_eq!(
            parse_meta("zone=a=b").unwrap(),
            ("zone".into(), "a=b".into())
        );
        assert!(parse_meta("weight").unwrap_err().contains("no '='"));
        assert!(parse_meta("a/b=1").unwrap_err().contains("metadata key"));
        assert!(parse_meta("ip=1.2.3.4")
            .unwrap_err()
            .contains("set by the library"));
        assert_eq!(parse_secs("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["-1", "x", "", "inf", "NaN"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
        assert!(parse_name("a/b").unwrap_err().contains("invalid name"));
        assert!(parse_check("ftp://h:1")
            .unwrap_err()
            .contains("invalid check"));
    }

    #[test]
    fn connection_flags_go_before_or_after_the_subcommand() {
        for argv in [
            &["registry", "--ttl", "3", "list", "micro"][..],
            &["registry", "list", "micro", "--ttl", "3"][..],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            assert_eq!(cli.connection.ttl, Some(3), "{argv:?}");
        }
        let cli = Cli::try_parse_from([
            "registry", "run", "--name", "m", "--addr", "h:1", "--", "server", "--ttl", "9",
        ])
        .unwrap();
        assert_eq!(cli.connection.ttl, None, "after -- it is the command's");
        let Command::Run(run) = cli.command else {
            panic!("run expected")
        };
        assert_eq!(run.command, ["server", "--ttl", "9"]);
        assert_eq!(run.service.addr, "h:1");
    }
}
