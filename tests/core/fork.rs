//! fork(): a client inherited from the parent refuses to work in the child
//! with a clear error, while a client made in the child works. Alone in its
//! file so no other test's threads are running when it forks.

use harness::{dump, Etcd};
use libregistry::{blocking, Error, Options, Service};

#[test]
fn fork_gives_a_clear_error_in_the_child_and_a_new_client_works() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = rt.block_on(Etcd::start());
    let opts = Options::new().endpoints(etcd.endpoints()).ttl_secs(5);
    let parent_client = blocking::Client::connect(opts.clone()).unwrap();
    parent_client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .unwrap();

    // SAFETY: the child only calls the library and then _exit()s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = (|| {
            match parent_client.register(&Service::new("micro", "127.0.0.1:4001")) {
                Err(Error::Forked { .. }) => {}
                _ => return 10,
            }
            let Ok(child_client) = blocking::Client::connect(opts) else {
                return 11;
            };
            let Ok(_) = child_client.register(&Service::new("micro", "127.0.0.1:4002")) else {
                return 12;
            };
            std::mem::forget(child_client); // keep it registered for the parent to see
            std::mem::forget(parent_client);
            0
        })();
        // SAFETY: leave without running the parent's destructors in the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "child crashed");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child failed at step {}",
        libc::WEXITSTATUS(status)
    );

    let mut raw = rt.block_on(etcd.raw());
    let held = rt.block_on(dump(&mut raw, "/micro/"));
    assert!(held.contains_key("/micro/127.0.0.1:4000"));
    assert!(
        held.contains_key("/micro/127.0.0.1:4002"),
        "the child's own client registered"
    );
    assert!(!held.contains_key("/micro/127.0.0.1:4001"));
    // The parent's client still works after the fork.
    parent_client
        .register(&Service::new("micro", "127.0.0.1:4003"))
        .unwrap();
    parent_client.close().unwrap();
}
