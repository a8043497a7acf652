//! Drives the C and C++ tests: compiles them with strict flags against the
//! libregistry.so / libregistry.a cargo just built, runs them against a real
//! etcd, under AddressSanitizer/UBSan and valgrind, and checks what etcd
//! holds with etcd's own etcdctl.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::{dump, etcdctl, wait_until, Etcd};

const C_FLAGS: [&str; 5] = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// target/<profile>, where cargo put libregistry.so and libregistry.a.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    assert!(
        dir.join("libregistry.so").exists() && dir.join("libregistry.a").exists(),
        "{} has no libregistry.so / libregistry.a: `cargo test` builds only the rlib; \
         run `cargo build -p libregistry-ffi` first (make test does)",
        dir.display()
    );
    dir
}

fn out_dir() -> PathBuf {
    let dir = lib_dir().join("c-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Compiles C sources (with the header's dir and tests/c on the include path)
/// and links them against libregistry the way `link` says.
fn compile_c(name: &str, sources: &[&str], extra: &[&str], link: Link) -> PathBuf {
    let exe = out_dir().join(name);
    let mut cmd = Command::new("cc");
    cmd.args(C_FLAGS).args(extra);
    cmd.arg("-I").arg(root().join("include"));
    cmd.arg("-I").arg(root().join("tests/c"));
    for s in sources {
        cmd.arg(root().join(s));
    }
    cmd.arg("-o").arg(&exe);
    match link {
        Link::Shared => {
            cmd.arg("-L")
                .arg(lib_dir())
                .arg(format!("-Wl,-rpath,{}", lib_dir().display()));
            cmd.arg("-lregistry");
        }
        Link::Static => {
            cmd.arg(lib_dir().join("libregistry.a"));
        }
    }
    cmd.args(["-lpthread", "-ldl", "-lm"]);
    run_ok(&mut cmd);
    exe
}

#[derive(Clone, Copy)]
enum Link {
    Shared,
    Static,
}

/// A C test program that stops at each "STEP name" line until told to go on.
struct Stepped {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Stepped {
    fn start(exe: &Path, env: &[(&str, &str)]) -> Stepped {
        let mut child = Command::new(exe)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Stepped { child, stdout }
    }

    /// Waits for the program's next line, which must be `step`.
    fn reach(&mut self, step: &str) {
        expect_line(&mut self.stdout, step);
    }

    /// Lets the program go on to its end: it must pass all its checks.
    fn finish(mut self) {
        writeln!(self.child.stdin.take().unwrap(), "go").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let ok = self.child.wait().unwrap().success();
        assert!(ok && rest.contains("all checks passed"), "{rest}");
    }
}

fn expect_line(reader: &mut impl BufRead, expected: &str) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), expected);
}

/// The value the contract program writes, up to its process's start time.
fn assert_wire_value(value: &str, addr: &str, port: u16) {
    let head = format!(
        concat!(
            r#"{{"Addr":"{addr}","ServerName":"micro","Attributes":null,"Type":0,"#,
            r#""Metadata":{{"env":"dev","region":"beijing","zone":"zone1","ip":"127.0.0.1","port":{port},"#,
            r#""scheme":"grpc","weight":100,"deployment":"red","frameVersion":"{version}","#,
            r#""appVersion":"ahkfasgasdf","buildTime":"2020-10-14T10:00:00Z","startTime":""#
        ),
        addr = addr,
        port = port,
        version = env!("CARGO_PKG_VERSION")
    );
    let rest = value
        .strip_prefix(&head)
        .unwrap_or_else(|| panic!("unexpected value:\n{value}\nexpected to start with:\n{head}"));
    let start_time = rest
        .strip_suffix(r#""}}"#)
        .expect("value ends after startTime");
    assert!(libregistry::timefmt::is_rfc3339(start_time), "{start_time}");
}

#[tokio::test(flavor = "multi_thread")]
async fn contract_program_registers_micro_as_etcdctl_shows() {
    let etcd = Etcd::start().await;
    let exe = compile_c(
        "test_contract",
        &["tests/c/test_contract.c"],
        &[],
        Link::Shared,
    );
    let mut child = Command::new(&exe)
        .arg(etcd.endpoints_csv())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let endpoints = etcd.endpoints_csv();
    let get = || etcdctl(&endpoints, &["get", "--prefix", "/micro/"]);

    expect_line(&mut stdout, "STEP registered");
    let shown = get();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert_eq!(lines[0], "/micro/127.0.0.1:4000");
    assert_wire_value(lines[1], "127.0.0.1:4000", 4000);
    println!("etcdctl get --prefix /micro/ after registry_register:\n{shown}");

    writeln!(stdin, "go").unwrap();
    expect_line(&mut stdout, "STEP deregistered");
    assert_eq!(get(), "", "registry_deregister removed the key");

    writeln!(stdin, "go").unwrap();
    expect_line(&mut stdout, "STEP registered-two");
    let shown = get();
    let keys: Vec<&str> = shown.lines().step_by(2).collect();
    assert_eq!(keys, ["/micro/127.0.0.1:4001", "/micro/127.0.0.1:4002"]);

    writeln!(stdin, "go").unwrap();
    expect_line(&mut stdout, "STEP freed");
    assert_eq!(get(), "", "registry_client_free removed everything at once");

    writeln!(stdin, "go").unwrap();
    let out = child.wait_with_output().unwrap();
    let rest = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "test_contract failed: {rest}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_through_every_function_shared_and_static() {
    let etcd = Etcd::start().await;
    for (name, link) in [
        ("test_bad_input", Link::Shared),
        ("test_bad_input_static", Link::Static),
    ] {
        let exe = compile_c(name, &["tests/c/test_bad_input.c"], &[], link);
        let out = run_ok(Command::new(&exe).env("REGISTRY_ENDPOINTS", etcd.endpoints_csv()));
        assert!(out.contains("all checks passed"), "{out}");
    }
    let mut raw = etcd.raw().await;
    assert!(
        dump(&mut raw, "/").await.is_empty(),
        "every test client cleaned up after itself"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_mutual_tls_and_auth_through_the_c_abi() {
    use harness::secure::{TestCerts, SERVICE_PASSWORD, SERVICE_USER};
    let certs = TestCerts::generate();
    let tls = Etcd::start_tls(&certs, false).await;
    let mtls = Etcd::start_tls(&certs, true).await;
    let auth = Etcd::start_with_auth(30).await;
    let exe = compile_c(
        "test_security",
        &["tests/c/test_security.c"],
        &[],
        Link::Shared,
    );
    let out = run_ok(
        Command::new(&exe)
            .env("TLS_ENDPOINT", tls.endpoints_csv())
            .env("MTLS_ENDPOINT", mtls.endpoints_csv())
            .env("AUTH_ENDPOINT", auth.endpoints_csv())
            .env("CA_FILE", &certs.ca)
            .env("OTHER_CA", &certs.other_ca)
            .env("CLIENT_CERT", &certs.client_cert)
            .env("CLIENT_KEY", &certs.client_key)
            .env("USER", SERVICE_USER)
            .env("PASSWORD", SERVICE_PASSWORD),
    );
    assert!(out.contains("all checks passed"), "{out}");
}

/// A watcher nobody reads stays bounded through 200,000 changes (the
/// program prints its RSS growth) and then returns the net changes.
#[tokio::test(flavor = "multi_thread")]
async fn an_unread_c_watcher_stays_bounded_in_memory() {
    let etcd = Etcd::start().await;
    let exe = compile_c(
        "test_watch_memory",
        &["tests/c/test_watch_memory.c"],
        &["-O1"],
        Link::Shared,
    );
    let out = run_ok(Command::new(&exe).env("REGISTRY_ENDPOINTS", etcd.endpoints_csv()));
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
}

/// The C programs that run against etcd, checked under every tool.
const SUITES: [&str; 3] = ["test_bad_input", "test_discovery", "test_health"];

#[tokio::test(flavor = "multi_thread")]
async fn discovery_through_the_c_abi() {
    let etcd = Etcd::start().await;
    let exe = compile_c(
        "test_discovery",
        &["tests/c/test_discovery.c"],
        &[],
        Link::Shared,
    );
    let out = run_ok(Command::new(&exe).env("REGISTRY_ENDPOINTS", etcd.endpoints_csv()));
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn go_zero_and_kratos_layouts_through_the_c_abi() {
    let etcd = Etcd::start().await;
    let exe = compile_c(
        "test_layouts",
        &["tests/c/test_layouts.c"],
        &[],
        Link::Shared,
    );
    let mut program = Stepped::start(&exe, &[("REGISTRY_ENDPOINTS", &etcd.endpoints_csv())]);
    program.reach("STEP registered");
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "").await;
    let keys: Vec<&str> = held.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "/microservices/greeter/127.0.0.1:9000",
            "greeter.rpc/127.0.0.1:4000",
            "greeter.rpc/7"
        ]
    );
    assert_eq!(held["greeter.rpc/7"].0, "127.0.0.1:4001");
    let kratos = &held["/microservices/greeter/127.0.0.1:9000"].0;
    assert!(
        kratos.starts_with(r#"{"id":"127.0.0.1:9000","name":"greeter","version":"","metadata":{"#)
            && kratos.contains(r#""weight":"300""#)
            && kratos.ends_with(r#""endpoints":["grpc://127.0.0.1:9000"]}"#),
        "{kratos}"
    );
    program.finish();
    assert!(
        dump(&mut raw, "").await.is_empty(),
        "freeing the clients removed everything"
    );
}

/// The counters through the C ABI move by what a revoke from outside did.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_through_the_c_abi_count_a_revoked_lease() {
    let etcd = Etcd::start().await;
    let exe = compile_c(
        "test_metrics",
        &["tests/c/test_metrics.c"],
        &[],
        Link::Shared,
    );
    let endpoints = etcd.endpoints_csv();
    let env = [
        ("REGISTRY_ENDPOINTS", endpoints.as_str()),
        ("REGISTRY_TTL", "2"),
    ];
    let mut program = Stepped::start(&exe, &env);
    program.reach("STEP registered");
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/metered/").await;
    let lease = held["/metered/127.0.0.1:4000"].1;
    raw.lease_revoke(lease).await.unwrap();
    program.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_and_drain_through_the_c_abi() {
    let etcd = Etcd::start().await;
    let exe = compile_c("test_health", &["tests/c/test_health.c"], &[], Link::Shared);
    let out = run_ok(Command::new(&exe).env("REGISTRY_ENDPOINTS", etcd.endpoints_csv()));
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn address_and_undefined_behaviour_sanitizers_are_clean() {
    let etcd = Etcd::start().await;
    let sanitize = [
        "-fsanitize=address,undefined",
        "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=all",
        "-g",
    ];
    for suite in SUITES {
        let source = format!("tests/c/{suite}.c");
        let exe = compile_c(
            &format!("{suite}_asan"),
            &[&source],
            &sanitize,
            Link::Shared,
        );
        let out = run_ok(
            Command::new(&exe)
                .env("REGISTRY_ENDPOINTS", etcd.endpoints_csv())
                .env(
                    "ASAN_OPTIONS",
                    "detect_leaks=1:abort_on_error=0:exitcode=97",
                )
                .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
        );
        assert!(out.contains("all checks passed"), "{suite}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn valgrind_memcheck_is_clean() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("SKIPPED: valgrind not installed (CI installs it)");
        return;
    }
    let etcd = Etcd::start().await;
    for suite in SUITES {
        let source = format!("tests/c/{suite}.c");
        let exe = compile_c(&format!("{suite}_vg"), &[&source], &["-g"], Link::Shared);
        let out = run_ok(
            Command::new("valgrind")
                .args([
                    "--leak-check=full",
                    "--errors-for-leak-kinds=definite",
                    "--error-exitcode=99",
                    "-q",
                ])
                .arg(&exe)
                .env("REGISTRY_ENDPOINTS", etcd.endpoints_csv())
                .env("REGISTRY_TEST_SKIP_FORK", "1"),
        );
        assert!(out.contains("all checks passed"), "{suite}: {out}");
    }
}

#[test]
fn header_compiles_twice_and_as_cpp_with_the_wrapper() {
    let exe = compile_c(
        "header_twice",
        &["tests/c/header_twice.c"],
        &[],
        Link::Shared,
    );
    run_ok(&mut Command::new(exe));
    run_ok(&mut Command::new(compile_cpp(
        "header_cpp",
        "tests/c/header_cpp.cpp",
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn cpp_wrapper_against_etcd() {
    let etcd = Etcd::start().await;
    let exe = compile_cpp("test_cpp", "tests/c/test_cpp.cpp");
    let out = run_ok(Command::new(&exe).env("REGISTRY_ENDPOINTS", etcd.endpoints_csv()));
    assert!(out.contains("all checks passed"), "{out}");
}

/// Compiles one C++17 source against the shared library, warnings as errors.
fn compile_cpp(name: &str, source: &str) -> PathBuf {
    let exe = out_dir().join(name);
    run_ok(
        Command::new("c++")
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg("-I")
            .arg(root().join("include"))
            .arg(root().join(source))
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(lib_dir())
            .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
            .arg("-lregistry")
            .arg("-lpthread"),
    );
    exe
}

/// Runs an example program against `etcd` (TTL 5 s), its stdout piped.
fn spawn_example(exe: &Path, etcd: &Etcd) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(exe)
        .env("REGISTRY_ENDPOINTS", etcd.endpoints_csv())
        .env("REGISTRY_TTL", "5")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn c_and_cpp_example_providers_register_until_sigterm() {
    let etcd = Etcd::start().await;
    let c_exe = compile_c("provider_c", &["examples/c/provider.c"], &[], Link::Shared);
    let cpp_exe = compile_cpp("provider_cpp", "examples/cpp/provider.cpp");
    let mut raw = etcd.raw().await;
    for exe in [c_exe, cpp_exe] {
        let (mut child, mut stdout) = spawn_example(&exe, &etcd);
        expect_line(&mut stdout, "registered /micro/127.0.0.1:4000");
        let held = dump(&mut raw, "/micro/").await;
        assert_wire_value(&held["/micro/127.0.0.1:4000"].0, "127.0.0.1:4000", 4000);
        // SAFETY: signalling the child we spawned.
        unsafe { libc_kill(child.id(), 15) };
        expect_line(&mut stdout, "deregistered");
        assert!(
            child.wait().unwrap().success(),
            "{} exited with an error",
            exe.display()
        );
        wait_until(Duration::from_secs(2), "key gone after SIGTERM", || {
            let mut raw = raw.clone();
            async move { dump(&mut raw, "/micro/").await.is_empty() }
        })
        .await;
    }
}

/// A child's stdout, line by line, read on a thread so a test can wait with a deadline.
struct Lines {
    name: String,
    rx: std::sync::mpsc::Receiver<String>,
}

impl Lines {
    fn of(name: &str, stdout: BufReader<std::process::ChildStdout>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            name: name.to_string(),
            rx,
        }
    }

    /// The next line must be `expected`, within 10 s.
    fn expect(&self, expected: &str) {
        match self.rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => assert_eq!(line, expected, "{}'s next line", self.name),
            Err(e) => panic!(
                "{}: no line within 10 s ({e}); expected {expected:?}",
                self.name
            ),
        }
    }
}

/// The example consumers list `micro` once, then follow it: both print a
/// provider's address when it registers (already there at start, or later)
/// and its removal when SIGTERM makes it deregister; SIGTERM stops them.
#[tokio::test(flavor = "multi_thread")]
async fn c_and_cpp_example_consumers_follow_the_example_providers() {
    let etcd = Etcd::start().await;
    let provider_c = compile_c("provider_c2", &["examples/c/provider.c"], &[], Link::Shared);
    let provider_cpp = compile_cpp("provider_cpp2", "examples/cpp/provider.cpp");
    let consumer_c = compile_c("consumer_c", &["examples/c/consumer.c"], &[], Link::Shared);
    let consumer_cpp = compile_cpp("consumer_cpp", "examples/cpp/consumer.cpp");
    let added =
        "added 127.0.0.1:4000 (zone zone1, weight 100); next request goes to 127.0.0.1:4000";
    let removed = "removed 127.0.0.1:4000 (zone zone1, weight 100); next request goes to nobody";

    // The C++ provider is up before the consumers start: they discover it.
    let (mut provider, mut provider_out) = spawn_example(&provider_cpp, &etcd);
    expect_line(&mut provider_out, "registered /micro/127.0.0.1:4000");
    let mut consumers = Vec::new();
    for exe in [&consumer_c, &consumer_cpp] {
        let (child, stdout) = spawn_example(exe, &etcd);
        let lines = Lines::of(&exe.display().to_string(), stdout);
        lines.expect("micro: 1 instance(s)");
        lines.expect("  127.0.0.1:4000 (zone zone1, weight 100)");
        lines.expect("watching micro");
        lines.expect(added); // a watch starts by adding what is there
        consumers.push((child, lines));
    }
    // SAFETY: signalling the child we spawned.
    unsafe { libc_kill(provider.id(), 15) };
    assert!(provider.wait().unwrap().success());
    for (_, lines) in &consumers {
        lines.expect(removed);
    }

    // The C provider comes while they watch, then goes.
    let (mut provider, mut provider_out) = spawn_example(&provider_c, &etcd);
    expect_line(&mut provider_out, "registered /micro/127.0.0.1:4000");
    for (_, lines) in &consumers {
        lines.expect(added);
    }
    // SAFETY: as above.
    unsafe { libc_kill(provider.id(), 15) };
    assert!(provider.wait().unwrap().success());
    for (mut child, lines) in consumers {
        lines.expect(removed);
        // SAFETY: as above.
        unsafe { libc_kill(child.id(), 15) };
        lines.expect("stopped");
        assert!(child.wait().unwrap().success(), "{} failed", lines.name);
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: u32, sig: i32) -> i32;
}

#[test]
fn installed_copy_builds_consumers_with_pkg_config_and_cmake() {
    let prefix = out_dir().join("install-prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    run_ok(
        Command::new("make")
            .current_dir(root())
            .arg("-s")
            .arg("install-files")
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("LIB_DIR={}", lib_dir().display())),
    );
    let consumer = root().join("tests/c/consumer");

    // pkg-config
    let pc_path = prefix.join("lib/pkgconfig");
    let flags = run_ok(
        Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", &pc_path)
            .args(["--cflags", "--libs", "registry"]),
    );
    let exe = out_dir().join("consumer_pkgconfig");
    run_ok(
        Command::new("cc")
            .args(C_FLAGS)
            .arg(consumer.join("consumer.c"))
            .arg("-o")
            .arg(&exe)
            .args(flags.split_whitespace()),
    );
    let out = run_ok(&mut Command::new(&exe));
    assert!(out.contains("consumer linked libregistry"), "{out}");

    // CMake find_package, shared and static
    let build = out_dir().join("consumer-cmake");
    let _ = std::fs::remove_dir_all(&build);
    run_ok(
        Command::new("cmake")
            .arg("-S")
            .arg(&consumer)
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())),
    );
    run_ok(Command::new("cmake").arg("--build").arg(&build));
    for target in ["consumer_shared", "consumer_static"] {
        let out = run_ok(&mut Command::new(build.join(target)));
        assert!(
            out.contains("consumer linked libregistry"),
            "{target}: {out}"
        );
    }
}
