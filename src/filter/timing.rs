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
    let allocs = counting::allocations();
    let out = f();
    let allocs = counting::allocations() - allocs;
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

/// The global allocator of the callback-timing build: the system one, with
/// its allocations counted (each `alloc` and `realloc`).
#[cfg(feature = "callback-timing")]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU64, Ordering};

    static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

    pub fn allocations() -> u64 {
        ALLOCATIONS.load(Ordering::Relaxed)
    }

    struct Counting;

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    // SAFETY: every call is passed unchanged to `System`, which upholds the contract.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's contract for `alloc`, passed on.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract for `dealloc`, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's contract for `realloc`, passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}
