//! A real `redis-server` on a free loopback port, owned by a test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` process started for one test, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    // Its working directory: a replica's full sync writes `dump.rdb` even with `--save ""`, and it
    // must land here, not in the test's current directory (the crate's source tree).
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start `redis-server` (no persistence) on a free port of 127.0.0.1 and wait until it accepts
    /// connections.
    ///
    /// # Panics
    /// If `redis-server` is not installed (`scripts/test.sh` installs it) or does not start in 10 s.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Start `redis-server` (no persistence) with extra arguments (`--replicaof`, cluster mode).
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new("redis-server")
            .current_dir(dir.path())
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        wait_for_port(port);
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill the server now (Redis going away mid-test).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `redis-cli -p PORT ARGS...`, its output.
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli comes with redis-server");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Redis Cluster of real `redis-server` processes on loopback ports (cluster mode, node
/// timeout 1 s so failovers are quick), created with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// `primaries` primaries with `replicas` replicas each, slots spread evenly; returns once every
    /// node says the cluster is ok.
    ///
    /// # Panics
    /// If the cluster does not form within 30 s.
    pub fn start(primaries: usize, replicas: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|i| {
                let conf = dir.path().join(format!("nodes-{i}.conf"));
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().expect("utf-8 temp path"),
                    "--cluster-node-timeout",
                    "1000",
                    // A replica may always take over (the default refuses after long quiet).
                    "--cluster-replica-validity-factor",
                    "0",
                    "--dir",
                    dir.path().to_str().expect("utf-8 temp path"),
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args: Vec<&str> = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        let r = replicas.to_string();
        args.extend(["--cluster-replicas", &r, "--cluster-yes"]);
        cli(nodes[0].port, &args);
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_ok(Duration::from_secs(30));
        cluster
    }

    /// Wait until every live node reports `cluster_state:ok` and knows every slot.
    ///
    /// # Panics
    /// After `limit`.
    pub fn wait_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let ok = self.nodes.iter().filter(|n| n.is_alive()).all(|n| {
                let info = cli(n.port, &["cluster", "info"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Indices of the nodes that are primaries now.
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_alive())
            .filter(|&i| cli(self.nodes[i].port, &["role"]).starts_with("master"))
            .collect()
    }

    /// Kill node `i` (a primary dying).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }
}

impl RedisServer {
    fn is_alive(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }
}

/// A primary, a replica and a Sentinel watching them as `mymaster` (down after 1 s, quorum 1).
#[derive(Debug)]
pub struct RedisSentinel {
    /// The primary at start.
    pub primary: RedisServer,
    /// Its replica.
    pub replica: RedisServer,
    sentinel: std::process::Child,
    sentinel_port: u16,
    _dir: tempfile::TempDir,
}

impl RedisSentinel {
    /// Start all three and wait until the Sentinel knows the primary and its replica.
    ///
    /// # Panics
    /// If they do not start within 30 s.
    pub fn start() -> Self {
        let primary = RedisServer::start();
        let port = primary.port.to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
        let dir = tempfile::tempdir().expect("temp dir");
        let sentinel_port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {port} 1\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
                dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let sentinel = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs as a Sentinel");
        wait_for_port(sentinel_port);
        let s = Self {
            primary,
            replica,
            sentinel,
            sentinel_port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cli(sentinel_port, &["sentinel", "replicas", "mymaster"])
            .contains(&s.replica.port.to_string())
        {
            assert!(
                Instant::now() < deadline,
                "the Sentinel never saw the replica"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// `redis://127.0.0.1:PORT` of the Sentinel.
    pub fn sentinel_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.sentinel_port)
    }

    /// The port of the primary the Sentinel names now.
    pub fn current_primary_port(&self) -> Option<u16> {
        let out = cli(
            self.sentinel_port,
            &["sentinel", "get-master-addr-by-name", "mymaster"],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
    }
}
