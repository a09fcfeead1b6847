//! The allocator, and giving memory back once a policy has been replaced.
//!
//! mimalloc rather than the system's: loading the 100,000-workload policy spent 31 % of
//! its time in glibc's malloc (consolidating fastbins between the parse of one file and
//! the next), 1.23–1.52 s against 0.73–1.09 s with mimalloc. And glibc kept each replaced
//! snapshot's memory: after four reloads the process held 380 MiB for a 145 MiB policy,
//! because a snapshot is built on one thread and freed by another (bench/README.md).
//!
//! Each policy loaded from files is built in a heap of its own ([`Heap`]), and its
//! files are parsed in another that lives only while it loads: the policy's blocks share
//! no page with the next policy's nor with the parse's garbage, so once it is dropped its
//! pages are empty and go back to the system whole. Built in the one process heap, a reload's blocks and
//! the parse garbage around them filled the holes the previous policy had left, pages
//! stayed partly used, and the process grew by a third over 30 reloads of the 100k
//! policy (bench/README.md, "Memory over reloads").
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::null_mut;

use libmimalloc_sys as mi;

/// mimalloc, with a heap of the caller's choosing while one is set on the thread.
pub struct Allocator;

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// `mi_option_allow_thp` in mimalloc 3's `mimalloc.h` (libmimalloc-sys names no constant
/// for it).
#[cfg(target_os = "linux")]
const MI_OPTION_ALLOW_THP: mi::mi_option_t = 43;

/// Keeps mimalloc from asking for transparent huge pages. Where the kernel grants them
/// on `madvise` (Debian's default), a policy's pages were backed 2 MiB at a time and the
/// process held 12 MiB more than it used: 138 against 125 MiB serving the 100k policy
/// (bench/README.md). Run from `.init_array`, before the first allocation creates the
/// arena whose pages the option decides: `main` is too late, the runtime allocates first.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static NO_HUGE_PAGES: extern "C" fn() = {
    extern "C" fn no_huge_pages() {
        // SAFETY: sets one of mimalloc's options; takes no pointer.
        unsafe { mi::mi_option_set(MI_OPTION_ALLOW_THP, 0) }
    }
    no_huge_pages
};

thread_local! {
    /// The heap this thread allocates from; null: mimalloc's own.
    static CURRENT: Cell<*mut mi::mi_heap_t> = const { Cell::new(null_mut()) };
}

fn current() -> *mut mi::mi_heap_t {
    // During a thread's exit, after its locals are gone: mimalloc's own heap.
    CURRENT.try_with(Cell::get).unwrap_or(null_mut())
}

// SAFETY: every call goes to mimalloc with the layout's size and alignment, as the
// `mimalloc` crate's own allocator does; `mi_free` and the reallocations find a block's
// heap from the block itself, whichever heap it came from.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = current();
        unsafe {
            if heap.is_null() {
                mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            } else {
                mi::mi_heap_malloc_aligned(heap, layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let heap = current();
        unsafe {
            if heap.is_null() {
                mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            } else {
                mi::mi_heap_zalloc_aligned(heap, layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let heap = current();
        unsafe {
            if heap.is_null() {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            } else {
                mi::mi_heap_realloc_aligned(heap, ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

/// A heap of mimalloc's: what is allocated inside [`Heap::run`] comes from it.
/// Dropped, it hands whatever is still alive in it (a value a later policy shares, a log
/// buffer that grew during a load) to mimalloc's own heap.
pub struct Heap(*mut mi::mi_heap_t);

// SAFETY: mimalloc's heaps (version 3) may be allocated from and deleted on any thread.
unsafe impl Send for Heap {}
unsafe impl Sync for Heap {}

impl Heap {
    pub fn new() -> Self {
        // SAFETY: takes no argument; a null heap (out of memory) leaves allocations on
        // mimalloc's own heap.
        Self(unsafe { mi::mi_heap_new() })
    }

    /// Runs `work` with this thread's allocations going to this heap.
    pub fn run<T>(&self, work: impl FnOnce() -> T) -> T {
        /// Puts the thread's heap back however `work` ends, a panic included.
        struct Restore(*mut mi::mi_heap_t);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|current| current.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|current| current.replace(self.0)));
        work()
    }
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the heap came from `mi_heap_new` and is deleted once; `run` has
            // returned, so no thread allocates from it. Live blocks move to mimalloc's
            // main heap.
            unsafe { mi::mi_heap_delete(self.0) }
        }
    }
}

impl std::fmt::Debug for Heap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Heap")
    }
}

/// Returns to the operating system the memory freed so far, above all a replaced
/// snapshot's. Takes a few milliseconds; called on the loading thread, never on a
/// request's.
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointer and may be called from any thread at any
    // time; it only walks mimalloc's own free lists.
    unsafe { mi::mi_collect(true) }
}
