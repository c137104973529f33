//! Sources: where frames come from. A source is a synchronous generator of
//! frames ([`FrameSource`]); [`drive`] runs it on a blocking thread, paces it
//! and hands each frame, with its acknowledgement token, to the consumers.

pub mod file;
pub mod framing;
pub mod synthetic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sigfab_operators::{Frame, Item};
use tokio::sync::watch;

use crate::ack::AckCounter;
use crate::config::{LoadedPipeline, NodeSpec, Pace, SourceKind};
use crate::health::Readiness;
use crate::runtime::{Envelope, Fanout, NodeCounters};

/// Why a source could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read recording {path}: {error}")]
    Recording {
        path: std::path::PathBuf,
        error: crate::readers::ReadError,
    },
    #[error("recording {path} has no signal channels")]
    NoSignals { path: std::path::PathBuf },
    #[error("invalid frame: {0}")]
    Frame(#[from] sigfab_operators::FrameError),
    #[error("the source is misconfigured: {0}")]
    Config(String),
    #[error(transparent)]
    Kafka(Box<crate::kafka::KafkaError>),
}

/// A synchronous generator of frames, in emission order.
pub trait FrameSource: Send {
    /// The next frame, or `None` at the end.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// How many frames the source will emit, when known (for progress).
    fn expected_frames(&self) -> Option<u64>;
    fn pace(&self) -> Pace;
}

/// A source ready to run: a synchronous frame generator (driven on a
/// blocking thread) or the Kafka consumer (an async task).
pub enum SourceDriver {
    Frames(Box<dyn FrameSource>),
    Kafka(crate::kafka::source::KafkaSource),
}

/// Builds the source a pipeline node describes; opens files now so that a
/// missing recording is reported before anything runs.
pub fn open(
    pipeline: &LoadedPipeline,
    node: &NodeSpec<SourceKind>,
    name: &str,
    readiness: &Readiness,
) -> Result<SourceDriver, SourceError> {
    let kind = node
        .kind
        .as_ref()
        .map_err(|d| SourceError::Config(d.message.clone()))?;
    match &kind.value {
        SourceKind::Synthetic(spec) => Ok(SourceDriver::Frames(Box::new(synthetic::SyntheticSource::new(
            spec, name,
        )?))),
        SourceKind::File(spec) => Ok(SourceDriver::Frames(Box::new(file::FileSource::open(
            &pipeline.resolve(&spec.path.value),
            spec,
        )?))),
        SourceKind::Kafka(spec) => Ok(SourceDriver::Kafka(crate::kafka::source::KafkaSource::open(
            pipeline, spec, name, readiness,
        )?)),
    }
}

/// What a running source needs around it.
pub struct DriveContext {
    pub out: Fanout,
    pub acks: Arc<AckCounter>,
    pub stop: watch::Receiver<bool>,
    pub counters: Arc<NodeCounters>,
    pub progress: bool,
}

/// Runs a frame source until it ends, the stop flag is set, or every
/// consumer has gone. Call on a blocking thread.
pub fn drive(mut source: Box<dyn FrameSource>, context: DriveContext) -> Result<(), SourceError> {
    let bar = progress_bar(context.progress, source.expected_frames());
    let mut clock: Option<(Instant, i64)> = None;
    while !*context.stop.borrow() {
        let Some(frame) = source.next_frame()? else { break };
        if source.pace() == Pace::Realtime && !wait_for_sample_clock(&frame, &mut clock, &context.stop) {
            break;
        }
        context
            .counters
            .items_out
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        context
            .counters
            .samples_in
            .fetch_add(frame.sample_count() as u64, std::sync::atomic::Ordering::Relaxed);
        let ack = context.acks.issue();
        let envelope = Envelope {
            item: Item::Frame(frame),
            ack,
            received: Instant::now(),
        };
        if context.out.send_blocking(envelope).is_err() {
            tracing::warn!("every consumer of the source has stopped; ending it");
            break;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

fn progress_bar(enabled: bool, total: Option<u64>) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let Some(total) = total else {
        return indicatif::ProgressBar::hidden();
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} frames  {elapsed_precise} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Sleeps until the frame's last sample would exist on a live device, by the
/// sample clock of the first frame. Returns false if a stop came meanwhile.
fn wait_for_sample_clock(
    frame: &Frame,
    clock: &mut Option<(Instant, i64)>,
    stop: &watch::Receiver<bool>,
) -> bool {
    let (t0, first_ns) = *clock.get_or_insert((Instant::now(), frame.start_ns));
    let due_ns = (frame.start_ns - first_ns + frame.duration_ns()).max(0) as u64;
    let deadline = t0 + Duration::from_nanos(due_ns);
    loop {
        if *stop.borrow() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        // Short naps so a stop request is seen within 50 ms.
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// Kafka errors are boxed: they are large and rare.
impl From<crate::kafka::KafkaError> for SourceError {
    fn from(error: crate::kafka::KafkaError) -> Self {
        SourceError::Kafka(Box::new(error))
    }
}
