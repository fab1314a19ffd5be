//! The host adapter: proxy-wasm contexts that hand Envoy's callbacks to the
//! request flow (`crate::flow`) and the one implementation of its `Host`.

mod abi;
#[cfg(feature = "fault-injection")]
mod fault;
mod host;
mod http;
mod root;
mod timing;

pub fn start() {
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::Root::default()));
}
