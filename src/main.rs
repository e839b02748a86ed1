use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    polyauth::startup::return_large_blocks_to_the_os();
    let cli = polyauth::cli::Cli::parse();
    match polyauth::cli::run(cli).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
