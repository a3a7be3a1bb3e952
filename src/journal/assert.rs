//! `ctl assert`: a rule over the counts since the start (or the last clear), for a CI step
//! ("this service never used IMDSv1", "it fetched credentials at most N times"). Pure: the
//! counts in, the verdict and what to say out.

use std::net::IpAddr;

use super::{ClientTally, MAX_CLIENTS, TallyReport};

/// What must hold.
#[derive(Debug, Clone)]
pub enum Rule {
    /// No IMDS request without a token.
    NoV1,
    /// The requests to paths that match `glob` number at most `max` and at least `min`.
    Path {
        glob: glob::Pattern,
        max: Option<u64>,
        min: Option<u64>,
    },
}

/// Which clients a rule looks at (all by default).
#[derive(Debug, Clone, Default)]
pub struct Clients {
    /// A user name or uid.
    pub user: Option<String>,
    pub source: Option<IpAddr>,
    /// Only the clients a view served (`box`: those no view served).
    pub view: Option<String>,
}

impl Clients {
    fn covers(&self, c: &ClientTally) -> bool {
        let user_ok = self.user.as_deref().is_none_or(|u| {
            c.asker.user.as_deref() == Some(u) || c.asker.uid.is_some_and(|id| id.to_string() == u)
        });
        let source_ok = self
            .source
            .is_none_or(|s| c.asker.source.parse::<IpAddr>().ok() == Some(s.to_canonical()));
        let view_ok = self.view.as_deref().is_none_or(|v| match &c.view {
            Some(got) => got == v,
            None => v == "box",
        });
        user_ok && source_ok && view_ok
    }

    fn described(&self) -> String {
        let mut d = Vec::new();
        if let Some(u) = &self.user {
            d.push(format!("--user {u}"));
        }
        if let Some(s) = &self.source {
            d.push(format!("--source {s}"));
        }
        if let Some(v) = &self.view {
            d.push(format!("--view {v}"));
        }
        d.join(" ")
    }

    fn is_all(&self) -> bool {
        self.user.is_none() && self.source.is_none() && self.view.is_none()
    }
}

/// The verdict: `Ok` when the rule holds, `Err` when it does not (or cannot be told); each
/// with what to print.
pub fn check(report: &TallyReport, rule: &Rule, clients: &Clients) -> Result<String, String> {
    let chosen: Vec<&ClientTally> = report
        .clients
        .iter()
        .filter(|c| clients.covers(c))
        .collect();
    // A filter that matches no one is likely a typo: a CI step must not pass on it.
    if chosen.is_empty() && !clients.is_all() && report.not_itemized == 0 {
        return Err(format!(
            "no requests from {} since {}: nothing to assert on (is the name or address right?)",
            clients.described(),
            report.since
        ));
    }
    // Requests of clients past the table's bounds may be anyone's.
    let unknown = report.not_itemized;
    match rule {
        Rule::NoV1 => {
            let offenders: Vec<&&ClientTally> = chosen.iter().filter(|c| c.no_token > 0).collect();
            let count: u64 = offenders.iter().map(|c| c.no_token).sum();
            let unknown_v1 = report.not_itemized_no_token;
            if count == 0 && unknown_v1 == 0 {
                return Ok(format!(
                    "ok: no IMDSv1 request (without a token) since {} ({} requests looked at)",
                    report.since,
                    chosen.iter().map(|c| c.requests).sum::<u64>()
                ));
            }
            let mut o = format!(
                "IMDSv1 requests (without a token) since {}: {}",
                report.since,
                if clients.is_all() {
                    report.no_token
                } else {
                    count
                }
            );
            for c in offenders {
                o.push_str(&format!("\n  {}: {}", c.asker.who(), c.no_token));
                for p in c.paths.iter().filter(|p| p.no_token > 0) {
                    o.push_str(&format!("\n    {} {} ({})", p.endpoint, p.path, p.no_token));
                }
                if c.other_no_token > 0 {
                    o.push_str(&format!(
                        "\n    ({} more to paths past the table's bounds)",
                        c.other_no_token
                    ));
                }
            }
            if unknown_v1 > 0 {
                o.push_str(&format!(
                    "\n  {unknown_v1} from clients past the first {MAX_CLIENTS} (not itemized)"
                ));
            }
            Err(o)
        }
        Rule::Path { glob, max, min } => {
            let mut count = 0u64;
            let mut unsure = unknown;
            let mut by = Vec::new();
            for c in &chosen {
                let n: u64 = c
                    .paths
                    .iter()
                    .filter(|p| glob.matches(&p.path))
                    .map(|p| p.requests)
                    .sum();
                unsure += c.other_requests;
                if n > 0 {
                    by.push(format!("\n  {}: {n}", c.asker.who()));
                }
                count += n;
            }
            let bounds = match (min, max) {
                (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
                (Some(lo), None) => format!("at least {lo}"),
                (None, Some(hi)) => format!("at most {hi}"),
                (None, None) => "any number".into(),
            };
            let said = format!(
                "{count} requests to {} since {} (wanted {bounds}){}",
                glob.as_str(),
                report.since,
                by.concat()
            );
            if max.is_some_and(|hi| count > hi) {
                return Err(said);
            }
            if min.is_some_and(|lo| count < lo) {
                return Err(if unsure > 0 {
                    format!("{said}\n  ({unsure} requests were counted without their path)")
                } else {
                    said
                });
            }
            if max.is_some() && unsure > 0 {
                return Err(format!(
                    "{said}\n  cannot tell: {unsure} requests were counted without their path (the journal's table is full), and some may match"
                ));
            }
            Ok(format!("ok: {said}"))
        }
    }
}
