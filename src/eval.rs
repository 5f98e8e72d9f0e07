//! Execution accuracy. (Stub: being written.)
