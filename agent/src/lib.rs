//! The agent is the `plantmeter` binary (`src/main.rs`). This library is empty: it exists because a
//! package can turn on another package's features only through its library, and the end-to-end
//! tests (tests/) and this package's own tests turn on the `demo` feature of the binary that way
//! (see the `[features]` of Cargo.toml).
