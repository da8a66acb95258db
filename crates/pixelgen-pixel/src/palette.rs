//! (module palette: being written)
