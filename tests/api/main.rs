//! Integration tests: real HTTP against a gateway bound on port 0.

mod cli;
mod config_validation;
mod gateway;
mod helpers;
mod pixyle;
mod process;
mod tokens;
mod visualyze;
