//! Policies and keys: the model, and the store the evaluator reads.

pub mod model;
