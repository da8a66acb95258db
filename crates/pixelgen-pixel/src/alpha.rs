//! (module alpha: being written)
