//! What a deployment relies on: the operator listener apart from the public one, the binaries'
//! command lines, secrets from files, the local run script's variables, demo data with access, and the
//! doctor that finds and repairs stale access.

mod binaries;
mod dev_env;
mod doctor;
mod ops_listener;
mod roles;
