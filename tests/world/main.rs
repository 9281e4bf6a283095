//! The test suite, one binary: the tests of the product against the local test world
//! (`scripts/testenv up`) and the ones that need no world, one module per subject. One
//! binary compiles and links `support/` once; the tests in it share the world through
//! turns ([`support::alone`] for the few that change it for everyone) and PowerDNS writes
//! through one lock ([`support::pdns_writing`]).

mod support;

mod apply;
mod apply_cli;
mod bad_input;
mod cli_extras;
mod dns;
mod faults;
mod flux_chain;
mod health;
mod kubelet;
mod render_cli;
mod render_snapshots;
mod render_world;
mod repair;
mod ride_out;
mod saturation;
mod schema;
mod security;
mod spec_errors;
mod status;
mod testworld;
mod wait_cli;
mod webhook;
