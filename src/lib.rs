//! paperboy: emails each subscriber a daily digest of new research papers matched to their
//! interests. See ARCHITECTURE.md for the map of the code.

pub mod bounces;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod digest;
pub mod embed;
pub mod eval;
pub mod jobs;
pub mod links;
pub mod mail;
pub mod matching;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod reload;
pub mod shutdown;
pub mod sources;
pub mod store;
pub mod web;
