//! Cutting continuous channels into frames of a fixed duration.
//!
//! Frame `k` covers `[start + k·d, start + (k+1)·d)`. Channel `c` at rate
//! `r` contributes the samples whose index `i` satisfies
//! `k·d·r <= i < (k+1)·d·r`, i.e. indices from `ceil(k·d·r)`. Counting
//! boundaries from the stream start (not adding per-frame counts) means
//! non-integer products such as 40 ms × 249.89 Hz never drift: over any
//! stretch a channel gets exactly its rate's worth of samples.

/// Index of the first sample of channel rate `rate_hz` at or after
/// `frame_index · frame_ns`.
pub fn sample_boundary(frame_index: u64, frame_ns: u64, rate_hz: f64) -> u64 {
    ceil_index(frame_index as f64 * frame_ns as f64 * rate_hz / 1e9)
}

/// The first sample index at or after the (fractional) position `exact`.
/// Products like 0.04 × 250 come out as 10.000000000000002; positions within
/// rounding noise of an integer count as that integer.
pub fn ceil_index(exact: f64) -> u64 {
    let nearest = exact.round();
    if (exact - nearest).abs() < 1e-9 * nearest.max(1.0) {
        nearest.max(0.0) as u64
    } else {
        exact.ceil().max(0.0) as u64
    }
}

/// Samples of channel rate `rate_hz` in frame `frame_index`.
pub fn samples_in_frame(frame_index: u64, frame_ns: u64, rate_hz: f64) -> u32 {
    let count =
        sample_boundary(frame_index + 1, frame_ns, rate_hz) - sample_boundary(frame_index, frame_ns, rate_hz);
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_products_are_exact() {
        assert_eq!(samples_in_frame(0, 40_000_000, 250.0), 10);
        assert_eq!(samples_in_frame(1, 40_000_000, 250.0), 10);
        assert_eq!(
            samples_in_frame(12345, 40_000_000, 256.0) + samples_in_frame(12346, 40_000_000, 256.0),
            21
        );
    }

    #[test]
    fn non_integer_rates_do_not_drift() {
        let frame_ns = 40_000_000;
        let rate = 249.89;
        let frames = 25 * 3600; // one hour of 40 ms frames
        let total: u64 = (0..frames)
            .map(|k| u64::from(samples_in_frame(k, frame_ns, rate)))
            .sum();
        let expected = (3600.0 * rate).ceil() as u64;
        assert_eq!(total, expected);
        assert!((0..frames).all(|k| (9..=10).contains(&samples_in_frame(k, frame_ns, rate))));
    }
}
