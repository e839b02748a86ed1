//! polyauth: a multi-tenant authentication gateway that speaks other
//! vendors' wire formats over one token and credential engine.

pub mod access;
pub mod cli;
pub mod config;
pub mod cors;
pub mod dialect;
pub mod duration;
pub mod engine;
pub mod file_error;
pub mod http;
pub mod meters;
pub mod openapi;
pub mod reserved;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use startup::Application;
