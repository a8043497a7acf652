//! The `registry` binary's usage, without etcd: every bad argument exits 2
//! with a message naming it, and `--help` describes every command. (Being
//! an integration test of this package, it also makes `cargo test
//! --workspace` build the binary that tests/core/cli.rs runs against etcd.)

use std::process::{Command, Output};

fn registry(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(args)
        // Nothing may be contacted: an endpoint nobody listens on.
        .env("REGISTRY_ENDPOINTS", "http://127.0.0.1:9")
        .envs(env.iter().copied())
        .output()
        .expect("run registry")
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    let service = "run --name micro --addr 127.0.0.1:4000";
    let cases = [
        (
            format!("{service} --meta weight -- true"),
            "'--meta <KEY=VALUE>'",
        ),
        (
            format!("{service} --meta weight=heavy -- true"),
            "'--meta weight'",
        ),
        (
            format!("{service} --meta ip=1.2.3.4 -- true"),
            "'--meta <KEY=VALUE>'",
        ),
        (
            "run --name micro --addr localhost -- true".into(),
            "'--addr'",
        ),
        (
            "run --name a/b --addr 127.0.0.1:1 -- true".into(),
            "'--name <NAME>'",
        ),
        (
            format!("{service} --check ftp://h:1 -- true"),
            "'--check <URL>'",
        ),
        (
            format!("{service} --check-interval 1 -- true"),
            "--check <URL>",
        ),
        (
            format!("{service} --check tcp://h:1 --check-interval 0 -- true"),
            "'--check-interval'",
        ),
        (
            format!("{service} --drain soon -- true"),
            "'--drain <SECS>'",
        ),
        (service.into(), "<COMMAND>"),
        ("list micro -o yaml".into(), "'--output <FORMAT>'"),
        ("watch micro -o table".into(), "'--output <FORMAT>'"),
        ("--ttl 1 list micro".into(), "'--ttl'"),
        ("list micro --ttl 1".into(), "'--ttl'"),
        (
            "list micro --endpoints 127.0.0.1:2379".into(),
            "'--endpoints'",
        ),
        ("get micro".into(), "'KEY'"),
        ("list".into(), "<NAME>"),
        ("lists micro".into(), "'lists'"),
    ];
    let check = |args: &[&str], env: &[(&str, &str)], named: &str| {
        let out = registry(args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(
            err.contains(named),
            "{args:?}: the message names {named}:\n{err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    };
    for (args, named) in &cases {
        let args: Vec<&str> = args.split_whitespace().collect();
        check(&args, &[], named);
    }
    check(
        &["list", "micro"],
        &[("REGISTRY_TTL", "soon")],
        "'REGISTRY_TTL'",
    );
    check(
        &["list", "micro"],
        &[("REGISTRY_WEIGHT", "heavy")],
        "'REGISTRY_WEIGHT'",
    );
}

#[test]
fn help_describes_every_command() {
    let top = registry(&["--help"], &[]);
    assert_eq!(top.status.code(), Some(0));
    let top = String::from_utf8_lossy(&top.stdout);
    for word in [
        "run",
        "register",
        "list",
        "watch",
        "get",
        "--endpoints",
        "--ttl",
        "Exit status",
    ] {
        assert!(top.contains(word), "registry --help lacks {word}:\n{top}");
    }
    let expected: [(&str, &[&str]); 5] = [
        (
            "run",
            &[
                "--name",
                "--addr",
                "--meta",
                "--check",
                "--check-interval",
                "--check-fails",
                "--drain",
                "SIGTERM",
            ],
        ),
        ("register", &["--name", "--addr", "--meta", "--check"]),
        ("list", &["--output", "prometheus-sd"]),
        ("watch", &["--output", "json"]),
        ("get", &["KEY", "--output"]),
    ];
    for (command, flags) in expected {
        let out = registry(&[command, "--help"], &[]);
        assert_eq!(out.status.code(), Some(0), "{command} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        for flag in flags.iter().chain(&["--endpoints", "--ttl"]) {
            assert!(
                text.contains(flag),
                "registry {command} --help lacks {flag}:\n{text}"
            );
        }
    }
    // No subcommand: the help, on stderr, as a usage error.
    let bare = registry(&[], &[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("Usage: registry"));
}
