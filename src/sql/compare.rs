//! Result comparison. (Stub: being written.)
