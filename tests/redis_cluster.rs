//! The Redis state store against a real three-node Redis Cluster, started here (redis-server with
//! cluster mode, `redis-cli --cluster create`), on free ports in a temporary folder.

mod common;

use nbo_stream::config::RedisSettings;
use nbo_stream::state::redis::RedisStore;
use nbo_stream::state::{CustomerState, KeyHasher, StateStore};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The node processes, and their folder (removed when dropped, after the nodes stop).
struct Cluster(Vec<Child>, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_cluster() -> (Cluster, u16) {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let mut children = Vec::new();
    for port in &ports {
        let node = dir.path().join(port.to_string());
        std::fs::create_dir_all(&node).unwrap();
        children.push(
            Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .current_dir(&node)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server (scripts/test.sh installs it)"),
        );
    }
    for port in &ports {
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "cluster create: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Wait until every node agrees the cluster is up.
    for port in &ports {
        for _ in 0..100 {
            let info = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    (Cluster(children, dir), ports[0])
}

#[tokio::test]
async fn a_batch_spanning_every_node_is_written_and_read_back() {
    let (_cluster, port) = start_cluster();
    let settings = RedisSettings {
        url: format!("redis://127.0.0.1:{port}"),
        cluster: true,
        ..RedisSettings::default()
    };
    let store = RedisStore::connect(&settings)
        .await
        .expect("cluster connection");
    let hasher = KeyHasher::new(b"cluster-test-secret-0123456789");
    let keys: Vec<_> = (0..300).map(|i| hasher.key(&format!("C{i}"))).collect();
    let state = CustomerState {
        max_event_time: 7,
        ..CustomerState::default()
    };
    common::write_and_read_back(&store, &keys, &state, &[("spend_24h", 1.5)], 600).await;
    let hash = store.feature_hash(&keys[123]).await.unwrap();
    assert!(
        hash.contains(&("spend_24h".into(), "1.5".into())),
        "{hash:?}"
    );
    // The keys really are spread: the first node holds only a share of the 600.
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "dbsize"])
        .output()
        .unwrap();
    let first: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(first > 0 && first < 600, "first node holds {first} keys");
}
