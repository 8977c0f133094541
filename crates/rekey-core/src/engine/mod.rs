//! The rotation engine (being written).
