//! The frame: the unit that flows through a pipeline.
//!
//! A frame carries a short stretch (typically 40 ms) of one stream's samples.
//! Samples are f32 physical values (µV, mV, mmHg, ...) stored **planar** in one
//! contiguous buffer: all of channel 0's samples, then all of channel 1's, and
//! so on. Planar storage is what makes multi-rate devices possible: a 250 Hz
//! ECG and a 125 Hz ABP channel of the same device simply hold different
//! sample counts in the same frame.
//!
//! Gaps are explicit at two levels:
//! * a NaN sample is a missing value (lead off, segment not recorded);
//! * [`Frame::discontinuity`] says this frame does not continue the previous
//!   frame of its stream (lost frames, a clock jump, a new record segment), so
//!   stateful operators reset.
//!
//! Metadata may hold PHI until a de-identification operator removes it, so
//! [`Frame`]'s `Debug` output never prints metadata values.

use std::fmt;
use std::sync::Arc;

/// What kind of signal a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Modality {
    Eeg,
    Ecg,
    Abp,
    Ppg,
    Spo2,
    Resp,
    Audio,
    Other,
}

impl Modality {
    pub const ALL: [Modality; 8] = [
        Modality::Eeg,
        Modality::Ecg,
        Modality::Abp,
        Modality::Ppg,
        Modality::Spo2,
        Modality::Resp,
        Modality::Audio,
        Modality::Other,
    ];

    /// The lower-case name used in YAML, JSON and the wire format docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Eeg => "eeg",
            Modality::Ecg => "ecg",
            Modality::Abp => "abp",
            Modality::Ppg => "ppg",
            Modality::Spo2 => "spo2",
            Modality::Resp => "resp",
            Modality::Audio => "audio",
            Modality::Other => "other",
        }
    }

    /// The code used in the binary wire format.
    pub fn code(self) -> u8 {
        match self {
            Modality::Eeg => 1,
            Modality::Ecg => 2,
            Modality::Abp => 3,
            Modality::Ppg => 4,
            Modality::Spo2 => 5,
            Modality::Resp => 6,
            Modality::Audio => 7,
            Modality::Other => 0,
        }
    }

    pub fn from_code(code: u8) -> Option<Modality> {
        Modality::ALL.into_iter().find(|m| m.code() == code)
    }

    pub fn parse(name: &str) -> Option<Modality> {
        Modality::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One channel's description. Shared by all frames of a stream through
/// [`ChannelLayout`], so a frame does not allocate channel names.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSpec {
    pub name: String,
    /// Physical unit of the samples, e.g. "uV", "mV", "mmHg".
    pub unit: String,
    /// Samples per second. Need not be an integer (WFDB records use 249.89 Hz).
    pub sample_rate: f64,
}

/// The channels of a stream, in storage order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ChannelLayout {
    pub channels: Vec<ChannelSpec>,
}

impl ChannelLayout {
    pub fn new(channels: Vec<ChannelSpec>) -> Self {
        Self { channels }
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.name == name)
    }
}

/// Key/value metadata of a frame. Shared copy-on-write between frames: a
/// source attaches the same entries to every frame of a stream for the cost
/// of a reference count, and an operator that edits them (de-identification)
/// copies them once. Empty metadata allocates nothing.
#[derive(Clone, Default, PartialEq)]
pub struct Metadata(Option<Arc<Vec<(String, String)>>>);

impl Metadata {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> std::slice::Iter<'_, (String, String)> {
        self.0.as_deref().map_or([].iter(), |m| m.iter())
    }

    /// Value of a key, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The entries for editing; copies them first if other frames share them.
    pub fn entries_mut(&mut self) -> &mut Vec<(String, String)> {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries_mut().push((key.into(), value.into()));
    }
}

impl From<Vec<(String, String)>> for Metadata {
    fn from(entries: Vec<(String, String)>) -> Self {
        if entries.is_empty() {
            Metadata(None)
        } else {
            Metadata(Some(Arc::new(entries)))
        }
    }
}

impl<'a> IntoIterator for &'a Metadata {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Why a frame could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    #[error("{counts} per-channel sample counts for {channels} channels")]
    CountsMismatch { counts: usize, channels: usize },
    #[error("per-channel sample counts add up to {expected} but the buffer holds {actual}")]
    LengthMismatch { expected: u64, actual: usize },
    #[error("channel {index} has a sample rate of {rate} Hz; it must be finite and positive")]
    BadSampleRate { index: usize, rate: f64 },
}

/// A stretch of one stream's samples. See the module documentation.
#[derive(Clone, PartialEq)]
pub struct Frame {
    /// Identifies the stream (device or bed), not the patient.
    pub stream_id: Arc<str>,
    pub modality: Modality,
    pub layout: Arc<ChannelLayout>,
    /// Time of each channel's first sample in this frame, ns since the Unix
    /// epoch (UTC).
    pub start_ns: i64,
    /// Per-stream sequence number, +1 per frame; with `stream_id` it is the
    /// identity used to recognise duplicates downstream.
    pub sequence: u64,
    /// This frame does not continue the previous frame of the stream.
    pub discontinuity: bool,
    /// Samples of each channel in this frame (one entry per channel).
    counts: Vec<u32>,
    /// Planar sample buffer: channel 0's samples, then channel 1's, ...
    samples: Vec<f32>,
    /// Key/value metadata; may hold PHI until de-identified.
    pub metadata: Metadata,
}

impl Frame {
    /// Builds a frame, checking that `counts` and `samples` agree with the
    /// layout.
    pub fn new(
        stream_id: Arc<str>,
        modality: Modality,
        layout: Arc<ChannelLayout>,
        start_ns: i64,
        sequence: u64,
        counts: Vec<u32>,
        samples: Vec<f32>,
    ) -> Result<Frame, FrameError> {
        if counts.len() != layout.len() {
            return Err(FrameError::CountsMismatch {
                counts: counts.len(),
                channels: layout.len(),
            });
        }
        for (index, channel) in layout.channels.iter().enumerate() {
            let rate = channel.sample_rate;
            if !(rate.is_finite() && rate > 0.0) {
                return Err(FrameError::BadSampleRate { index, rate });
            }
        }
        let expected: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        if expected != samples.len() as u64 {
            return Err(FrameError::LengthMismatch {
                expected,
                actual: samples.len(),
            });
        }
        Ok(Frame {
            stream_id,
            modality,
            layout,
            start_ns,
            sequence,
            discontinuity: false,
            counts,
            samples,
            metadata: Metadata::default(),
        })
    }

    pub fn channel_count(&self) -> usize {
        self.counts.len()
    }

    /// Samples of each channel in this frame.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// The whole planar buffer.
    pub fn samples(&self) -> &[f32] {
        &self.samples
    }

    /// The whole planar buffer, mutable: a transform that keeps the shape may
    /// rewrite samples in place without allocating.
    pub fn samples_mut(&mut self) -> &mut [f32] {
        &mut self.samples
    }

    fn channel_range(&self, index: usize) -> std::ops::Range<usize> {
        let start: usize = self.counts[..index].iter().map(|&c| c as usize).sum();
        start..start + self.counts[index] as usize
    }

    /// Where each channel starts in [`Frame::samples`], into `starts`
    /// (cleared first): for callers that look up many channels, since
    /// [`Frame::channel`] sums the counts before its channel on every call.
    pub fn channel_starts(&self, starts: &mut Vec<usize>) {
        starts.clear();
        let mut at = 0;
        for &count in &self.counts {
            starts.push(at);
            at += count as usize;
        }
    }

    /// One channel's samples. Panics if `index >= channel_count()`.
    pub fn channel(&self, index: usize) -> &[f32] {
        let range = self.channel_range(index);
        &self.samples[range]
    }

    /// One channel's samples, mutable. Panics if `index >= channel_count()`.
    pub fn channel_mut(&mut self, index: usize) -> &mut [f32] {
        let range = self.channel_range(index);
        &mut self.samples[range]
    }

    /// Iterates over (channel spec, samples) in storage order.
    pub fn channels(&self) -> impl Iterator<Item = (&ChannelSpec, &[f32])> {
        let mut rest = self.samples.as_slice();
        self.layout
            .channels
            .iter()
            .zip(self.counts.iter())
            .map(move |(spec, &count)| {
                let (head, tail) = rest.split_at(count as usize);
                rest = tail;
                (spec, head)
            })
    }

    /// Total number of samples over all channels.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Duration covered by the frame, in ns, taken from its first channel
    /// (all channels of a frame cover the same time span, up to one sample).
    pub fn duration_ns(&self) -> i64 {
        match (self.layout.channels.first(), self.counts.first()) {
            (Some(spec), Some(&count)) => samples_to_ns(f64::from(count), spec.sample_rate),
            _ => 0,
        }
    }

    /// Value of a metadata key, if present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key)
    }

    /// Replaces the channel layout and sample buffers (for transforms that
    /// change the shape), returning the old buffers so the caller can reuse
    /// their allocation for the next frame. On error the frame is unchanged.
    pub fn reshape(
        &mut self,
        layout: Arc<ChannelLayout>,
        counts: Vec<u32>,
        samples: Vec<f32>,
    ) -> Result<(Vec<u32>, Vec<f32>), FrameError> {
        let checked = Frame::new(
            self.stream_id.clone(),
            self.modality,
            layout,
            self.start_ns,
            self.sequence,
            counts,
            samples,
        )?;
        self.layout = checked.layout;
        let old_counts = std::mem::replace(&mut self.counts, checked.counts);
        let old_samples = std::mem::replace(&mut self.samples, checked.samples);
        Ok((old_counts, old_samples))
    }
}

/// Never prints metadata values or samples: a frame in a log line must not
/// leak PHI or flood the log.
impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.metadata.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Frame")
            .field("modality", &self.modality)
            .field("sequence", &self.sequence)
            .field("start_ns", &self.start_ns)
            .field("channels", &self.layout.len())
            .field("samples", &self.samples.len())
            .field("discontinuity", &self.discontinuity)
            .field("metadata_keys", &keys)
            .finish()
    }
}

/// The time `count` samples at `rate` Hz span, in whole ns:
/// `(count · 1e9 / rate).round() as i64`, the one formula every operator
/// uses for sample times, so that they agree to the nanosecond.
#[inline]
pub fn samples_to_ns(count: f64, rate: f64) -> i64 {
    round_to_i64(count * 1e9 / rate)
}

/// `x.round() as i64` (halves away from zero, saturating, NaN to 0), the
/// same value for every x, without `round`: on baseline x86-64 (no SSE4.1
/// `roundsd`) that is a libm call, and windowed operators take two per
/// record.
#[inline]
fn round_to_i64(x: f64) -> i64 {
    // Truncation toward zero (saturating); below 2^53 in magnitude the
    // fraction x − t is exact, above it x is whole and the fraction 0.
    let t = x as i64;
    let fraction = x - t as f64;
    if fraction >= 0.5 {
        t.saturating_add(1)
    } else if fraction <= -0.5 {
        t.saturating_sub(1)
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_to_i64_is_round_as_i64_everywhere() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut xs = vec![
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.499_999_999_999_999_94,
            -0.499_999_999_999_999_94,
            4_503_599_627_370_495.5,
            9_007_199_254_740_993.0,
            9.223_372_036_854_775e18,
            i64::MIN as f64,
            i64::MAX as f64,
            1e19,
            -1e19,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            0.0,
            -0.0,
            5e-324,
        ];
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state);
            // Any bits, and values with fractions, halves and sample times.
            xs.extend([
                x,
                (state >> 20) as f64 / 8.0 - 1e12,
                (state % 1_000_000) as f64 * 1e9 / 256.0,
            ]);
        }
        for x in xs {
            assert_eq!(round_to_i64(x), x.round() as i64, "{x:e}");
        }
    }

    fn layout() -> Arc<ChannelLayout> {
        Arc::new(ChannelLayout::new(vec![
            ChannelSpec {
                name: "ECG".into(),
                unit: "mV".into(),
                sample_rate: 250.0,
            },
            ChannelSpec {
                name: "ABP".into(),
                unit: "mmHg".into(),
                sample_rate: 125.0,
            },
        ]))
    }

    #[test]
    fn multi_rate_channels_share_one_buffer() {
        let samples: Vec<f32> = (0..15).map(|i| i as f32).collect();
        let frame = Frame::new(
            "bed-1".into(),
            Modality::Ecg,
            layout(),
            0,
            7,
            vec![10, 5],
            samples,
        )
        .unwrap();
        assert_eq!(frame.channel(0).len(), 10);
        assert_eq!(frame.channel(1), &[10.0, 11.0, 12.0, 13.0, 14.0]);
        let names: Vec<_> = frame.channels().map(|(s, x)| (s.name.clone(), x.len())).collect();
        assert_eq!(names, vec![("ECG".to_string(), 10), ("ABP".to_string(), 5)]);
        assert_eq!(frame.duration_ns(), 40_000_000);
    }

    #[test]
    fn inconsistent_shapes_are_rejected() {
        let err = Frame::new("s".into(), Modality::Ecg, layout(), 0, 0, vec![10], vec![0.0; 10]).unwrap_err();
        assert_eq!(
            err,
            FrameError::CountsMismatch {
                counts: 1,
                channels: 2
            }
        );
        let err = Frame::new(
            "s".into(),
            Modality::Ecg,
            layout(),
            0,
            0,
            vec![10, 5],
            vec![0.0; 14],
        )
        .unwrap_err();
        assert_eq!(
            err,
            FrameError::LengthMismatch {
                expected: 15,
                actual: 14
            }
        );
    }

    #[test]
    fn debug_hides_metadata_values() {
        let mut frame = Frame::new("s".into(), Modality::Ecg, layout(), 0, 0, vec![0, 0], vec![]).unwrap();
        frame.metadata.push("patient_name", "CANARY-Jane-Doe");
        let text = format!("{frame:?}");
        assert!(text.contains("patient_name"));
        assert!(!text.contains("CANARY"));
    }

    #[test]
    fn metadata_is_shared_until_edited() {
        let shared: Metadata = vec![("site".to_string(), "icu-3".to_string())].into();
        let mut copy = shared.clone();
        copy.push("bed", "7");
        assert_eq!(shared.len(), 1);
        assert_eq!(copy.get("bed"), Some("7"));
        assert!(Metadata::default().is_empty());
    }

    #[test]
    fn modality_codes_round_trip() {
        for m in Modality::ALL {
            assert_eq!(Modality::from_code(m.code()), Some(m));
            assert_eq!(Modality::parse(m.as_str()), Some(m));
        }
    }
}
