//! Network namespaces a test makes itself, joined by veth pairs, for partitions that drop
//! packets the way a real network does. A thread enters a namespace to bind or connect there
//! (a socket stays in the namespace it was made in, whichever thread uses it later); a
//! program is started in one with `ip netns exec`; a relay carries a namespace's connections
//! to a loopback address of the test's own namespace. Needs root, as CI has.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;

/// A network namespace, deleted (with its links) when dropped.
pub struct Netns {
    /// Its name.
    pub name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {} (the partition tests make network namespaces, which needs root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Makes a namespace named `name` with its loopback up.
    pub fn create(name: &str) -> Self {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        Netns {
            name: name.to_owned(),
        }
    }

    /// Runs `f` on a thread inside this namespace; threads and runtimes it starts are inside
    /// too.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .expect("the thread in the namespace")
    }

    /// A listener bound to `addr` inside this namespace.
    pub fn bind(&self, addr: &str) -> TcpListener {
        let addr = addr.to_owned();
        self.run(move || TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")))
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Sets link `dev` of this namespace up or down.
    pub fn link(&self, dev: &str, up: bool) {
        ip(&[
            "-n",
            &self.name,
            "link",
            "set",
            dev,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Joins `a` and `b` with a veth pair: `a_dev` with `a_addr` in `a`, `b_dev` with `b_addr`
/// in `b` (addresses with their prefix, `10.0.0.1/30`).
pub fn veth(a: &Netns, a_dev: &str, a_addr: &str, b: &Netns, b_dev: &str, b_addr: &str) {
    ip(&[
        "link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]);
    ip(&["-n", &a.name, "addr", "add", a_addr, "dev", a_dev]);
    ip(&["-n", &b.name, "addr", "add", b_addr, "dev", b_dev]);
    a.link(a_dev, true);
    b.link(b_dev, true);
}

/// Carries every connection accepted on `listener` to `to`, connecting from the test's own
/// namespace, until dropped.
pub struct Relay {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Relay {
    /// Starts relaying (call from the test's own namespace).
    pub fn start(listener: TcpListener, to: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay {
            runtime: Some(runtime),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
