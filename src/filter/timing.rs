//! Callback timing for `bench/profile.py --timing`.

/// Runs one callback; in a build with the `callback-timing` feature (for
/// `bench/profile.py --timing`), also adds its wall time in ns to the counter
/// `llm_gateway.timing.<name>_ns` and the hostcalls it made to
/// `llm_gateway.timing.<name>_hostcalls`. Without the feature it is only `f()`.
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
    /// A callback's counters: its nanoseconds and its hostcalls.
    type Ids = (Option<u32>, Option<u32>);
    thread_local! {
        static IDS: RefCell<HashMap<&'static str, Ids>> = RefCell::new(HashMap::new());
    }
    let started = host::now_ns();
    let calls = host::hostcalls_made();
    let out = f();
    let calls = host::hostcalls_made() - calls;
    let took = host::now_ns().saturating_sub(started);
    let (ns, count) = IDS.with(|ids| {
        *ids.borrow_mut().entry(name).or_insert_with(|| {
            (
                host::define_counter(&format!("llm_gateway.timing.{name}_ns")),
                host::define_counter(&format!("llm_gateway.timing.{name}_hostcalls")),
            )
        })
    });
    host::increment(ns, took as i64);
    host::increment(count, calls as i64);
    out
}
