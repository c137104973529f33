//! Re-referencing and montages: every output channel is a weighted sum of
//! input channels (an `ndarray` weight matrix, rows = outputs), then
//! optional causal DC removal, then a per-channel gain and offset.
//!
//! * common average: each listed channel minus the mean of the listed
//!   channels (default: all);
//! * linked reference: each other channel minus the mean of the reference
//!   channels (e.g. A1 and A2), which are left out of the output;
//! * bipolar chains: `A-B` for each pair, including the built-in
//!   double banana of the 10-20 system;
//! * any matrix: named rows of `{input: weight}`.
//!
//! DC removal is a one-pole running mean per output channel,
//! `m += a (y - m)`, `a = 1 - exp(-1 / (tau * rate))`, subtracted from the
//! output; `m` starts at the channel's first value (no start-up step) and
//! restarts on a discontinuity. See `docs/filters.md`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use ndarray::{Array2, ArrayView1, ArrayViewMut1};

use crate::{ChannelLayout, ChannelSpec, Item, Operator, Output, Rejected};

/// The 18 derivations of the longitudinal bipolar ("double banana")
/// montage, left temporal, right temporal, left and right parasagittal,
/// midline; 10-20 names with the old temporal labels (T7/T8/P7/P8 match
/// T3/T4/T5/T6).
pub const DOUBLE_BANANA: [(&str, &str); 18] = [
    ("Fp1", "F7"),
    ("F7", "T3"),
    ("T3", "T5"),
    ("T5", "O1"),
    ("Fp2", "F8"),
    ("F8", "T4"),
    ("T4", "T6"),
    ("T6", "O2"),
    ("Fp1", "F3"),
    ("F3", "C3"),
    ("C3", "P3"),
    ("P3", "O1"),
    ("Fp2", "F4"),
    ("F4", "C4"),
    ("C4", "P4"),
    ("P4", "O2"),
    ("Fz", "Cz"),
    ("Cz", "Pz"),
];

/// Which montage.
#[derive(Clone, Debug, PartialEq)]
pub enum MontageKind {
    /// Listed channels (all when `None`) minus their mean.
    CommonAverage(Option<Vec<String>>),
    /// Every channel but the references, minus the references' mean.
    Linked(Vec<String>),
    /// `A-B` for each `(A, B)`.
    Bipolar(Vec<(String, String)>),
    /// [`DOUBLE_BANANA`], channel names matched loosely (see
    /// [`ten_twenty_key`]).
    DoubleBanana,
    /// Named rows of (input channel, weight).
    Matrix(Vec<(String, Vec<(String, f64)>)>),
}

/// What the operator does.
#[derive(Clone, Debug, PartialEq)]
pub struct MontageConfig {
    pub kind: MontageKind,
    /// Gain per output channel name (default 1).
    pub gain: Vec<(String, f64)>,
    /// Offset per output channel name, added after the gain (default 0).
    pub offset: Vec<(String, f64)>,
    /// DC removal time constant in seconds, if any.
    pub dc_time_constant_s: Option<f64>,
}

/// A 10-20 label reduced for matching: letters and digits only, lower
/// case, an `EEG` prefix and a `REF`/`LE`/`AR` suffix removed, and the new
/// temporal names mapped to the old ones (T7→T3, T8→T4, P7→T5, P8→T6).
pub fn ten_twenty_key(name: &str) -> String {
    let mut key: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if let Some(rest) = key.strip_prefix("eeg") {
        key = rest.to_string();
    }
    for suffix in ["ref", "le", "ar"] {
        if key.len() > suffix.len() + 1 {
            if let Some(rest) = key.strip_suffix(suffix) {
                key = rest.to_string();
                break;
            }
        }
    }
    match key.as_str() {
        "t7" => "t3".into(),
        "t8" => "t4".into(),
        "p7" => "t5".into(),
        "p8" => "t6".into(),
        _ => key,
    }
}

/// An output channel: its name and (input index, weight) terms.
type Row = (String, Vec<(usize, f64)>);

/// The resolved montage for one layout.
#[derive(Debug)]
struct Plan {
    layout_in: Arc<ChannelLayout>,
    layout_out: Arc<ChannelLayout>,
    /// Input channel indices the weights' columns refer to.
    inputs: Vec<usize>,
    /// Rows = outputs, columns = `inputs`.
    weights: Array2<f32>,
    gain: Vec<f32>,
    offset: Vec<f32>,
    /// One-pole coefficient and each output's running mean (None: not yet
    /// started).
    dc: Option<(f64, Vec<Option<f64>>)>,
}

/// The montage operator; see the module documentation. Frames must give
/// every used input channel the same sample count (one rate), or they are
/// rejected; a layout lacking a named channel rejects its frames.
#[derive(Debug)]
pub struct Montage {
    config: MontageConfig,
    streams: HashMap<Arc<str>, Result<Plan, Cow<'static, str>>>,
    offsets: Vec<usize>,
    spare_counts: Vec<u32>,
    spare_samples: Vec<f32>,
}

impl Montage {
    pub fn new(config: MontageConfig) -> Self {
        Self {
            config,
            streams: HashMap::new(),
            offsets: Vec::new(),
            spare_counts: Vec::new(),
            spare_samples: Vec::new(),
        }
    }

    /// Output rows as (name, [(input index, weight)]) for a layout.
    fn rows(&self, layout: &ChannelLayout) -> Result<Vec<Row>, Cow<'static, str>> {
        let find = |name: &str, field: &'static str| {
            layout
                .index_of(name)
                .ok_or_else(|| Cow::from(format!("frame lacks a channel named in montage.{field}")))
        };
        Ok(match &self.config.kind {
            MontageKind::CommonAverage(channels) => {
                let members: Vec<usize> = match channels {
                    None => (0..layout.len()).collect(),
                    Some(names) => names
                        .iter()
                        .map(|n| find(n, "channels"))
                        .collect::<Result<_, _>>()?,
                };
                let share = 1.0 / members.len().max(1) as f64;
                members
                    .iter()
                    .map(|&i| {
                        let terms = members
                            .iter()
                            .map(|&j| (j, if i == j { 1.0 - share } else { -share }))
                            .collect();
                        (layout.channels[i].name.clone(), terms)
                    })
                    .collect()
            }
            MontageKind::Linked(references) => {
                let refs: Vec<usize> = references
                    .iter()
                    .map(|n| find(n, "reference"))
                    .collect::<Result<_, _>>()?;
                let share = 1.0 / refs.len().max(1) as f64;
                (0..layout.len())
                    .filter(|i| !refs.contains(i))
                    .map(|i| {
                        let mut terms = vec![(i, 1.0)];
                        terms.extend(refs.iter().map(|&r| (r, -share)));
                        (layout.channels[i].name.clone(), terms)
                    })
                    .collect()
            }
            MontageKind::Bipolar(pairs) => pairs
                .iter()
                .map(|(a, b)| {
                    Ok((
                        format!("{a}-{b}"),
                        vec![(find(a, "pairs")?, 1.0), (find(b, "pairs")?, -1.0)],
                    ))
                })
                .collect::<Result<_, Cow<'static, str>>>()?,
            MontageKind::DoubleBanana => {
                let keys: Vec<String> = layout.channels.iter().map(|c| ten_twenty_key(&c.name)).collect();
                let find_key = |label: &str| {
                    let key = ten_twenty_key(label);
                    keys.iter()
                        .position(|k| *k == key)
                        .ok_or(Cow::Borrowed("frame lacks a 10-20 channel of the double banana"))
                };
                DOUBLE_BANANA
                    .iter()
                    .map(|(a, b)| {
                        Ok((
                            format!("{a}-{b}"),
                            vec![(find_key(a)?, 1.0), (find_key(b)?, -1.0)],
                        ))
                    })
                    .collect::<Result<_, Cow<'static, str>>>()?
            }
            MontageKind::Matrix(rows) => rows
                .iter()
                .map(|(name, terms)| {
                    let terms = terms
                        .iter()
                        .map(|(input, w)| Ok((find(input, "matrix")?, *w)))
                        .collect::<Result<_, Cow<'static, str>>>()?;
                    Ok((name.clone(), terms))
                })
                .collect::<Result<_, Cow<'static, str>>>()?,
        })
    }

    fn plan(&self, layout: &Arc<ChannelLayout>) -> Result<Plan, Cow<'static, str>> {
        let rows = self.rows(layout)?;
        let mut inputs: Vec<usize> = rows.iter().flat_map(|(_, t)| t.iter().map(|&(i, _)| i)).collect();
        inputs.sort_unstable();
        inputs.dedup();
        let rate = inputs.first().map(|&i| layout.channels[i].sample_rate);
        if inputs
            .iter()
            .any(|&i| Some(layout.channels[i].sample_rate) != rate)
        {
            return Err("montage channels must share one sample rate".into());
        }
        let mut weights = Array2::<f32>::zeros((rows.len(), inputs.len()));
        let mut specs = Vec::with_capacity(rows.len());
        for (r, (name, terms)) in rows.iter().enumerate() {
            for &(input, w) in terms {
                let column = inputs.iter().position(|&i| i == input).unwrap_or(0);
                weights[[r, column]] += w as f32;
            }
            let first = terms.first().map_or(0, |&(i, _)| i);
            specs.push(ChannelSpec {
                name: name.clone(),
                unit: layout
                    .channels
                    .get(first)
                    .map_or_else(String::new, |c| c.unit.clone()),
                sample_rate: rate.unwrap_or(1.0),
            });
        }
        let lookup = |table: &[(String, f64)], name: &str, default: f64| {
            table.iter().find(|(n, _)| n == name).map_or(default, |&(_, v)| v) as f32
        };
        let gain = specs
            .iter()
            .map(|s| lookup(&self.config.gain, &s.name, 1.0))
            .collect();
        let offset = specs
            .iter()
            .map(|s| lookup(&self.config.offset, &s.name, 0.0))
            .collect();
        let dc = self.config.dc_time_constant_s.map(|tau| {
            let a = 1.0 - (-1.0 / (tau * rate.unwrap_or(1.0))).exp();
            (a, vec![None; specs.len()])
        });
        Ok(Plan {
            layout_in: layout.clone(),
            layout_out: Arc::new(ChannelLayout::new(specs)),
            inputs,
            weights,
            gain,
            offset,
            dc,
        })
    }
}

impl Operator for Montage {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(mut frame) = item else {
            out.push(item);
            return Ok(());
        };
        let known = match self.streams.get(&*frame.stream_id) {
            Some(Ok(plan)) => Arc::ptr_eq(&plan.layout_in, &frame.layout) || *plan.layout_in == *frame.layout,
            _ => false,
        };
        if !known {
            let plan = self.plan(&frame.layout);
            self.streams.insert(frame.stream_id.clone(), plan);
        }
        let plan = match self.streams.get_mut(&*frame.stream_id) {
            Some(Ok(plan)) => plan,
            Some(Err(reason)) => {
                let reason = reason.clone();
                return Err(Rejected::boxed(Item::Frame(frame), reason));
            }
            None => {
                return Err(Rejected::boxed(
                    Item::Frame(frame),
                    "montage stream state missing",
                ))
            }
        };
        if known && frame.discontinuity {
            if let Some((_, means)) = &mut plan.dc {
                means.iter_mut().for_each(|m| *m = None);
            }
        }
        let counts = frame.counts();
        let n = plan.inputs.first().map_or(0, |&i| counts[i] as usize);
        if plan.inputs.iter().any(|&i| counts[i] as usize != n) {
            return Err(Rejected::boxed(
                Item::Frame(frame),
                "montage channels differ in sample count",
            ));
        }
        self.offsets.clear();
        self.offsets.extend(counts.iter().scan(0usize, |next, &c| {
            let start = *next;
            *next += c as usize;
            Some(start)
        }));
        let outputs = plan.weights.nrows();
        let mut out_counts = std::mem::take(&mut self.spare_counts);
        let mut samples = std::mem::take(&mut self.spare_samples);
        out_counts.clear();
        out_counts.resize(outputs, n as u32);
        samples.clear();
        samples.resize(outputs * n, 0.0);
        let input = frame.samples();
        for (r, y) in samples.chunks_exact_mut(n.max(1)).take(outputs).enumerate() {
            let mut y = ArrayViewMut1::from(y);
            for (column, &w) in plan.weights.row(r).iter().enumerate() {
                if w != 0.0 {
                    let start = self.offsets[plan.inputs[column]];
                    y.scaled_add(w, &ArrayView1::from(&input[start..start + n]));
                }
            }
            if let Some((a, means)) = &mut plan.dc {
                let mut mean = means[r];
                for v in y.iter_mut() {
                    let x = f64::from(*v);
                    let m = match mean {
                        Some(m) => m + *a * (x - m),
                        None => x,
                    };
                    mean = Some(m);
                    *v = (x - m) as f32;
                }
                means[r] = mean;
            }
            let (g, o) = (plan.gain[r], plan.offset[r]);
            if g != 1.0 || o != 0.0 {
                y.iter_mut().for_each(|v| *v = *v * g + o);
            }
        }
        match frame.reshape(plan.layout_out.clone(), out_counts, samples) {
            Ok((old_counts, old_samples)) => {
                self.spare_counts = old_counts;
                self.spare_samples = old_samples;
            }
            Err(_) => {
                return Err(Rejected::boxed(
                    Item::Frame(frame),
                    "montage produced an inconsistent frame",
                ));
            }
        }
        out.push(Item::Frame(frame));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, Modality};

    fn frame(names: &[&str], channels: &[Vec<f32>]) -> Frame {
        let layout = Arc::new(ChannelLayout::new(
            names
                .iter()
                .map(|n| ChannelSpec {
                    name: n.to_string(),
                    unit: "uV".into(),
                    sample_rate: 100.0,
                })
                .collect(),
        ));
        let counts = channels.iter().map(|c| c.len() as u32).collect();
        Frame::new("s".into(), Modality::Eeg, layout, 0, 0, counts, channels.concat()).unwrap()
    }

    fn run(config: MontageConfig, input: Frame) -> Result<Frame, Box<Rejected>> {
        let mut montage = Montage::new(config);
        let mut out = Output::default();
        montage.process(Item::Frame(input), &mut out)?;
        let produced = out.drain().next();
        match produced {
            Some(Item::Frame(f)) => Ok(f),
            _ => panic!("a frame"),
        }
    }

    fn plain(kind: MontageKind) -> MontageConfig {
        MontageConfig {
            kind,
            gain: vec![],
            offset: vec![],
            dc_time_constant_s: None,
        }
    }

    #[test]
    fn linked_reference_bipolar_gain_and_offset() {
        let input = frame(
            &["C3", "A1", "A2"],
            &[vec![10.0, 20.0], vec![2.0, 4.0], vec![4.0, 8.0]],
        );
        let linked = run(
            plain(MontageKind::Linked(vec!["A1".into(), "A2".into()])),
            input.clone(),
        )
        .unwrap();
        assert_eq!(linked.layout.channels.len(), 1);
        assert_eq!(linked.channel(0), &[7.0, 14.0]);
        let mut config = plain(MontageKind::Bipolar(vec![("C3".into(), "A1".into())]));
        config.gain = vec![("C3-A1".into(), 2.0)];
        config.offset = vec![("C3-A1".into(), 1.0)];
        let bipolar = run(config, input.clone()).unwrap();
        assert_eq!(bipolar.layout.channels[0].name, "C3-A1");
        assert_eq!(bipolar.channel(0), &[17.0, 33.0]);
        let missing = run(
            plain(MontageKind::Bipolar(vec![("C4".into(), "A1".into())])),
            input,
        )
        .unwrap_err();
        assert_eq!(missing.reason, "frame lacks a channel named in montage.pairs");
    }

    #[test]
    fn double_banana_matches_modern_and_dotted_names() {
        let names = [
            "Fp1.", "Fp2.", "F3..", "F4..", "C3..", "C4..", "P3..", "P4..", "O1..", "O2..", "F7..", "F8..",
            "T7..", "T8..", "P7..", "P8..", "Fz..", "Cz..", "Pz..",
        ];
        let channels: Vec<Vec<f32>> = (0..names.len()).map(|i| vec![i as f32 * i as f32]).collect();
        let out = run(plain(MontageKind::DoubleBanana), frame(&names, &channels)).unwrap();
        assert_eq!(out.channel_count(), 18);
        assert_eq!(out.layout.channels[1].name, "F7-T3");
        // F7 is index 10, T7 (= T3) index 12.
        assert_eq!(out.channel(1), &[100.0 - 144.0]);
    }

    #[test]
    fn dc_removal_takes_out_a_constant_offset() {
        let input = frame(&["x"], &[vec![50.0; 400]]);
        let mut config = plain(MontageKind::Matrix(vec![("x2".into(), vec![("x".into(), 2.0)])]));
        config.dc_time_constant_s = Some(0.5);
        let out = run(config, input).unwrap();
        assert!(out.channel(0).iter().all(|&v| v.abs() < 1e-9));
    }
}
