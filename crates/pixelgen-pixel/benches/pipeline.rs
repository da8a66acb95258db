//! Criterion benchmarks (filled in with the pipeline).
fn main() {}
