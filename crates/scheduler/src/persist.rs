//! Persistence: TODO
