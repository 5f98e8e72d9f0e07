//! The paper's six query types. (Stub: being written.)
