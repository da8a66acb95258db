//! (module sheet: being written)
