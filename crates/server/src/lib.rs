//! The MD Creator server: reads configuration, builds the adapters, serves HTTP.

pub mod collab;
pub mod config;
pub mod extract;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod upgrade;

pub use config::Settings;
pub use startup::Application;
