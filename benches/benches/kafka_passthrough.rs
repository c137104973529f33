//! Kafka → pass-through → Kafka through a real broker on loopback: frames/s,
//! samples/s and the engine-internal latency (source receipt → handed to the
//! producer) p50/p99/p99.9, at 100 and 500 simulated beds. Each bed is a
//! 32-channel EEG at 256 Hz plus a 3-lead ECG at 500 Hz in 40 ms frames,
//! offered in real time by a load generator that encodes frames from
//! pre-computed samples (so it can offer the full load on a shared core).
//!
//! Peer, in the same run and at the same load: a bare librdkafka pass-through
//! (consume a record, produce its bytes; no decoding, queues, acknowledgements
//! or offset bookkeeping) — the floor the engine's overhead is measured from.
//!
//! The engine (and the peer) run on CPU 0; the load generator and the broker
//! (tansu, started by scripts/broker.sh) share CPU 1.
//!
//!     cargo bench -p sigfab-benches --bench kafka_passthrough

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;
use sigfab_benches::pin_to_cpu;
use sigfab_engine::latency::LatencyHistogram;
use sigfab_engine::runtime::{self, RunOptions, RunReport};
use sigfab_engine::wire::{self, Encoding};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality};

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

/// One simulated device stream: its layout, a second of pre-computed
/// samples per channel, and where its next frame starts.
struct DeviceStream {
    id: Arc<str>,
    modality: Modality,
    layout: Arc<ChannelLayout>,
    rate: f64,
    second: Vec<Vec<f32>>,
}

impl DeviceStream {
    fn new(id: String, modality: Modality, channels: usize, rate: f64, hz: f32) -> DeviceStream {
        let spec = |i: usize| ChannelSpec {
            name: format!("ch{i}"),
            unit: "uV".into(),
            sample_rate: rate,
        };
        let layout = Arc::new(ChannelLayout::new((0..channels).map(spec).collect()));
        let n = rate as usize;
        let second = (0..channels)
            .map(|c| {
                let phase = c as f32 * 0.3;
                (0..n)
                    .map(|i| 50.0 * (std::f32::consts::TAU * hz * i as f32 / rate as f32 + phase).sin())
                    .collect()
            })
            .collect();
        DeviceStream {
            id: Arc::from(id.as_str()),
            modality,
            layout,
            rate,
            second,
        }
    }

    /// Frame `k` (40 ms each), cut on the sample clock like the engine's sources.
    fn frame(&self, k: u64, t0_ns: i64) -> Frame {
        let first = (k as f64 * 0.04 * self.rate).floor() as usize;
        let end = ((k + 1) as f64 * 0.04 * self.rate).floor() as usize;
        let n = self.second[0].len();
        let mut samples = Vec::with_capacity(self.second.len() * (end - first));
        for channel in &self.second {
            samples.extend((first..end).map(|i| channel[i % n]));
        }
        let counts = vec![(end - first) as u32; self.second.len()];
        let start_ns = t0_ns + (first as f64 / self.rate * 1e9) as i64;
        Frame::new(
            self.id.clone(),
            self.modality,
            self.layout.clone(),
            start_ns,
            k,
            counts,
            samples,
        )
        .expect("consistent frame")
    }
}

/// Offers `beds` beds' frames to `topic` in real time for `SECONDS`;
/// returns the frames produced.
fn generate_load(brokers: &str, topic: &str, beds: u32) -> u64 {
    let streams: Vec<DeviceStream> = (0..beds)
        .flat_map(|b| {
            [
                DeviceStream::new(format!("eeg-bed-{b}"), Modality::Eeg, 32, 256.0, 10.0),
                DeviceStream::new(format!("ecg-bed-{b}"), Modality::Ecg, 3, 500.0, 1.2),
            ]
        })
        .collect();
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("load producer");
    // Frame k starts at t0 + 40k ms on the wall clock and is sent then, so an
    // output's age (now - its start) is its end-to-end latency.
    let t0_ns = wall_clock_ns();
    let start = Instant::now();
    let mut buffer = Vec::new();
    let mut produced = 0;
    for k in 0..SECONDS * 25 {
        let due = start + Duration::from_millis(40 * k);
        while Instant::now() < due {
            producer.poll(due.saturating_duration_since(Instant::now()));
        }
        for stream in &streams {
            buffer.clear();
            wire::encode(
                &Item::Frame(stream.frame(k, t0_ns)),
                Encoding::Binary,
                &mut buffer,
            );
            let mut record = BaseRecord::to(topic).key(&*stream.id).payload(&buffer);
            while let Err((error, back)) = producer.send(record) {
                assert!(
                    matches!(
                        error,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ),
                    "load producer: {error}"
                );
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            produced += 1;
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("load flushed");
    produced
}

fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Reads `topic` for `run_for` and records each frame's end-to-end latency:
/// arrival here minus the frame's start (when the load generator sent it).
/// Both pass-throughs keep a frame's start time, so the figures compare.
fn watch_output(brokers: &str, topic: &str, run_for: Duration) -> LatencyHistogram {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("watch-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("output watcher");
    consumer.subscribe(&[topic]).expect("watcher subscribes");
    let latency = LatencyHistogram::default();
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let arrived = wall_clock_ns();
        let payload = message.payload().unwrap_or_default();
        if latency.count() == 0 {
            // Once: the in-place read agrees with the decoder.
            let decoded = match wire::decode(payload, Encoding::Binary) {
                Ok(Item::Frame(frame)) => Some(frame.start_ns),
                _ => None,
            };
            assert_eq!(
                frame_start_ns(payload),
                decoded,
                "frame_start_ns misreads the wire format"
            );
        }
        if let Some(start_ns) = frame_start_ns(payload) {
            latency.record(Duration::from_nanos(
                arrived.saturating_sub(start_ns).max(0) as u64
            ));
        }
    }
    latency
}

/// A binary frame's start_ns, read in place (docs/wire-format.md §3: a
/// 12-byte header, then the stream id as u16 length + bytes, the modality
/// byte, start_ns): the watcher shares a core with the broker, so it does
/// not decode whole frames.
fn frame_start_ns(message: &[u8]) -> Option<i64> {
    let id_len = u16::from_le_bytes(message.get(12..14)?.try_into().ok()?) as usize;
    let at = 14 + id_len + 1;
    Some(i64::from_le_bytes(message.get(at..at + 8)?.try_into().ok()?))
}

/// What the bare librdkafka pass-through measured.
struct PeerReport {
    frames: u64,
    latency: LatencyHistogram,
}

/// Consumes `topic` and produces each record's bytes to `topic.peer-out`
/// until `run_for` has passed; latency is receipt → produce call returned,
/// the same span the engine's figure covers.
fn bare_passthrough(brokers: &str, topic: &str, run_for: Duration) -> PeerReport {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("peer-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("peer consumer");
    consumer.subscribe(&[topic]).expect("peer subscribes");
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("peer producer");
    let out = format!("{topic}.peer-out");
    let mut report = PeerReport {
        frames: 0,
        latency: LatencyHistogram::default(),
    };
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            producer.poll(Duration::ZERO);
            continue;
        };
        let received = Instant::now();
        let mut record = BaseRecord::to(&out).payload(message.payload().unwrap_or_default());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        while let Err((_, back)) = producer.send(record) {
            record = back;
            producer.poll(Duration::from_millis(1));
        }
        report.latency.record(received.elapsed());
        report.frames += 1;
        producer.poll(Duration::ZERO);
    }
    let _ = producer.flush(Duration::from_secs(30));
    report
}

fn engine(brokers: &str, topic: &str) -> String {
    format!(
        r#"
sources:
  monitors:
    kafka: {{ brokers: "{brokers}", topics: [{topic}], group: bench, encoding: binary, start: earliest, dead_letter_topic: {topic}.dead-letter, max_unacked: 20000 }}
operators:
  pass:
    inputs: [monitors]
    passthrough: {{}}
sinks:
  out:
    inputs: [pass]
    kafka: {{ brokers: "{brokers}", topic: {topic}.out, encoding: binary, linger: 5ms }}
"#
    )
}

fn spawn_on<T: Send + 'static>(
    cpu: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        pin_to_cpu(cpu);
        f()
    })
}

/// What one load gave: frames offered, the measured side's own result, and
/// the end-to-end latency seen on its output topic.
struct UnderLoad<T> {
    offered: u64,
    measured: T,
    end_to_end: LatencyHistogram,
}

/// Runs the load generator and the output watcher (CPU 1) beside `measure`
/// (CPU 0).
fn under_load<T: Send + 'static>(
    brokers: &str,
    (topic, output): (&str, &str),
    beds: u32,
    measure: impl FnOnce() -> T + Send + 'static,
) -> UnderLoad<T> {
    let (brokers_, topic_) = (brokers.to_string(), topic.to_string());
    let generator = spawn_on(1, move || generate_load(&brokers_, &topic_, beds));
    let (brokers_, output_) = (brokers.to_string(), output.to_string());
    let watcher = spawn_on(1, move || {
        watch_output(&brokers_, &output_, Duration::from_secs(SECONDS + 3))
    });
    let measured = spawn_on(0, measure);
    UnderLoad {
        offered: generator.join().expect("load generator"),
        measured: measured.join().expect("measured side"),
        end_to_end: watcher.join().expect("output watcher"),
    }
}

fn quantiles(h: &LatencyHistogram) -> [Duration; 3] {
    [0.5, 0.99, 0.999].map(|q| h.quantile(q).unwrap_or_default())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("sigfab-kafka-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench folder");
    let brokers = broker(&dir);
    let _broker = BrokerGuard(dir.clone());
    println!("\nKafka -> pass-through -> Kafka, tansu on loopback, {SECONDS} s per load; measured side pinned to CPU 0; load generator, output watcher and broker on CPU 1");
    println!("Engine-internal: source receipt -> handed to the producer. End to end: sent by the load generator -> read back from the output topic (both sides' linger, the broker twice).");
    println!("| beds | pass-through | offered frames/s | frames/s | M samples/s | internal p50 / p99 / p99.9 | end-to-end p50 / p99 / p99.9 | unhandled |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    // SIGFAB_BENCH_BEDS=100 runs one load only (for profiling).
    let loads: Vec<u32> = match std::env::var("SIGFAB_BENCH_BEDS") {
        Ok(beds) => beds.split(',').filter_map(|b| b.trim().parse().ok()).collect(),
        Err(_) => vec![100, 500],
    };
    // The engine idles for its last 3 s (draining): rates are over the load window.
    let seconds = SECONDS as f64;
    let window = Duration::from_secs(SECONDS + 3);
    let three = |[a, b, c]: [Duration; 3]| format!("{} / {} / {}", ms(a), ms(b), ms(c));
    for beds in loads {
        let (topic, peer_topic) = (format!("bench-{beds}"), format!("bench-{beds}-peer"));
        let (out, peer_out) = (format!("{topic}.out"), format!("{peer_topic}.peer-out"));
        let names = [
            topic.clone(),
            out.clone(),
            format!("{topic}.dead-letter"),
            peer_topic.clone(),
            peer_out.clone(),
        ];
        create_topics(&brokers, &names);

        let yaml = engine(&brokers, &topic);
        let engine_dir = dir.clone();
        let run = under_load(&brokers, (&topic, &out), beds, move || {
            run_pipeline(&engine_dir, "engine", &yaml, window)
        });
        let report = &run.measured;
        let source = report
            .nodes
            .iter()
            .find(|n| n.name == "monitors")
            .expect("source node");
        let sink = report.nodes.iter().find(|n| n.name == "out").expect("sink node");
        let engine_e2e = quantiles(&run.end_to_end);
        println!(
            "| {beds} | sigfab | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
            run.offered as f64 / seconds,
            source.items_out as f64 / seconds,
            source.samples_in as f64 / seconds / 1e6,
            three(sink.latency.unwrap_or_default()),
            three(engine_e2e),
            report.unhandled()
        );

        let (peer_brokers, peer_source) = (brokers.clone(), peer_topic.clone());
        let peer = under_load(&brokers, (&peer_topic, &peer_out), beds, move || {
            bare_passthrough(&peer_brokers, &peer_source, window)
        });
        let peer_e2e = quantiles(&peer.end_to_end);
        println!(
            "| {beds} | bare librdkafka (peer) | {:.0} | {:.0} | — | {} | {} | — |",
            peer.offered as f64 / seconds,
            peer.measured.frames as f64 / seconds,
            three(quantiles(&peer.measured.latency)),
            three(peer_e2e),
        );
        let ratio = engine_e2e[1].as_secs_f64() / peer_e2e[1].as_secs_f64().max(1e-9);
        println!("|  | end-to-end p99, sigfab / peer | | | | | {ratio:.2}x | |");
    }
}
