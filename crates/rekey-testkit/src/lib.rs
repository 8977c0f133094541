//! Test helpers shared by every rekey crate: the store conformance suite and
//! access to the real servers the project's scripts start.
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod env;
