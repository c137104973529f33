//! Wire format v1.
