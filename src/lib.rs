//! catalyst-bootstrap renders, applies and proves healthy the bootstrap kit of an OpenOva
//! Sovereign. The library is what the binary runs; tests call it directly.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod connect;
pub mod dns;
pub mod exit;
pub mod external_dns;
pub mod health;
#[cfg(test)]
mod recorded;
pub mod render;
pub mod repair;
pub mod report;
pub mod retry;
pub mod spec;
pub mod status;
