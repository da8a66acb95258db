//! (module cleanup: being written)
