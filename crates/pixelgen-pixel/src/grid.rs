//! (module grid: being written)
