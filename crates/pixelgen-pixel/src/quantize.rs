//! (module quantize: being written)
