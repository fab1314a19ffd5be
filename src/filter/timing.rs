//! Callback timing for `bench/profile.py --timing`.

/// Runs one callback; in a build with the `callback-timing` feature (for
/// `bench/profile.py --timing`), also adds its wall time in ns to the counter
/// `llm_gateway.timing.<name>_ns`, the hostcalls it made to
/// `llm_gateway.timing.<name>_hostcalls` and the heap allocations it made to
/// `llm_gateway.timing.<name>_allocs`. Without the feature it is only `f()`.
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
    /// A callback's counters: its nanoseconds, its hostcalls, its allocations.
    type Ids = (Option<u32>, Option<u32>, Option<u32>);
    thread_local! {
        static IDS: RefCell<HashMap<&'static str, Ids>> = RefCell::new(HashMap::new());
    }
    let started = host::now_ns();
    let calls = host::hostcalls_made();
    let allocs = crate::alloc_count::allocations();
    let out = f();
    let allocs = crate::alloc_count::allocations() - allocs;
    let calls = host::hostcalls_made() - calls;
    let took = host::now_ns().saturating_sub(started);
    let (ns, count, allocated) = IDS.with(|ids| {
        *ids.borrow_mut().entry(name).or_insert_with(|| {
            (
                host::define_counter(&format!("llm_gateway.timing.{name}_ns")),
                host::define_counter(&format!("llm_gateway.timing.{name}_hostcalls")),
                host::define_counter(&format!("llm_gateway.timing.{name}_allocs")),
            )
        })
    });
    host::increment(ns, took as i64);
    host::increment(count, calls as i64);
    host::increment(allocated, allocs as i64);
    out
}

/// The callback-timing build counts its heap allocations.
#[cfg(feature = "callback-timing")]
#[global_allocator]
static GLOBAL: crate::alloc_count::Counting = crate::alloc_count::Counting;
