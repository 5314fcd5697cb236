//! `[[discovery]]` at scale (issue 20), run as root with `cargo bench --bench discovery`:
//! 100 EKS clusters in 4 regions in the testkit's fake EKS (which adds no latency of its
//! own, unless `BENCH_EKS_MS` says so). For each round, two fresh brokers, interleaved:
//!
//! - **discovered**: `[[discovery]]` over the 4 regions finds the 100 clusters;
//! - **reference**: the same 100 clusters written as `[[cluster]]` blocks with their
//!   endpoints and CAs (nothing to ask EKS).
//!
//! Measured: time from the broker's start to root's first `whoami` that names every
//! cluster (the broker answers nothing until its socket is bound, then the first request
//! waits for the first discovery), the EKS calls it took, and the broker's RSS after.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rolesh_testkit::fake_aws::{EksCluster, FakeAws, FakeAwsOptions};

const REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "ap-south-1", "us-west-2"];
const CLUSTERS: usize = 100;
const ROUNDS: usize = 7;
const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("benches/discovery needs root (the broker's socket); skipped");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let clusters = (0..CLUSTERS)
        .map(|i| {
            EksCluster::new(
                format!("prod-{i:03}"),
                format!("https://10.0.{}.{}", i / 250, i % 250 + 1),
                CA,
            )
            .in_region(REGIONS[i % REGIONS.len()])
            .with_tag("team", "platform")
        })
        .collect();
    let options = FakeAwsOptions {
        clusters,
        ..FakeAwsOptions::default()
    };
    let aws = FakeAws::start_in_background(options).expect("fake aws");
    if let Some(ms) = std::env::var("BENCH_EKS_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        aws.handle().set_latency(Duration::from_millis(ms));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let discovered = write_config(&aws, dir.path(), "discovered", &discovery_blocks());
    let reference = write_config(&aws, dir.path(), "reference", &cluster_blocks(&aws));
    let (mut found, mut listed) = (Vec::new(), Vec::new());
    let (mut found_rss, mut listed_rss) = (Vec::new(), Vec::new());
    let mut calls = None;
    for _ in 0..ROUNDS {
        let before = aws.handle().counters();
        let (t, rss) = first_answer(&aws, dir.path(), &discovered);
        let after = aws.handle().counters();
        calls.get_or_insert((
            after.list_clusters - before.list_clusters,
            after.describe_cluster - before.describe_cluster,
        ));
        found.push(t);
        found_rss.push(rss);
        let (t, rss) = first_answer(&aws, dir.path(), &reference);
        listed.push(t);
        listed_rss.push(rss);
    }
    let (lists, describes) = calls.unwrap_or_default();
    println!(
        "{CLUSTERS} clusters in {} regions: first whoami naming them all, median of {ROUNDS}: discovered {:.1} ms vs written as [[cluster]] {:.1} ms ({:.2}×); {lists} ListClusters and {describes} DescribeCluster calls until then (the broker's, and the asking user's role checking each cluster once)",
        REGIONS.len(),
        ms(median(&mut found)),
        ms(median(&mut listed)),
        median(&mut found).as_secs_f64() / median(&mut listed).as_secs_f64()
    );
    println!(
        "broker RSS after that answer, median: discovered {:.1} MiB vs written {:.1} MiB (+{:.0} KiB)",
        median_kib(&mut found_rss) / 1024.0,
        median_kib(&mut listed_rss) / 1024.0,
        median_kib(&mut found_rss) - median_kib(&mut listed_rss)
    );
}

fn discovery_blocks() -> String {
    let regions: Vec<String> = REGIONS.iter().map(|r| format!("{r:?}")).collect();
    format!(
        "[[discovery]]\nregions = [{}]\ntags = {{ team = \"platform\" }}\nnames = [\"prod-*\"]\n",
        regions.join(", ")
    )
}

fn cluster_blocks(aws: &FakeAws) -> String {
    aws.options()
        .clusters
        .iter()
        .map(|c| {
            format!(
                "[[cluster]]\nname = \"{}\"\nregion = \"{}\"\nendpoint = \"{}\"\ncertificate_authority_data = \"{}\"\n",
                c.name,
                c.region.as_deref().unwrap_or("us-east-1"),
                c.endpoint,
                c.certificate_authority_data
            )
        })
        .collect()
}

fn write_config(aws: &FakeAws, dir: &Path, name: &str, clusters: &str) -> std::path::PathBuf {
    let config = format!(
        "[aws]\nregion = \"us-east-1\"\nsts_endpoint = \"{}\"\n[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion-{{user}}\"\n{clusters}[broker]\nrequire_session = false\n",
        aws.endpoint()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// Starts a broker on `config`, asks `whoami` until it names every cluster, and returns
/// the time since the start and the broker's RSS (KiB) then.
fn first_answer(aws: &FakeAws, dir: &Path, config: &Path) -> (Duration, u64) {
    let socket = dir.join("bench.sock");
    let _ = std::fs::remove_file(&socket);
    let o = aws.options();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_rolesh"))
        .args(["broker", "--config"])
        .arg(config)
        .arg("--socket")
        .arg(&socket)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", &o.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &o.secret_access_key)
        .env("AWS_ENDPOINT_URL", aws.endpoint())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start broker");
    let broker = Killed(child);
    let deadline = started + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "no whoami naming {CLUSTERS} clusters"
        );
        if let Ok(stream) = UnixStream::connect(&socket)
            && whoami_clusters(stream) == CLUSTERS
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    (elapsed, rss_kib(broker.0.id()))
}

fn whoami_clusters(mut stream: UnixStream) -> usize {
    if stream.write_all(b"{\"v\":1,\"op\":\"whoami\"}\n").is_err() {
        return 0;
    }
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return 0;
    }
    serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v["clusters"].as_array().map(Vec::len))
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn median_kib(values: &mut [u64]) -> f64 {
    values.sort();
    values[values.len() / 2] as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A broker process, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
