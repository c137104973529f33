//! Shared helpers of the bench binaries.
