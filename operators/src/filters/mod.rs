//! Causal IIR filters: Butterworth low-, high-, band-pass and band-stop of
//! any order, and mains notches, as cascades of second-order sections.
//!
//! * [`design`]: coefficients in f64, equal to SciPy's to rounding.
//! * [`sos`]: the runtime cascade (f64 state, AVX2 across channels).
//! * [`IirFilter`]: the operator; see `docs/filters.md` for parameters, gap
//!   behaviour and measured speed.

pub mod design;
pub mod sos;

mod operator;

pub use operator::{ChannelSelection, IirDesign, IirFilter};
