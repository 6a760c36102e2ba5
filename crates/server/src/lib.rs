//! The UserJourneys server: configuration, startup, the HTTP layer (REST API, SDK API and
//! dashboard) and the application services they share.

#![forbid(unsafe_code)]

pub mod app_key;
pub mod backup;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
mod http;
pub mod services;
pub mod startup;
mod state;
pub mod telemetry;
