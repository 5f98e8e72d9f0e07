//! The embedded default dataset. (Stub: being written.)
