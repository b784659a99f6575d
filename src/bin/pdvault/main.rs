//! The `pdvault` operator CLI.
fn main() {}
