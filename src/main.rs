//! The `usher` binary: all the work is in the library; this only hands it the command line.

fn main() -> std::process::ExitCode {
    usher::cli::run()
}
