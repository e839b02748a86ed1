//! Integration tests: real HTTP against a gateway bound on port 0.

mod bad_input;
mod cli;
mod config_validation;
mod elyssa;
mod gateway;
mod helpers;
mod lockout;
mod memory;
mod oauth_form;
mod openapi;
mod payhub;
mod pixyle;
mod process;
mod proxy;
mod redis;
mod redis_server;
mod sixth_vendor;
mod slow_clients;
mod store_suite;
mod tokens;
mod tools;
mod upstream;
mod visualyze;
