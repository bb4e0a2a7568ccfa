//! Empty: it makes the hack's build-dependencies host dependencies, so that their features are
//! unified with those of the build scripts and procedural macros of the other crates.
fn main() {}
