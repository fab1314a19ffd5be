//! Per-VM root context: compiles the configuration and creates HTTP contexts.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::host;
use super::http::HttpFilter;
use super::metrics::Metrics;
use crate::config::Config;
use crate::forward::ProviderKeys;

/// What every HTTP context on this VM shares.
pub struct Shared {
    pub config: Config,
    pub keys: ProviderKeys,
    pub metrics: Metrics,
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match Config::parse(&host::plugin_configuration()) {
            Ok(config) => {
                let keys = ProviderKeys::from_env(|name| std::env::var(name).ok());
                log::info!("llm_gateway {} configured", env!("CARGO_PKG_VERSION"));
                self.shared = Some(Rc::new(Shared {
                    config,
                    keys,
                    metrics: Metrics::define(),
                }));
                true
            }
            Err(e) => {
                log::error!("{e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(HttpFilter::new(context_id, shared)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
