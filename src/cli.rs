//! The command line (clap): one binary, one subcommand per role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, HttpTokens, Overrides};
use crate::{daemon, intercept};

/// Makes this machine look like an EC2 instance: a faithful instance metadata service.
///
/// Configuration precedence: command-line flag > environment variable > config file >
/// built-in default.
#[derive(Debug, Parser)]
#[command(name = "fake-metadata", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the configuration comes from, shared by every subcommand that reads it.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// The config file (TOML). Without one, the built-in defaults are used.
    #[arg(long, short, env = "FAKE_METADATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen on ADDR:PORT (repeatable, or comma-separated in the environment); replaces
    /// `[server] listen`.
    #[arg(
        long,
        env = "FAKE_METADATA_LISTEN",
        value_delimiter = ',',
        value_name = "ADDR:PORT"
    )]
    pub listen: Vec<SocketAddr>,
    /// `optional` or `required`; replaces `[imds] http-tokens`.
    #[arg(long, env = "FAKE_METADATA_HTTP_TOKENS", value_name = "MODE")]
    pub http_tokens: Option<HttpTokens>,
}

impl ConfigArgs {
    pub fn source(&self) -> daemon::Source {
        daemon::Source {
            path: self.config.clone(),
            overrides: Overrides {
                listen: self.listen.clone(),
                http_tokens: self.http_tokens,
            },
            scenario: None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the instance metadata service (unprivileged; 127.0.0.1:1338 by default).
    Serve(ConfigArgs),
    /// Validate a config file: exit 0, or print `FILE:LINE:COL: message` and exit 1.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the effective configuration as TOML (defaults, file, environment and flags).
    PrintConfig(ConfigArgs),
    /// (root) Route 169.254.169.254:80 to the daemon: the address on `lo` and a tagged
    /// `nat OUTPUT` REDIRECT to the configured port. Idempotent; undone on failure.
    Install(ConfigArgs),
    /// (root) Remove the address and every rule tagged as ours. A second run is a no-op.
    Uninstall(ConfigArgs),
    /// Whether the address and rule are in place and the daemon answers through them.
    Status(ConfigArgs),
    /// Print (PEM) the certificate that verifies the identity document's `signature`,
    /// `pkcs7` and `rsa2048` of a daemon with this config.
    IdentityCert(ConfigArgs),
    /// Change the running daemon over its control socket: spot notices, rebalance, events,
    /// ASG state, tags, any value (`ctl --help` lists the commands).
    #[command(disable_help_flag = true)]
    Ctl {
        /// `spot`, `rebalance`, `event`, `asg`, `tags`, `set`, `unset`, `credentials`,
        /// `status`, `reset` (see `ctl --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
    /// Serve with amazon-ec2-metadata-mock's flags and subcommands (`spot`, `events`,
    /// `asglifecycle`), with EC2's exact answers.
    Aemm(Box<crate::aemm::AemmArgs>),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => report(daemon::run(args.source())),
        Command::CheckConfig { file } => match Config::from_file(&file) {
            Ok(c) => match c.user_data_bytes() {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            },
            Err(e) => fail(&e),
        },
        Command::PrintConfig(args) => match args.source().load() {
            Ok(c) => {
                print!("{}", c.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Install(args) => intercept_cmd(&args, Action::Install),
        Command::Uninstall(args) => intercept_cmd(&args, Action::Uninstall),
        Command::Status(args) => intercept_cmd(&args, Action::Status),
        Command::IdentityCert(args) => identity_cert(&args),
        Command::Ctl { args } => crate::ctl::run(args),
        Command::Aemm(args) => crate::aemm::run(*args),
    }
}

/// Reads the published certificate; makes the key first only when it is ours to make (not
/// root: a root-owned key would be unreadable to the daemon's user).
fn identity_cert(args: &ConfigArgs) -> ExitCode {
    let cfg = match args.source().load() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let dir = cfg.server.state_directory();
    let path = dir.join(crate::identity::CERT_FILE);
    let pem = match std::fs::read_to_string(&path) {
        Ok(p) => p,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !nix::unistd::Uid::effective().is_root() =>
        {
            match crate::identity::IdentityKey::load_or_create(&dir) {
                Ok(k) => k.cert_pem().to_string(),
                Err(e) => {
                    eprintln!("fake-metadata: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Err(e) => {
            eprintln!(
                "fake-metadata: cannot read {}: {e} (the daemon makes it on its first start)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    print!("{pem}");
    ExitCode::SUCCESS
}

enum Action {
    Install,
    Uninstall,
    Status,
}

/// `install`, `uninstall` and `status`: the plan comes from the same config the daemon reads,
/// so the REDIRECT port and the listener never disagree.
fn intercept_cmd(args: &ConfigArgs, action: Action) -> ExitCode {
    let cfg = match args.source().load() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let run = || -> Result<bool, intercept::InterceptError> {
        let plan = intercept::Plan::new(
            cfg.server.redirect_port(),
            cfg.imds.http_protocol_ipv6.is_enabled(),
        )?;
        let mut host = intercept::system::SystemHost::new()?;
        Ok(match action {
            Action::Install => {
                let report = intercept::install(&plan, &mut host)?;
                println!("{report}");
                if !report.changed() {
                    println!("nothing changed: interception was already in place");
                }
                true
            }
            Action::Uninstall => {
                let report = intercept::uninstall(&mut host, true);
                println!("{report}");
                !report.has_failures()
            }
            Action::Status => {
                let status = intercept::status(&plan, &mut host)?;
                println!("{status}");
                let answers = match intercept::probe_instance_id(std::time::Duration::from_secs(2))
                {
                    Ok(id) => {
                        println!(
                            "daemon answers through http://169.254.169.254/: instance id {id}"
                        );
                        true
                    }
                    Err(e) => {
                        println!("daemon does not answer through http://169.254.169.254/: {e}");
                        false
                    }
                };
                status.in_place() && answers
            }
        })
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fake-metadata: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::FAILURE
}

fn report(r: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("fake-metadata: {e}");
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
