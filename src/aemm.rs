//! `fake-metadata aemm …`: a drop-in start for users of amazon-ec2-metadata-mock (AEMM).
//!
//! Its main flags and subcommands are accepted and turned into a `[scenario]` timeline, an
//! IMDSv2 setting and a listen address; then the daemon serves as `serve` does (with the
//! control socket, so `ctl` works too). The answers are EC2's, not AEMM's: `text/plain`
//! compact notices without tabs, UTC dates, notice times fixed when the notice appears, the
//! full metadata tree whatever the subcommand.
//!
//! | AEMM | here |
//! |---|---|
//! | `-I`, `--imdsv2` | `[imds] http-tokens = "required"` |
//! | `-p`, `--port` / `-n`, `--hostname` | listen address (default `127.0.0.1:1338`) |
//! | `-d`, `--mock-delay-sec` / `--mock-trigger-time` | when the spot notice / event appears |
//! | `--rebalance-delay-sec` / `--rebalance-trigger-time` | when the rebalance recommendation appears |
//! | `--asg-termination-delay-sec` / `--asg-termination-trigger-time` | when the ASG state becomes `Terminated` |
//! | `spot -a ACTION -t TIME -r TIME` | spot notice (time default: notice + 2 min) and rebalance (noticeTime) |
//! | `events -o CODE -t STATE -b/-a/-l TIME` | one maintenance event (completed/canceled go to the history) |
//! | `asglifecycle` / `autoscaling target-lifecycle-state [STATE [TIME\|DELAY STATE]…]` | ASG state, `InService` first |
//! | no subcommand | all of the above |
//! | `-x`, `-s` | accepted and ignored (every client sees every event) |
//! | `-c`, `--config-file` (JSON) | refused: use `--config` with a fake-metadata TOML file |
//!
//! Without `--config`, the instance is AEMM's own default one ([`DEFAULTS`]: its ids,
//! addresses, tags, role and user data), so that tests written against AEMM read the values
//! they expect; with `--config`, the file's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::{HttpTokens, Overrides, Preset};
use crate::daemon::Source;
use crate::scenario::{
    AsgState, Change, Entry, EventCode, EventSpec, EventState, Moment, ScenarioConfig, SpotAction,
};

const DAY: u64 = 86_400;

/// AEMM's default values as a fake-metadata config (`src/aemm_defaults.toml`, which cites
/// where each comes from), used when `--config` is not given.
pub const DEFAULTS: Preset = Preset {
    name: "(AEMM's defaults)",
    text: include_str!("aemm_defaults.toml"),
};

/// amazon-ec2-metadata-mock's command line.
#[derive(Debug, Clone, Args)]
pub struct AemmArgs {
    /// IMDSv2 only: every request needs a session token.
    #[arg(short = 'I', long, global = true)]
    pub imdsv2: bool,
    /// Seconds after the start before the spot notice / event appears.
    #[arg(short = 'd', long, value_name = "SECONDS", global = true)]
    pub mock_delay_sec: Option<u64>,
    /// When the spot notice / event appears (RFC 3339); wins over --mock-delay-sec.
    #[arg(long, value_name = "TIME", value_parser = absolute, global = true)]
    pub mock_trigger_time: Option<Moment>,
    /// Seconds after the start before the rebalance recommendation appears.
    #[arg(long, value_name = "SECONDS", global = true)]
    pub rebalance_delay_sec: Option<u64>,
    /// When the rebalance recommendation appears (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = absolute, global = true)]
    pub rebalance_trigger_time: Option<Moment>,
    /// Seconds after the start before the ASG state becomes Terminated.
    #[arg(long, value_name = "SECONDS", global = true)]
    pub asg_termination_delay_sec: Option<u64>,
    /// When the ASG state becomes Terminated (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = absolute, global = true)]
    pub asg_termination_trigger_time: Option<Moment>,
    /// The port to listen on.
    #[arg(short = 'p', long, default_value_t = 1338, global = true)]
    pub port: u16,
    /// The address to listen on (AEMM's default is 0.0.0.0; this one is loopback).
    #[arg(short = 'n', long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST), global = true)]
    pub hostname: IpAddr,
    /// Ignored: every client sees the events, as on EC2.
    #[arg(
        short = 'x',
        long,
        value_name = "N",
        global = true,
        alias = "termination-nodes"
    )]
    pub mock_ip_count: Option<i64>,
    /// Ignored.
    #[arg(short = 's', long, global = true)]
    pub save_config_to_file: bool,
    /// AEMM's JSON config is not read: use --config with a fake-metadata TOML file.
    #[arg(short = 'c', long, value_name = "FILE", global = true)]
    pub config_file: Option<PathBuf>,
    /// A fake-metadata config file (TOML) for everything else (instance, tags, control), in
    /// place of AEMM's default instance.
    #[arg(long, env = "FAKE_METADATA_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub mock: Option<Mock>,
}

/// AEMM's subcommands: which scenario to play.
#[derive(Debug, Clone, Subcommand)]
pub enum Mock {
    /// A spot interruption notice (and a rebalance recommendation).
    #[command(alias = "spotitn")]
    Spot {
        /// terminate, stop or hibernate.
        #[arg(
            short = 'a',
            long,
            alias = "instance-action",
            default_value = "terminate"
        )]
        action: SpotAction,
        /// The time in the notice (RFC 3339). Default: two minutes after the notice appears.
        #[arg(short = 't', long, alias = "termination-time", value_name = "TIME")]
        time: Option<Moment>,
        /// The rebalance recommendation's noticeTime (RFC 3339). Default: when it appears.
        #[arg(short = 'r', long, value_name = "TIME")]
        rebalance_rec_time: Option<Moment>,
    },
    /// One scheduled maintenance event.
    #[command(aliases = ["se", "scheduledevents"])]
    Events {
        /// instance-reboot, system-reboot, system-maintenance, instance-retirement or
        /// instance-stop.
        #[arg(short = 'o', long, default_value = "system-reboot")]
        code: EventCode,
        /// active, completed or canceled (completed and canceled events are in the history).
        #[arg(short = 't', long, default_value = "active")]
        state: EventState,
        /// Default: when the event appears + 7 days.
        #[arg(short = 'a', long, value_name = "TIME")]
        not_after: Option<Moment>,
        /// Default: when the event appears.
        #[arg(short = 'b', long, value_name = "TIME")]
        not_before: Option<Moment>,
        /// Default: when the event appears + 9 days.
        #[arg(short = 'l', long, value_name = "TIME")]
        not_before_deadline: Option<Moment>,
    },
    /// The Auto Scaling target lifecycle state: `InService`, then `Terminated` after
    /// --asg-termination-delay-sec; or a sequence `[target-lifecycle-state] STATE [TIME|DELAY
    /// STATE]…`, e.g. `InService 2m Terminated`.
    #[command(aliases = ["autoscaling", "asg"])]
    Asglifecycle {
        #[arg(num_args = 0.., value_name = "STATE [TIME|DELAY STATE]...")]
        sequence: Vec<String>,
    },
}

fn absolute(s: &str) -> Result<Moment, String> {
    match s.parse::<Moment>()? {
        m @ Moment::At(_) => Ok(m),
        Moment::After(_) => Err(format!(
            "`{s}` is not an RFC 3339 time such as 2020-01-07T01:03:47Z"
        )),
    }
}

fn after_secs(s: u64) -> Moment {
    Moment::After(Duration::from_secs(s))
}

fn entry(at: Moment, change: Change) -> Entry {
    Entry {
        at,
        change,
        view: None,
    }
}

/// The timeline AEMM's flags describe.
pub fn scenario(a: &AemmArgs) -> Result<ScenarioConfig, String> {
    let mock_at = a
        .mock_trigger_time
        .unwrap_or_else(|| after_secs(a.mock_delay_sec.unwrap_or(0)));
    let rebalance_at = a
        .rebalance_trigger_time
        .unwrap_or_else(|| after_secs(a.rebalance_delay_sec.unwrap_or(0)));
    let asg_end = a
        .asg_termination_trigger_time
        .or(a.asg_termination_delay_sec.map(after_secs));
    let spot = |action, time, rebalance_time| {
        vec![
            entry(mock_at, Change::Spot { action, time }),
            entry(
                rebalance_at,
                Change::Rebalance {
                    time: rebalance_time,
                },
            ),
        ]
    };
    let event = |code,
                 state,
                 not_before: Option<Moment>,
                 not_after: Option<Moment>,
                 deadline: Option<Moment>| {
        entry(
            mock_at,
            Change::EventAdd(EventSpec {
                code,
                id: None,
                state: Some(state),
                not_before: Some(not_before.unwrap_or(Moment::NOW)),
                not_after: Some(not_after.unwrap_or(after_secs(7 * DAY))),
                not_before_deadline: Some(deadline.unwrap_or(after_secs(9 * DAY))),
                description: None,
            }),
        )
    };
    let asg = |sequence: &[String]| -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        let mut words = sequence.iter().map(String::as_str).peekable();
        if words.peek() == Some(&"target-lifecycle-state") {
            words.next();
        }
        let first = match words.next() {
            Some(s) => s.parse::<AsgState>()?,
            None => AsgState::InService,
        };
        out.push(entry(Moment::NOW, Change::Asg { state: first }));
        let mut at = Moment::NOW;
        while let Some(when) = words.next() {
            at = match when.parse::<Moment>() {
                Ok(Moment::After(d)) => match at {
                    Moment::After(p) => Moment::After(p + d),
                    Moment::At(t) => Moment::At(t + d),
                },
                Ok(m) => m,
                Err(_) => {
                    return Err(format!(
                        "`{when}` is neither a time (RFC 3339) nor a delay (e.g. 2m30s) in the target lifecycle state sequence"
                    ));
                }
            };
            let state = words
                .next()
                .ok_or_else(|| format!("the sequence ends with `{when}`: a state must follow it"))?
                .parse::<AsgState>()?;
            out.push(entry(at, Change::Asg { state }));
        }
        if let Some(end) = asg_end {
            out.push(entry(
                end,
                Change::Asg {
                    state: AsgState::Terminated,
                },
            ));
        }
        Ok(out)
    };
    let timeline = match &a.mock {
        Some(Mock::Spot {
            action,
            time,
            rebalance_rec_time,
        }) => spot(*action, *time, *rebalance_rec_time),
        Some(Mock::Events {
            code,
            state,
            not_after,
            not_before,
            not_before_deadline,
        }) => vec![event(
            *code,
            *state,
            *not_before,
            *not_after,
            *not_before_deadline,
        )],
        Some(Mock::Asglifecycle { sequence }) => asg(sequence)?,
        None => {
            let mut all = spot(SpotAction::Terminate, None, None);
            all.push(event(
                EventCode::SystemReboot,
                EventState::Active,
                None,
                None,
                None,
            ));
            all.extend(asg(&[])?);
            all
        }
    };
    Ok(ScenarioConfig { timeline })
}

/// What the daemon is started with.
pub fn source(a: &AemmArgs) -> Result<Source, String> {
    if let Some(f) = &a.config_file {
        return Err(format!(
            "{}: AEMM's JSON config files are not read; put the values in a fake-metadata TOML file and pass it with --config",
            f.display()
        ));
    }
    Ok(Source {
        path: a.config.clone(),
        preset: Some(DEFAULTS),
        overrides: Overrides {
            listen: vec![SocketAddr::new(a.hostname, a.port)],
            http_tokens: a.imdsv2.then_some(HttpTokens::Required),
        },
        scenario: Some(scenario(a)?),
    })
}

/// Why `aemm` could not serve.
#[derive(Debug, thiserror::Error)]
pub enum AemmError {
    /// A flag AEMM takes but with a value that cannot be served.
    #[error("{0}")]
    Flag(String),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
}

/// Serves as AEMM would have been asked to, with EC2's answers.
pub fn run(a: AemmArgs) -> Result<ExitCode, AemmError> {
    let source = source(&a).map_err(AemmError::Flag)?;
    if a.mock_ip_count.is_some() || a.save_config_to_file {
        // A warning, not an error: the daemon starts.
        eprintln!(
            "fake-metadata aemm: --mock-ip-count and --save-config-to-file are ignored (every client sees every event, as on EC2; [[view]]s in a config give clients events of their own)"
        );
    }
    crate::daemon::run(source)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: AemmArgs,
    }

    fn parse(args: &[&str]) -> AemmArgs {
        T::try_parse_from(std::iter::once("aemm").chain(args.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn flags_map_onto_a_timeline() {
        let a = parse(&["spot", "-a", "stop", "-d", "5", "-p", "9999", "--imdsv2"]);
        let s = source(&a).unwrap();
        assert_eq!(s.overrides.listen, vec!["127.0.0.1:9999".parse().unwrap()]);
        assert_eq!(s.overrides.http_tokens, Some(HttpTokens::Required));
        let t = &s.scenario.unwrap().timeline;
        assert_eq!(t[0].at, after_secs(5));
        assert_eq!(
            t[0].change,
            Change::Spot {
                action: SpotAction::Stop,
                time: None
            }
        );
        assert_eq!(t[1].change, Change::Rebalance { time: None });

        let a = parse(&[
            "asglifecycle",
            "target-lifecycle-state",
            "Standby",
            "2m",
            "InService",
            "30s",
            "Terminated",
        ]);
        let t = scenario(&a).unwrap().timeline;
        let at: Vec<String> = t.iter().map(|e| e.at.to_string()).collect();
        assert_eq!(at, ["+0s", "+2m", "+2m30s"]);
        let a = parse(&["autoscaling", "InService", "soon"]);
        assert!(scenario(&a).unwrap_err().contains("`soon` is neither"));
        let a = parse(&["-c", "x.json"]);
        assert!(source(&a).unwrap_err().contains("--config"));
        let a = parse(&[]);
        assert_eq!(scenario(&a).unwrap().timeline.len(), 4);
    }
}
