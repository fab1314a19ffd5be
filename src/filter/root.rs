//! The root context: configures the worker's flow and forwards its timer,
//! callout answers and shutdown to it.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::host::{self, WasmHost};
use super::http::{AttemptFilter, HttpFilter};
use crate::config::Config;
use crate::failover::relay::Relay;
use crate::flow::pace::FULL_TICK_MS;
use crate::flow::root::Root as FlowRoot;
use crate::flow::Worker;
use crate::forward::ProviderKeys;

thread_local! {
    /// One per VM: the downstream filter's root and the upstream filter's root
    /// (same vm_id, code and vm_config, so the same VM per worker) share it.
    static RELAY: Rc<RefCell<Relay>> = Rc::default();
}

fn relay() -> Rc<RefCell<Relay>> {
    RELAY.with(Rc::clone)
}

/// A root context: the gateway (the HTTP filter chain's instance), or the
/// upstream filter on the provider clusters (plugin config `{"role": "upstream"}`).
#[derive(Default)]
pub struct Root {
    flow: Option<FlowRoot>,
    upstream: bool,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        if let Some(flow) = self.flow.as_mut() {
            if flow.on_callout(&WasmHost::default(), token, body_size) {
                host::done();
            }
        }
    }

    fn on_done(&mut self) -> bool {
        let done = self.flow.as_mut().is_none_or(|f| f.on_done(&WasmHost::default()));
        host::flush_metrics();
        done
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let configuration = host::plugin_configuration();
        if crate::failover::is_upstream_role(&configuration) {
            log::info!("llm_gateway {} configured as the upstream (failover) filter", env!("CARGO_PKG_VERSION"));
            self.upstream = true;
            return true;
        }
        match Config::parse(&configuration) {
            Ok(config) => {
                let keys = ProviderKeys::from_env(|name| std::env::var(name).ok());
                log::info!("llm_gateway {} configured", env!("CARGO_PKG_VERSION"));
                if let Some(warning) = config.cost_controls.startup_warning() {
                    log::warn!("{warning}");
                }
                host::define_metrics();
                // Slow until work is queued for the tick (`flow::pace`).
                host::set_tick_period_ms(FULL_TICK_MS);
                let flow = FlowRoot::new(Worker::new(config, keys).with_relay(relay()));
                flow.started(&WasmHost::default());
                self.flow = Some(flow);
                true
            }
            Err(e) => {
                log::error!("{e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.upstream {
            return Some(Box::new(AttemptFilter::new(relay())));
        }
        let flow = self.flow.as_ref()?;
        let (worker, registry) = (flow.worker.clone(), flow.registry.clone());
        super::timing::timed("create", || {
            Some(Box::new(HttpFilter::new(context_id, worker, registry)) as Box<dyn HttpContext>)
        })
    }

    fn on_tick(&mut self) {
        if let Some(flow) = self.flow.as_mut() {
            // The calls' accounting runs here, so a tick that has calls to account
            // for is timed into the per-request budget; an idle one is no request's cost.
            let full = if flow.has_calls_to_account() {
                super::timing::timed("tick", || flow.on_tick(&WasmHost::default()))
            } else {
                flow.on_tick(&WasmHost::default())
            };
            if full {
                host::flush_metrics();
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
