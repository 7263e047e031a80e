//! Policies and keys: the model, the lookup order, building them from the config, and the store.

pub mod build;
pub mod lookup;
pub mod model;
pub mod publish_rule;
pub mod session_rules;
pub mod store;
