//! The root context: configures the worker's flow and forwards its timer,
//! callout answers and shutdown to it.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::host::{self, WasmHost};
use super::http::HttpFilter;
use crate::config::Config;
use crate::flow::root::{Root as FlowRoot, TICK_MS};
use crate::flow::Worker;
use crate::forward::ProviderKeys;

#[derive(Default)]
pub struct Root {
    flow: Option<FlowRoot>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        if let Some(flow) = self.flow.as_mut() {
            if flow.on_callout(&WasmHost, token, body_size) {
                host::done();
            }
        }
    }

    fn on_done(&mut self) -> bool {
        self.flow.as_mut().is_none_or(|f| f.on_done(&WasmHost))
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match Config::parse(&host::plugin_configuration()) {
            Ok(config) => {
                let keys = ProviderKeys::from_env(|name| std::env::var(name).ok());
                log::info!("llm_gateway {} configured", env!("CARGO_PKG_VERSION"));
                if let Some(warning) = config.cost_controls.startup_warning() {
                    log::warn!("{warning}");
                }
                host::define_metrics();
                host::set_tick_period_ms(TICK_MS);
                let flow = FlowRoot::new(Worker::new(config, keys));
                flow.started(&WasmHost);
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
        let flow = self.flow.as_ref()?;
        let (worker, registry) = (flow.worker.clone(), flow.registry.clone());
        super::timing::timed("create", || {
            Some(Box::new(HttpFilter::new(context_id, worker, registry)) as Box<dyn HttpContext>)
        })
    }

    fn on_tick(&mut self) {
        if let Some(flow) = self.flow.as_mut() {
            flow.tick(&WasmHost);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
