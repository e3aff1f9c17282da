//! `segattn`: the desktop app (no arguments) or a command-line tool.

use segattn::cli::{self, Invocation};

/// Large blocks on cache lines, for the AMX products' outputs (`segattn::alloc::LineAligned`).
#[global_allocator]
static ALLOCATOR: segattn::alloc::LineAligned = segattn::alloc::LineAligned;

fn main() {
    // candle asks for the thread count on every matmul and re-reads /proc/cpuinfo unless this
    // is set; fix it once, before any thread pool starts.
    let threads = match std::env::var("RAYON_NUM_THREADS") {
        Ok(n) => n.parse().unwrap_or(1),
        Err(_) => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            n
        }
    };
    segattn::alloc::tune_for_inference();
    segattn::runtime::init_compute_pool(threads);
    let result = match cli::parse() {
        Invocation::App(options) => segattn::app::run(*options),
        Invocation::Command(command) => cli::run(*command),
    };
    if let Err(err) = result {
        eprintln!("error: {}", segattn::error::one_line(&err));
        std::process::exit(1);
    }
}
