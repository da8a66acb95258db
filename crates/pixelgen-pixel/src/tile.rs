//! (module tile: being written)
