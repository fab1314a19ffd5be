//! A Redis Cluster on loopback (`redis-server --cluster-enabled yes`, then
//! `redis-cli --cluster create`) and the bridge the filter reaches it through:
//! webdis in front of an Envoy `redis_proxy` listener rendered from
//! `envoy/redis-bridge.yaml.tmpl`. Ports are picked at run time; every process
//! dies with the thread that started it (see `stack::spawn`) and on `Drop`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stack::{envoy_bin, free_port, log_tail, percent_encode, render, repo_root, spawn, start_on_free_port};

/// A Redis reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The text of a status or bulk reply ("" otherwise).
    pub fn text(&self) -> &str {
        match self {
            Reply::Status(s) | Reply::Bulk(Some(s)) => s,
            _ => "",
        }
    }
}

/// One command over RESP to `127.0.0.1:port` (no redirection: a plain client).
pub fn redis(port: u16, args: &[&str]) -> Result<Reply, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect {port}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(out.as_bytes()).map_err(|e| format!("write {port}: {e}"))?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(r: &mut impl BufRead) -> Result<Reply, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    let n = || rest.parse::<i64>().map_err(|e| format!("{line:?}: {e}"));
    Ok(match kind {
        "+" => Reply::Status(rest.into()),
        "-" => Reply::Error(rest.into()),
        ":" => Reply::Int(n()?),
        "$" if n()? < 0 => Reply::Bulk(None),
        "$" => {
            let mut buf = vec![0; n()? as usize + 2];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            buf.truncate(buf.len() - 2);
            Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" if n()? < 0 => Reply::Array(Vec::new()),
        "*" => Reply::Array((0..n()?).map(|_| read_reply(r)).collect::<Result<_, _>>()?),
        _ => return Err(format!("not RESP: {line:?}")),
    })
}

/// `INFO <section>` as field → value.
pub fn info(port: u16, section: &str) -> HashMap<String, String> {
    let text = redis(port, &["INFO", section]).map(|r| r.text().to_string()).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// One node of the cluster.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

pub struct RedisCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl RedisCluster {
    /// `masters` masters with one replica each; waits until every slot is
    /// served and every replica has finished its first sync (a replica that
    /// never synced will not fail over).
    pub fn start(dir: &Path, masters: usize) -> RedisCluster {
        let dir = dir.join("redis-cluster");
        std::fs::create_dir_all(&dir).unwrap();
        let nodes = (0..2 * masters)
            .map(|i| {
                let log = dir.join(format!("node-{i}.log"));
                let (port, child) = start_on_free_port("redis-server (cluster)", &log, |port| {
                    let mut cmd = Command::new("redis-server");
                    let bus = free_port().to_string();
                    let port = port.to_string();
                    cmd.args(["--port", &port, "--cluster-port", &bus, "--bind", "127.0.0.1"]);
                    cmd.args(["--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{port}.conf")]);
                    // Failure detection in ~1 s; a failing shard does not stop the others.
                    cmd.args(["--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no"]);
                    cmd.args(["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]);
                    cmd.args(["--dbfilename", &format!("dump-{port}.rdb")]).arg("--dir").arg(&dir);
                    cmd
                });
                Node { port, child: Some(child) }
            })
            .collect();
        let cluster = RedisCluster { nodes, dir };
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        create.args(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = create.output().expect("redis-cli");
        std::fs::write(cluster.dir.join("create.log"), &out.stdout).unwrap();
        assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stderr));
        cluster.wait_healthy(Duration::from_secs(60));
        cluster
    }

    /// The nodes still running.
    pub fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.port)
    }

    /// `CLUSTER NODES` from a live node: (port, flags, master's id or "-", id, slots).
    pub fn topology(&self) -> Vec<(u16, String, String, String, String)> {
        let text = self.live().find_map(|p| redis(p, &["CLUSTER", "NODES"]).ok()).expect("no node answers");
        text.text()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let port = f.get(1)?.split('@').next()?.rsplit(':').next()?.parse().ok()?;
                Some((port, f[2].to_string(), f[3].to_string(), f[0].to_string(), f[8..].join(" ")))
            })
            .collect()
    }

    /// Ports of the masters that serve slots, in the order of their first slot.
    pub fn masters(&self) -> Vec<u16> {
        let mut m: Vec<(u32, u16)> = self
            .topology()
            .into_iter()
            .filter(|(_, flags, _, _, slots)| flags.contains("master") && !flags.contains("fail") && !slots.is_empty())
            .map(|(port, _, _, _, slots)| (slots.split('-').next().and_then(|s| s.parse().ok()).unwrap_or(0), port))
            .collect();
        m.sort();
        m.into_iter().map(|(_, p)| p).collect()
    }

    /// The slot of `key` (Redis's CRC16 of its hash tag).
    pub fn slot(&self, key: &str) -> u16 {
        let port = self.live().next().unwrap();
        match redis(port, &["CLUSTER", "KEYSLOT", key]) {
            Ok(Reply::Int(n)) => n as u16,
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        }
    }

    /// The port of the master serving `slot` now.
    pub fn master_of(&self, slot: u16) -> u16 {
        self.topology()
            .into_iter()
            .find(|(_, flags, _, _, slots)| {
                flags.contains("master")
                    && !flags.contains("fail")
                    && slots.split(' ').any(|range| {
                        let mut ends = range.split('-').filter_map(|s| s.parse::<u16>().ok());
                        match (ends.next(), ends.next()) {
                            (Some(a), Some(b)) => (a..=b).contains(&slot),
                            (Some(a), None) => a == slot,
                            _ => false,
                        }
                    })
            })
            .map(|(port, ..)| port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// SIGKILLs a node: a crash, no goodbye to its peers.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("no such node");
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Until every live node says `cluster_state:ok`, every slot has a live
    /// master, and every live replica is in sync; panics with the topology past `within`.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.healthy() {
                return;
            }
            assert!(Instant::now() < deadline, "cluster not healthy: {:#?}", self.topology());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn healthy(&self) -> bool {
        let ok = self.live().all(|p| {
            let text = redis(p, &["CLUSTER", "INFO"]).map(|r| r.text().to_string()).unwrap_or_default();
            text.lines().any(|l| l == "cluster_state:ok")
        });
        let served: u32 = self
            .topology()
            .iter()
            .filter(|(_, flags, ..)| flags.contains("master") && !flags.contains("fail"))
            .flat_map(|(.., slots)| slots.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter_map(|range| {
                let mut ends = range.split('-').filter_map(|s| s.parse::<u32>().ok());
                match (ends.next(), ends.next()) {
                    (Some(a), Some(b)) => Some(b - a + 1),
                    (Some(_), None) => Some(1),
                    _ => None,
                }
            })
            .sum();
        let synced = self.live().all(|p| {
            let i = info(p, "replication");
            i.get("role").is_some_and(|r| r == "master")
                || (i.get("master_link_status").is_some_and(|s| s == "up")
                    && i.get("master_sync_in_progress").is_some_and(|s| s == "0"))
        });
        ok && served == 16_384 && synced
    }

    /// `INFO commandstats` of a node: command → calls.
    pub fn command_calls(&self, port: u16) -> HashMap<String, u64> {
        info(port, "commandstats")
            .into_iter()
            .filter_map(|(k, v)| {
                let calls = v.split(',').find_map(|f| f.strip_prefix("calls="))?.parse().ok()?;
                Some((k.strip_prefix("cmdstat_")?.to_string(), calls))
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// webdis and the Envoy behind it that routes to the cluster: what one
/// gateway pod runs next to its Envoy.
pub struct Bridge {
    /// The RESP listener webdis talks to.
    pub port: u16,
    pub admin_port: u16,
    pub webdis_port: u16,
    pub envoy_log: PathBuf,
    children: Vec<Child>,
}

impl Bridge {
    /// Renders `envoy/redis-bridge.yaml.tmpl` with `seeds`, starts it on port 0, then
    /// webdis (database 0, no password: it sends nothing on connect) pointed at it.
    pub fn start(dir: &Path, name: &str, seeds: &[u16], op_timeout: &str) -> Bridge {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let template = std::fs::read_to_string(repo_root().join("envoy/redis-bridge.yaml.tmpl")).unwrap();
        let seeds: Vec<String> = seeds
            .iter()
            .map(|p| format!("{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}}}"))
            .collect();
        let vars: HashMap<&str, String> = [
            ("LISTEN_ADDRESS", "127.0.0.1".to_string()),
            ("LISTEN_PORT", "0".into()),
            ("ADMIN_PORT", "0".into()),
            ("OP_TIMEOUT", op_timeout.into()),
            ("REDIS_SEEDS", format!("[{}]", seeds.join(", "))),
            ("REDIS_TRANSPORT", crate::stack::PLAINTEXT.into()),
        ]
        .into();
        let yaml = dir.join("bridge.yaml");
        std::fs::write(&yaml, render(&template, &vars)).unwrap();
        let envoy_log = dir.join("bridge.log");
        let admin_file = dir.join("bridge.admin");
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c").arg(&yaml).args(["--disable-hot-restart", "--concurrency", "1", "-l", "info"]);
        cmd.arg("--admin-address-path").arg(&admin_file);
        let mut envoy = spawn(&mut cmd, &envoy_log);
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, admin_port) = loop {
            if let Ok(Some(_)) = envoy.try_wait() {
                panic!("bridge envoy exited:\n{}", log_tail(&std::fs::read_to_string(&envoy_log).unwrap_or_default()));
            }
            if let Some(ports) = bound_ports(&admin_file) {
                break ports;
            }
            assert!(Instant::now() < deadline, "bridge envoy did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        let (webdis_port, webdis) = start_on_free_port("webdis (bridge)", &dir.join("webdis.out"), |http| {
            let conf = dir.join("webdis.json");
            let c = json!({
                "redis_host": "127.0.0.1", "redis_port": port,
                "http_host": "127.0.0.1", "http_port": http,
                "threads": 2, "pool_size": 2, "daemonize": false, "database": 0, "verbosity": 1,
                "logfile": dir.join("webdis.log"),
            });
            std::fs::write(&conf, c.to_string()).unwrap();
            let mut cmd = Command::new("webdis");
            cmd.arg(conf);
            cmd
        });
        Bridge { port, admin_port, webdis_port, envoy_log, children: vec![envoy, webdis] }
    }

    /// A Redis command through webdis and the bridge, e.g. `["SET", "k", "v"]`.
    pub fn command(&self, args: &[&str]) -> Value {
        let path: Vec<String> = args.iter().map(|a| percent_encode(a)).collect();
        let url = format!("http://127.0.0.1:{}/{}", self.webdis_port, path.join("/"));
        ureq::get(&url).timeout(Duration::from_secs(10)).call().unwrap().into_json().unwrap()
    }

    /// The bridge Envoy's counters whose names start with `prefix`.
    pub fn stats(&self, prefix: &str) -> HashMap<String, u64> {
        let url = format!("http://127.0.0.1:{}/stats", self.admin_port);
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| {
                let (name, value) = l.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Once Envoy is ready: its first listener's port and its admin port.
fn bound_ports(admin_file: &Path) -> Option<(u16, u16)> {
    let admin = std::fs::read_to_string(admin_file).ok()?;
    let admin_port: u16 = admin.trim().rsplit_once(':')?.1.parse().ok()?;
    ureq::get(&format!("http://127.0.0.1:{admin_port}/ready")).call().ok()?;
    let listeners: Value =
        ureq::get(&format!("http://127.0.0.1:{admin_port}/listeners?format=json")).call().ok()?.into_json().ok()?;
    let port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"].as_u64()?;
    Some((u16::try_from(port).ok()?, admin_port))
}
