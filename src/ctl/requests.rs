//! `ctl requests`, `ctl watch` and `ctl assert`: reading the request journal (who asked
//! what). The daemon sends entries and counts; names of containers are found here, by asking
//! Docker as the user who runs `ctl` (the daemon never talks to Docker).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;

use super::{Aim, CtlError};
use crate::control::{self, Command};
use crate::journal::assert::{self, Clients, Rule};
use crate::journal::{EntryJson, TallyReport};
use crate::types::HumanDuration;

/// `ctl requests`.
#[derive(Debug, Clone, Args)]
pub struct RequestsArgs {
    /// One JSON object a line (keys: time, endpoint, method, path, status, imds_version,
    /// uid, user, pid, command, cgroup, source, port, container, view, fault, bytes, seq).
    #[arg(long)]
    pub json: bool,
    /// Keep printing requests as they come (Ctrl-C to stop).
    #[arg(long, short)]
    pub follow: bool,
    /// Only paths that match GLOB (`*` matches across `/`: `/latest/meta-data/iam/*`).
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub path: Option<glob::Pattern>,
    /// Only IMDS requests without a token (IMDSv1).
    #[arg(long)]
    pub v1: bool,
    /// Only requests of the last DURATION (e.g. 10m).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<HumanDuration>,
    /// Only the requests of clients in view NAME (`box`: of clients in no view).
    #[arg(long, value_name = "NAME", value_parser = super::parse_view)]
    pub view: Option<Aim>,
    /// Forget the recorded requests and counts (`ctl assert` counts from then on).
    #[arg(long, conflicts_with_all = ["json", "follow", "path", "v1", "since", "view"])]
    pub clear: bool,
    /// Do not ask Docker for the names of containers.
    #[arg(long)]
    pub no_docker: bool,
}

/// `ctl watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// How often the table is drawn again.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub every: HumanDuration,
    /// Stop after drawing it N times (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Only the clients in view NAME (`box`: those in no view).
    #[arg(long, value_name = "NAME", value_parser = super::parse_view)]
    pub view: Option<Aim>,
    /// Do not ask Docker for the names of containers.
    #[arg(long)]
    pub no_docker: bool,
}

/// `ctl assert`: exactly one of `--no-v1` or `--path` with `--max` and/or `--min`.
#[derive(Debug, Clone, Args)]
pub struct AssertArgs {
    /// No IMDS request came without a token (IMDSv1).
    #[arg(long, conflicts_with = "path")]
    pub no_v1: bool,
    /// Requests to paths that match GLOB (with --max and/or --min).
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub path: Option<glob::Pattern>,
    /// At most N requests to --path.
    #[arg(long, value_name = "N", requires = "path")]
    pub max: Option<u64>,
    /// At least N requests to --path.
    #[arg(long, value_name = "N", requires = "path")]
    pub min: Option<u64>,
    /// Only this local user's requests (a name or a uid).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only the requests from this address (a container's).
    #[arg(long, value_name = "ADDRESS")]
    pub source: Option<IpAddr>,
    /// Only the requests of clients in view NAME (`box`: of clients in no view).
    #[arg(long, value_name = "NAME", value_parser = super::parse_view)]
    pub view: Option<Aim>,
}

fn parse_glob(s: &str) -> Result<glob::Pattern, String> {
    glob::Pattern::new(s).map_err(|e| format!("not a glob pattern: {e}"))
}

/// `ctl requests`.
pub fn requests(socket: &Path, a: RequestsArgs) -> Result<ExitCode, CtlError> {
    if a.clear {
        println!("{}", control::request(socket, Command::RequestsClear)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let since = a
        .since
        .map(|d| now.checked_sub(d.0).unwrap_or(SystemTime::UNIX_EPOCH));
    let names = if a.no_docker {
        HashMap::new()
    } else {
        container_names()
    };
    let mut out = std::io::stdout().lock();
    let mut missed = 0u64;
    let timeout = (!a.follow).then_some(Duration::from_secs(30));
    let command = Command::Requests {
        from: 0,
        follow: a.follow,
    };
    control::request_lines(socket, command, timeout, |line| {
        if let Some(n) = line
            .strip_prefix("{\"missed\":")
            .and_then(|r| r.strip_suffix('}'))
        {
            missed += n.parse::<u64>().unwrap_or(0);
            if a.follow {
                eprintln!("({n} requests missed: more came than this reader kept up with)");
            }
            return true;
        }
        let Ok(mut e) = serde_json::from_str::<EntryJson>(line) else {
            return true;
        };
        if !wanted(&e, &a, since) {
            return true;
        }
        e.asker.container = container_at(&names, &e.asker.source);
        let shown = if a.json {
            serde_json::to_string(&e).expect("an entry serializes")
        } else {
            one_line(&e)
        };
        // A closed pipe (`| head`) ends the reading.
        writeln!(out, "{shown}").and_then(|()| out.flush()).is_ok()
    })?;
    if missed > 0 && !a.follow {
        eprintln!(
            "({missed} older requests are no longer held: [journal] size keeps the last ones)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn wanted(e: &EntryJson, a: &RequestsArgs, since: Option<SystemTime>) -> bool {
    if a.v1 && e.imds_version != Some(1) {
        return false;
    }
    if let Some(g) = &a.path
        && !g.matches(&e.path)
    {
        return false;
    }
    if a.view
        .as_ref()
        .is_some_and(|aim| !aim.matches(e.view.as_deref()))
    {
        return false;
    }
    if let Some(t) = since {
        let at =
            time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
                .map(SystemTime::from);
        if at.is_ok_and(|at| at < t) {
            return false;
        }
    }
    true
}

/// An entry as one line of text: time, endpoint, method, path, status, version, who.
fn one_line(e: &EntryJson) -> String {
    let status = e.status.map_or("-".to_string(), |s| s.to_string());
    let version = match e.imds_version {
        Some(1) => "v1",
        Some(_) => "v2",
        None => "--",
    };
    let who = e.asker.who();
    let mut line = format!(
        "{} {:<12} {:<4} {} {status} {version} {who}",
        e.time, e.endpoint, e.method, e.path
    );
    if let Some(v) = &e.view {
        line.push_str(&format!(" view={v}"));
    }
    if let Some(f) = &e.fault {
        line.push_str(&format!(" fault={f}"));
    }
    if let Some(n) = &e.note {
        line.push_str(&format!(" ({n})"));
    }
    line
}

/// The counts, with container names where Docker tells them.
fn counts(socket: &Path, docker: bool) -> Result<TallyReport, CtlError> {
    let message = control::request(socket, Command::RequestCounts)?;
    let mut report: TallyReport = serde_json::from_str(&message)
        .map_err(|e| CtlError::Invalid(format!("unreadable counts from the daemon: {e}")))?;
    if docker && report.clients.iter().any(|c| c.asker.uid.is_none()) {
        let names = container_names();
        for c in &mut report.clients {
            c.asker.container = container_at(&names, &c.asker.source);
        }
    }
    Ok(report)
}

/// `ctl watch`.
pub fn watch(socket: &Path, a: WatchArgs) -> Result<ExitCode, CtlError> {
    let terminal = std::io::stdout().is_terminal();
    let mut drawn = 0u64;
    loop {
        let mut report = counts(socket, !a.no_docker)?;
        if let Some(aim) = &a.view {
            report.clients.retain(|c| aim.matches(c.view.as_deref()));
        }
        let table = table(&report);
        let mut out = std::io::stdout().lock();
        let written = if terminal {
            // Home and clear, then the table: it refreshes in place.
            write!(out, "\x1b[H\x1b[2J{table}")
        } else {
            writeln!(out, "{table}")
        };
        if written.and_then(|()| out.flush()).is_err() {
            return Ok(ExitCode::SUCCESS);
        }
        drawn += 1;
        if a.count.is_some_and(|n| drawn >= n) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(a.every.0);
    }
}

/// Who asked what: one row per client and path, busiest first.
fn table(r: &TallyReport) -> String {
    let mut o = format!(
        "{} requests since {} (IMDS {}, ECS {}, Pod Identity {}); without a token: {}\n",
        r.requests, r.since, r.imds, r.ecs, r.pod_identity, r.no_token
    );
    let mut rows = vec![[
        "CLIENT".to_string(),
        "ENDPOINT".into(),
        "PATH".into(),
        "REQUESTS".into(),
        "V1".into(),
        "LAST".into(),
    ]];
    for c in &r.clients {
        let who = match &c.view {
            Some(v) => format!("{} [view {v}]", c.asker.who()),
            None => c.asker.who(),
        };
        for p in &c.paths {
            let v1 = (p.no_token * 100).checked_div(p.requests).unwrap_or(0);
            rows.push([
                who.clone(),
                p.endpoint.clone(),
                p.path.clone(),
                p.requests.to_string(),
                format!("{v1}%"),
                p.last.get(11..19).unwrap_or(&p.last).to_string(),
            ]);
        }
        if c.other_requests > 0 {
            rows.push([
                who,
                "".into(),
                "(other paths)".into(),
                c.other_requests.to_string(),
                "".into(),
                "".into(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        o.push_str(cells.join("  ").trim_end());
        o.push('\n');
    }
    if r.not_itemized > 0 {
        o.push_str(&format!(
            "({} requests of more clients not itemized)\n",
            r.not_itemized
        ));
    }
    o
}

/// `ctl assert`: 0 when the rule holds, 1 (and who broke it) when not.
pub fn assert(socket: &Path, a: AssertArgs) -> Result<ExitCode, CtlError> {
    let rule = match (a.no_v1, a.path) {
        (true, None) => Rule::NoV1,
        (false, Some(glob)) if a.max.is_some() || a.min.is_some() => Rule::Path {
            glob,
            max: a.max,
            min: a.min,
        },
        (false, Some(_)) => {
            return Err(CtlError::Usage(
                "--path needs --max N and/or --min N".into(),
            ));
        }
        _ => {
            return Err(CtlError::Usage(
                "say what must hold: --no-v1, or --path GLOB with --max N and/or --min N".into(),
            ));
        }
    };
    let report = counts(socket, true)?;
    let clients = Clients {
        user: a.user,
        source: a.source,
        view: a.view.map(|v| match v {
            Aim::Box => super::BOX.to_string(),
            Aim::View(n) => n.to_string(),
        }),
    };
    match assert::check(&report, &rule, &clients) {
        Ok(said) => {
            println!("{said}");
            Ok(ExitCode::SUCCESS)
        }
        Err(said) => {
            println!("{said}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The name of the container at `source` (an address as the journal shows it), if any.
fn container_at(names: &HashMap<IpAddr, String>, source: &str) -> Option<String> {
    let ip = source.parse::<IpAddr>().ok()?;
    names.get(&ip).cloned()
}

/// The running containers' addresses and names, as `docker` tells the user who runs `ctl`;
/// empty where there is no Docker or it may not be asked.
fn container_names() -> HashMap<IpAddr, String> {
    let run = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_CLI_HINTS", "false")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Some(ids) = run(&["ps", "-q"]) else {
        return HashMap::new();
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return HashMap::new();
    }
    let mut args = vec![
        "inspect",
        "--type",
        "container",
        "--format",
        "{{.Name}}{{range .NetworkSettings.Networks}} {{.IPAddress}} {{.GlobalIPv6Address}}{{end}}",
    ];
    args.extend(ids);
    let mut names = HashMap::new();
    for line in run(&args).unwrap_or_default().lines() {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        for ip in words.filter_map(|w| w.parse::<IpAddr>().ok()) {
            names.insert(ip, name.trim_start_matches('/').to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(view: Option<&str>) -> RequestsArgs {
        RequestsArgs {
            json: false,
            follow: false,
            path: None,
            v1: false,
            since: None,
            view: view.map(|v| super::super::parse_view(v).unwrap()),
            clear: false,
            no_docker: true,
        }
    }

    #[test]
    fn an_entry_is_in_its_view_and_one_without_is_the_box() {
        let entry = r#"{"seq":1,"time":"2026-01-01T00:00:00.000Z","endpoint":"imds","method":"GET","path":"/latest/meta-data/","status":200,"bytes":3,"uid":null,"user":null,"pid":null,"command":null,"cgroup":null,"source":"10.0.0.2","container":null,"port":80,"fault":null"#;
        let read = |line: String| serde_json::from_str::<EntryJson>(&line).unwrap();
        let boxed = read(format!("{entry}}}"));
        let aimed = read(format!("{entry},\"view\":\"node-a\"}}"));
        for e in [&boxed, &aimed] {
            assert!(wanted(e, &args(None), None), "no --view: every entry");
        }
        assert!(wanted(&boxed, &args(Some("box")), None));
        assert!(!wanted(&boxed, &args(Some("node-a")), None));
        assert!(wanted(&aimed, &args(Some("node-a")), None));
        assert!(!wanted(&aimed, &args(Some("box")), None));
        assert!(!wanted(&aimed, &args(Some("node-b")), None));
        assert!(
            one_line(&aimed).ends_with(" 10.0.0.2 view=node-a"),
            "{}",
            one_line(&aimed)
        );
        assert!(!one_line(&boxed).contains("view="));
    }
}
