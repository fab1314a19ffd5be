//! Callback timing for `bench/profile.py --timing`.

/// Runs one callback; in a build with the `callback-timing` feature (for
/// `bench/profile.py --timing`), also adds its wall time in ns to the counter
/// `llm_gateway.timing.<name>_ns`. Without the feature it is only `f()`.
#[cfg(not(feature = "callback-timing"))]
#[inline(always)]
pub fn timed<T>(_name: &'static str, f: impl FnOnce() -> T) -> T {
    f()
}

#[cfg(feature = "callback-timing")]
pub fn timed<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    use super::host;
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static IDS: RefCell<HashMap<&'static str, Option<u32>>> = RefCell::new(HashMap::new());
    }
    let started = host::now_ns();
    let out = f();
    let took = host::now_ns().saturating_sub(started);
    let id = IDS.with(|ids| {
        *ids.borrow_mut().entry(name).or_insert_with(|| host::define_counter(&format!("llm_gateway.timing.{name}_ns")))
    });
    host::increment(id, took as i64);
    out
}
