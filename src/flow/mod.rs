//! The request flow: everything the filter does with a request, from its
//! headers to its `$ai_generation` event, as pure code behind the [`Host`]
//! trait. The proxy-wasm adapter (`crate::filter`) only forwards Envoy's
//! callbacks here and implements [`Host`] with hostcalls; tests drive the same
//! code with a fake host.
//!
//! One file per stage: [`auth`], [`limits`], [`upstream`], [`response`],
//! [`capture`]; [`request`] is the per-request state machine that runs them,
//! [`root`] the worker's timer and queues, [`worker`] what a worker's requests
//! share, [`registry`] which request waits for what.

pub mod attempt;
pub mod auth;
pub mod capture;
pub mod count;
pub mod delivery;
pub mod failover;
pub mod host;
pub mod leases;
pub mod limits;
pub mod pace;
pub mod prices;
pub mod registry;
pub mod request;
pub mod response;
pub mod root;
pub mod spend;
pub mod upstream;
pub mod worker;

#[cfg(test)]
mod tests;

pub use host::{Action, Host, Metric};
pub use request::Request;
pub use root::Root;
pub use worker::Worker;
