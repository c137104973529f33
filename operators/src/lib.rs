//! Pure, synchronous signal transforms for Signal Fabric, and the data model
//! they work on.
//!
//! Nothing here does I/O or async work: an operator takes an [`Item`] and
//! pushes zero or more items to an [`Output`]. The engine owns the tasks,
//! queues and acknowledgements around it.

pub mod basic;
pub mod cardio;
pub mod codec;
pub mod deid;
pub mod dp;
pub mod features;
pub mod filters;
pub mod frame;
pub mod montage;
pub mod operator;
pub mod privacy;
pub mod record;

pub use frame::{ChannelLayout, ChannelSpec, Frame, FrameError, Metadata, Modality};
pub use operator::{Item, ItemKind, Operator, Output, Rejected};
pub use record::{Names, Record, Values};
