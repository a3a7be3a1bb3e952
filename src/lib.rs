//! fake-metadata makes a Linux VM look like an EC2 instance to the software inside it: it
//! serves EC2's instance metadata API exactly as EC2 does, and the ECS agent's and EKS Pod
//! Identity's endpoints for the tasks and pods in its containers, and (as root) routes
//! `169.254.169.254`, `169.254.170.2` and `169.254.170.23` to itself.
//!
//! The modules sit in layers, each depending only on those above it (ARCHITECTURE.md has the
//! picture and where each concern lives):
//! 1. vocabulary: [`clock`], [`ec2`] (naming rules), [`go`] (how Go programs write bytes), [`endpoint`] (the services we answer as),
//!    [`client`] (who asks), [`types`], [`metadata`] (the tree), [`accounts`], [`machine`];
//! 2. pure domain: [`imds`] ([`imds::respond`]), [`ecs`] ([`ecs::respond`]), [`fault`], [`scenario`], [`credentials`], [`identity`],
//!    [`intercept`]'s plan;
//! 3. [`config`]: the file, environment and flags, checked;
//! 4. [`snapshot`]: what is served, built by a pure function;
//! 5. the shell: [`live`], [`owner`], [`server`], [`control`], [`daemon`], then [`cli`], [`ctl`],
//!    [`aemm`].

pub mod accounts;
pub mod aemm;
pub mod capability;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod control;
pub mod crawl;
pub mod credentials;
pub mod ctl;
pub mod daemon;
pub mod ec2;
pub mod ecs;
pub mod endpoint;
pub mod fault;
pub mod go;
pub mod identity;
pub mod imds;
pub mod intercept;
pub mod journal;
pub mod live;
pub mod machine;
pub mod metadata;
pub mod owner;
pub mod pod_identity;
pub mod scenario;
pub mod server;
pub mod snapshot;
pub mod types;
