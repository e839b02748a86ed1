use clap::Parser;

/// jemalloc: its per-thread caches and size classes keep the verify path out
/// of the allocator's slow paths with a thousand tenants' apps built (glibc's
/// heaps, fragmented by them, cost verify 15 %), and it hands freed memory
/// (argon2's dummy hashes at startup) back to the system within seconds.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = polyauth::cli::Cli::parse();
    match polyauth::cli::run(cli).await {
        Ok(status) => std::process::ExitCode::from(status),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
