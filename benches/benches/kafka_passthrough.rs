//! Kafka → pass-through → Kafka through a real broker on loopback: frames/s,
//! samples/s and the engine-internal latency (source receipt → handed to the
//! producer) p50/p99/p99.9, at 100 and 500 simulated beds. Each bed is a
//! 32-channel EEG at 256 Hz plus a 3-lead ECG at 500 Hz in 40 ms frames,
//! produced in real time by a load generator.
//!
//! The engine under test runs on CPU 0; the load generator and the broker
//! (tansu, started by scripts/broker.sh) share CPU 1.
//!
//!     cargo bench -p sigfab-benches --bench kafka_passthrough

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sigfab_benches::pin_to_cpu;
use sigfab_engine::runtime::{self, RunOptions, RunReport};

const SECONDS: u64 = 20;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn broker(dir: &Path) -> String {
    let script = repo_root().join("scripts/broker.sh");
    let status = Command::new("taskset")
        .args(["-c", "1"])
        .arg(&script)
        .arg("start")
        .arg(dir)
        .status()
        .expect("run scripts/broker.sh (needs tansu: scripts/broker.sh install)");
    assert!(status.success(), "broker did not start");
    std::fs::read_to_string(dir.join("broker.addr"))
        .expect("broker address")
        .trim()
        .to_string()
}

/// Creates the bench's topics (3 partitions each) before anything uses them.
fn create_topics(brokers: &str, names: &[String]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, 3, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for result in rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .expect("create topics")
    {
        result.unwrap_or_else(|(topic, e)| panic!("cannot create {topic}: {e}"));
    }
}

/// Stops the broker when dropped, so a failing run leaves none behind.
struct BrokerGuard(PathBuf);

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/broker.sh"))
            .arg("stop")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a pipeline given as YAML on a fresh runtime in this thread.
fn run_pipeline(dir: &Path, name: &str, yaml: &str, run_for: Duration) -> RunReport {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("write pipeline");
    let (loaded, graph) = sigfab_engine::config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let options = RunOptions {
        run_for: Some(run_for),
        ..RunOptions::default()
    };
    rt.block_on(runtime::run(&loaded, &graph, &options))
        .expect("pipeline runs")
}

fn load_generator(brokers: &str, topic: &str, beds: u32) -> String {
    format!(
        r#"
sources:
  eeg:
    synthetic: {{ signal: eeg, channels: 32, sample_rate: 256, frame: 40ms, pace: realtime, streams: {beds}, stream_id: eeg-bed }}
  ecg:
    synthetic: {{ signal: ecg, channels: 3, sample_rate: 500, frame: 40ms, pace: realtime, streams: {beds}, stream_id: ecg-bed }}
sinks:
  topic:
    inputs: [eeg, ecg]
    kafka: {{ brokers: "{brokers}", topic: {topic}, linger: 5ms }}
"#
    )
}

fn engine(brokers: &str, topic: &str) -> String {
    format!(
        r#"
sources:
  monitors:
    kafka: {{ brokers: "{brokers}", topics: [{topic}], group: bench, start: earliest, dead_letter_topic: {topic}.dead-letter, max_unacked: 20000 }}
operators:
  pass:
    inputs: [monitors]
    passthrough: {{}}
sinks:
  out:
    inputs: [pass]
    kafka: {{ brokers: "{brokers}", topic: {topic}.out, linger: 5ms }}
"#
    )
}

fn main() {
    let dir = std::env::temp_dir().join(format!("sigfab-kafka-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench folder");
    let brokers = broker(&dir);
    let _broker = BrokerGuard(dir.clone());
    println!("\nKafka -> pass-through -> Kafka, tansu on loopback, {SECONDS} s per load; engine pinned to CPU 0, load generator and broker on CPU 1");
    println!(
        "| beds | offered frames/s | engine frames/s | engine M samples/s | p50 | p99 | p99.9 | unhandled |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    // SIGFAB_BENCH_BEDS=100 runs one load only (for profiling).
    let loads: Vec<u32> = match std::env::var("SIGFAB_BENCH_BEDS") {
        Ok(beds) => beds.split(',').filter_map(|b| b.trim().parse().ok()).collect(),
        Err(_) => vec![100, 500],
    };
    for beds in loads {
        let topic = format!("bench-{beds}");
        let names = [
            topic.clone(),
            format!("{topic}.out"),
            format!("{topic}.dead-letter"),
        ];
        create_topics(&brokers, &names);
        let generator = {
            let (dir, brokers, topic) = (dir.clone(), brokers.clone(), topic.clone());
            std::thread::spawn(move || {
                pin_to_cpu(1);
                run_pipeline(
                    &dir,
                    "load",
                    &load_generator(&brokers, &topic, beds),
                    Duration::from_secs(SECONDS),
                )
            })
        };
        let measured = {
            let (dir, brokers, topic) = (dir.clone(), brokers.clone(), topic.clone());
            std::thread::spawn(move || {
                pin_to_cpu(0);
                run_pipeline(
                    &dir,
                    "engine",
                    &engine(&brokers, &topic),
                    Duration::from_secs(SECONDS + 3),
                )
            })
        };
        let load = generator.join().expect("load generator");
        let report = measured.join().expect("engine");
        let offered = load
            .nodes
            .iter()
            .filter(|n| n.name == "topic")
            .map(|n| n.items_in)
            .sum::<u64>();
        let source = report
            .nodes
            .iter()
            .find(|n| n.name == "monitors")
            .expect("source node");
        let sink = report.nodes.iter().find(|n| n.name == "out").expect("sink node");
        // The engine idles for its last 3 s: rates are over the load window.
        let seconds = SECONDS as f64;
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        let [p50, p99, p999] = sink.latency.unwrap_or_default();
        println!(
            "| {beds} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} |",
            offered as f64 / SECONDS as f64,
            source.items_out as f64 / seconds,
            source.samples_in as f64 / seconds / 1e6,
            ms(p50),
            ms(p99),
            ms(p999),
            report.unhandled()
        );
    }
}
