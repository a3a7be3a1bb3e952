//! The command line (clap): one binary, one subcommand per role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, HttpTokens, Overrides};
use crate::endpoint::Endpoint;
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
            preset: None,
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
    /// `nat OUTPUT` REDIRECT to the configured port; for containers (`[intercept]`), a
    /// `nat PREROUTING` DNAT to 169.254.169.254:PORT and `filter INPUT` drops for the LAN.
    /// Idempotent; undone on failure.
    Install(ConfigArgs),
    /// (root) Remove the address and every rule tagged as ours. A second run is a no-op.
    Uninstall(ConfigArgs),
    /// Whether the address and rules are in place and the daemon answers through them (for the
    /// box and for containers).
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
    /// Run on a real EC2 instance: crawl its metadata service (IMDSv2) into a config file
    /// that `serve` replays byte for byte. Credentials are never copied (the role name is),
    /// nor signatures (re-signed) nor spot/events/ASG state (`ctl` drives them).
    Snapshot(SnapshotArgs),
    /// Serve with amazon-ec2-metadata-mock's flags and subcommands (`spot`, `events`,
    /// `asglifecycle`), with EC2's exact answers.
    Aemm(Box<crate::aemm::AemmArgs>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout;
    /// packaging/build-deb ships them in the package.
    #[command(hide = true)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `fake-metadata snapshot`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// The metadata service to crawl.
    #[arg(long, value_name = "URL", default_value = crate::crawl::DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// The config file to write (`-`: standard output). It is written whole or not at
    /// all, readable by its owner only (0600: the user data can hold secrets), and an
    /// existing file is kept unless `--force`.
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "fake-metadata-snapshot.toml"
    )]
    pub output: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Leave the user data out (it may hold secrets).
    #[arg(long)]
    pub no_user_data: bool,
    /// Seconds one request may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

/// Why a command failed. `main` prints it once, with its causes (see [`describe`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file, environment variable or flag is wrong (`FILE:LINE:COL: message`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Daemon(#[from] daemon::DaemonError),
    #[error(transparent)]
    Intercept(#[from] intercept::InterceptError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("cannot read {}: {source} (the daemon makes it on its first start)", path.display())]
    Certificate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ctl(#[from] crate::ctl::CtlError),
    #[error(transparent)]
    Aemm(#[from] crate::aemm::AemmError),
    #[error(transparent)]
    Crawl(#[from] crate::crawl::CrawlError),
}

/// The one line (or, for a config file, one line per problem) printed for an error: the
/// program's name, the error, and each cause not already said.
pub fn describe(e: &Error) -> String {
    let mut msg = match e {
        // `check-config`'s contract: `FILE:LINE:COL: message`, nothing before it.
        Error::Config(c) => c.to_string(),
        Error::Ctl(c) => format!("fake-metadata ctl: {c}"),
        Error::Aemm(a) => format!("fake-metadata aemm: {a}"),
        _ => format!("fake-metadata: {e}"),
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

/// Runs a parsed command line: the exit code of a command that ran (`status` fails when
/// interception is not in place), or why it could not.
impl Error {
    /// The exit status it ends the program with: 2 for a usage error, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Ctl(crate::ctl::CtlError::Usage(_)) => 2,
            _ => 1,
        }
    }
}

pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Serve(args) => daemon::run(args.source())
            .map(|()| ExitCode::SUCCESS)
            .map_err(Error::from),
        Command::CheckConfig { file } => {
            let config = Config::from_file(&file)?;
            for w in config.warnings() {
                eprintln!("{w}");
            }
            println!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::PrintConfig(args) => {
            print!("{}", args.source().load()?.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Install(args) => intercept_cmd(&args, Action::Install),
        Command::Uninstall(args) => intercept_cmd(&args, Action::Uninstall),
        Command::Status(args) => intercept_cmd(&args, Action::Status),
        Command::IdentityCert(args) => identity_cert(&args),
        Command::Ctl { args } => Ok(crate::ctl::run(args)?),
        Command::Aemm(args) => Ok(crate::aemm::run(*args)?),
        Command::Snapshot(args) => snapshot(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "fake-metadata", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `snapshot`: crawls and writes; says what it wrote on stderr (never a value).
fn snapshot(args: SnapshotArgs) -> Result<ExitCode, Error> {
    use crate::clock::Clock as _;
    let mut o = crate::crawl::Options::new(args.endpoint, crate::clock::SystemClock.now());
    o.output = (args.output.as_os_str() != "-").then_some(args.output.clone());
    if o.output.is_none() {
        // Before the runtime opens descriptors: one could take a closed stdout's number.
        crate::crawl::check_stdout()?;
    }
    o.force = args.force;
    o.user_data = !args.no_user_data;
    o.request_timeout = std::time::Duration::from_secs(args.timeout.max(1));
    o.concurrency = args.concurrency.into();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| crate::crawl::CrawlError::Unreachable {
            endpoint: o.endpoint.clone(),
            why: format!("cannot start the I/O runtime: {source}"),
        })?;
    let to_stdout = o.output.is_none();
    let s = runtime.block_on(crate::crawl::run(o))?;
    let written = if to_stdout {
        "standard output".into()
    } else {
        args.output.display().to_string()
    };
    eprintln!(
        "wrote {}: {} listings and {} values in {:.1}s; {} paths not copied (see the file's \
         comments). In the box: fake-metadata serve --config {}",
        written,
        s.listings,
        s.leaves,
        s.elapsed.as_secs_f32(),
        s.not_copied,
        if to_stdout {
            "FILE".into()
        } else {
            written.clone()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads the published certificate; makes the key first only when it is ours to make (not
/// root: a root-owned key would be unreadable to the daemon's user).
fn identity_cert(args: &ConfigArgs) -> Result<ExitCode, Error> {
    let cfg = args.source().load()?;
    let dir = cfg.server().state_directory();
    let path = dir.join(crate::identity::CERT_FILE);
    let pem = match std::fs::read_to_string(&path) {
        Ok(p) => p,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !nix::unistd::Uid::effective().is_root() =>
        {
            crate::identity::IdentityKey::load_or_create(dir)?
                .cert_pem()
                .to_string()
        }
        Err(source) => return Err(Error::Certificate { path, source }),
    };
    print!("{pem}");
    Ok(ExitCode::SUCCESS)
}

/// Asks `endpoint` at `target` and says what came back, `where_` naming the place asked
/// (`through http://169.254.169.254/`) and `hint` what to do when nothing answers there.
fn say_answer(endpoint: Endpoint, target: SocketAddr, where_: &str, hint: &str) -> bool {
    match intercept::ask(endpoint, target, PROBE_TIMEOUT) {
        Ok(answer) => {
            println!("daemon answers {where_}: {answer}");
            true
        }
        Err(e) => {
            println!("daemon does not answer {where_}: {e}{hint}");
            false
        }
    }
}

/// How long `status` waits for each answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

enum Action {
    Install,
    Uninstall,
    Status,
}

/// `install`, `uninstall` and `status`: the plan comes from the same config the daemon reads,
/// so the REDIRECT port and the listener never disagree.
fn intercept_cmd(args: &ConfigArgs, action: Action) -> Result<ExitCode, Error> {
    let cfg = args.source().load()?;
    let plan = cfg.intercept_plan()?;
    let mut host = intercept::system::SystemHost::new()?;
    let ok = match action {
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
            if plan.containers() {
                println!(
                    "containers admitted from: {} (anything else from outside the box to \
                     {} is dropped)",
                    plan.admitted().join(", "),
                    plan.routes
                        .iter()
                        .map(|r| r.endpoint.ipv4().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let refused = plan.refused();
                if !refused.is_empty() {
                    println!("refused even so: {}", refused.join(", "));
                }
            }
            // Each endpoint the plan routes, as the box's programs reach it, then as
            // containers do.
            let mut answers = true;
            for route in &plan.routes {
                let target = SocketAddr::from((route.endpoint.ipv4(), route.endpoint.port()));
                let where_ = format!("through http://{}/", target.ip());
                answers &= say_answer(route.endpoint, target, &where_, "");
            }
            let targets = plan.container_targets();
            if targets.is_empty() {
                println!("containers: not routed ([intercept] containers = false)");
            }
            // Asked from the box itself, which the drop rules let through.
            let mut containers = true;
            for (endpoint, target) in targets {
                let hint = format!(
                    "; the daemon listens there only if {} was on lo when it started: restart it \
                     after `fake-metadata install`",
                    target.ip()
                );
                let where_ = format!("containers at http://{target}/");
                containers &= say_answer(endpoint, target, &where_, &hint);
            }
            status.in_place() && answers && containers
        }
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
