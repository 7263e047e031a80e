//! The `usher` binary: all the work is in the library; this only hands it the command line.

/// mimalloc: a decision allocates and frees a few dozen small blocks, and glibc's malloc spends
/// several per cent of a fresh decision's CPU on them (`bench/NOTES.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    usher::cli::run()
}
