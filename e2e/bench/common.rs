//! What both benchmarks print first.

/// Which build made the figures. Figures from a debug build are slower
/// than a release build's: a target met there is met with room to spare.
pub fn print_build() {
    println!(
        "build: {}",
        if cfg!(debug_assertions) {
            "debug, unoptimized (CI reuses the test build); `cargo bench` builds optimized"
        } else {
            "release (optimized)"
        }
    );
}
