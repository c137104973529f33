//! Readers for clinical recording formats.
