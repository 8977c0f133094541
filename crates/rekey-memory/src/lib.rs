//! In-memory secret store (being written).
