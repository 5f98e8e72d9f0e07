//! Sandboxed executor. (Stub: being written.)
