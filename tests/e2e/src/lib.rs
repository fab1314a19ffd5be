//! End-to-end harness: a real Envoy loading the built filter, real Redis and
//! webdis, a mock provider and a PostHog capture sink; for the fleet tests, a
//! Redis Cluster and the bridge to it.
pub mod calls;
pub mod catalog;
pub mod client;
pub mod cluster;
pub mod fault_proxy;
pub mod http1;
pub mod mock;
pub mod record;
pub mod sigv4;
pub mod sink;
pub mod stack;
