//! What the cardiac operators share: per-stream state built from the
//! stream's channel layout, restarted on a discontinuity, and the records
//! they emit.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{ChannelLayout, Frame, Item, Names, Output, Record, Rejected, Values};

/// One operator's state for one stream.
pub(super) trait StreamState: Sized {
    /// The operator's settings the state is built from.
    type Config: ?Sized;

    /// The state for a stream with `layout` whose first sample is at
    /// `start_ns`; an error (no PHI) when the layout lacks what the
    /// operator needs.
    fn build(config: &Self::Config, layout: &ChannelLayout, start_ns: i64) -> Result<Self, String>;

    /// Starts again at sample 0 at `anchor_ns`, forgetting everything
    /// before (after a discontinuity).
    fn restart_at(&mut self, anchor_ns: i64);
}

/// A stream's state with the layout it was built for (or why it could not
/// be built).
type Built<S> = (Arc<ChannelLayout>, Result<S, String>);

/// States by stream id; a stream whose layout changes gets a new one.
#[derive(Debug)]
pub(super) struct Streams<S> {
    map: HashMap<Arc<str>, Built<S>>,
}

impl<S: StreamState> Streams<S> {
    pub(super) fn new() -> Self {
        Self { map: HashMap::new() }
    }

    /// `frame`'s stream state: built on first sight or a new layout,
    /// restarted on a discontinuity; the build error when it could not be
    /// built.
    pub(super) fn state(&mut self, config: &S::Config, frame: &Frame) -> Result<&mut S, String> {
        let same = |(layout, _): &Built<S>| Arc::ptr_eq(layout, &frame.layout) || **layout == *frame.layout;
        let known = self.map.get(&*frame.stream_id).is_some_and(same);
        if !known {
            let state = S::build(config, &frame.layout, frame.start_ns);
            self.map
                .insert(frame.stream_id.clone(), (frame.layout.clone(), state));
        }
        let (_, state) = self
            .map
            .get_mut(&*frame.stream_id)
            .ok_or_else(|| "stream state missing".to_string())?;
        let state = state.as_mut().map_err(|e| e.clone())?;
        if known && frame.discontinuity {
            state.restart_at(frame.start_ns);
        }
        Ok(state)
    }
}

/// An operator step over frames: other items pass through, a step error
/// rejects the frame.
pub(super) fn process_frames(
    item: Item,
    out: &mut Output,
    step: impl FnOnce(&Frame, &mut Output) -> Result<(), String>,
) -> Result<(), Box<Rejected>> {
    let Item::Frame(frame) = item else {
        out.push(item);
        return Ok(());
    };
    step(&frame, out).map_err(|reason| Rejected::boxed(Item::Frame(frame), reason))
}

/// A record of `frame`'s stream spanning `[start_ns, end_ns]`.
pub(super) fn record(
    frame: &Frame,
    kind: &Arc<str>,
    (start_ns, end_ns): (i64, i64),
    names: &Names,
    values: impl IntoIterator<Item = f64>,
) -> Item {
    Item::Record(Record {
        stream_id: frame.stream_id.clone(),
        sequence: frame.sequence,
        kind: kind.clone(),
        start_ns,
        end_ns,
        values: Values::new(names.clone(), values.into_iter().collect()),
        labels: Vec::new(),
    })
}
