//! The host adapter: proxy-wasm contexts that feed host events to the pure
//! modules and carry out what they decide.

mod call;
mod check;
mod delivery;
mod host;
mod http;
mod metrics;
mod prices;
mod root;
mod spend;

pub fn start() {
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::Root::default()));
}
