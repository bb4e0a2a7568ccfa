//! Nothing to run: this crate only names dependencies with the features every grouplab build
//! needs (see `hack/Cargo.toml` and `xtask/src/hack.rs`).
