//! Text steps of the official Spider evaluator. (Stub: being written.)
