fn main() -> std::process::ExitCode {
    catalyst_bootstrap::cli::main()
}
