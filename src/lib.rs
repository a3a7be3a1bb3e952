//! fake-metadata makes a Linux VM look like an EC2 instance to the software inside it: it
//! serves EC2's instance metadata API exactly as EC2 does, and (as root) routes
//! `169.254.169.254` to itself.
//!
//! The pure core ([`imds::respond`], [`metadata`], [`config`]) knows no sockets or clocks;
//! [`server`] and [`daemon`] are the thin shell around it.

pub mod accounts;
pub mod aemm;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod credentials;
pub mod ctl;
pub mod daemon;
pub mod host;
pub mod identity;
pub mod imds;
pub mod intercept;
pub mod live;
pub mod metadata;
pub mod scenario;
pub mod server;
pub mod snapshot;
pub mod types;
