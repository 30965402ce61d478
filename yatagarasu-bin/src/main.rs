//! The `yatagarasu` binary. The YAML configuration front end is being built (issue 3); today the
//! proxy runs embedded (see the `yatagarasu` library and `examples/quickstart.rs`).

fn main() {
    eprintln!(
        "yatagarasu {}: the config-file front end (`yatagarasu --config FILE`) is not built yet.\n\
         Run the demo with: cargo run -p yatagarasu-examples --example quickstart",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
