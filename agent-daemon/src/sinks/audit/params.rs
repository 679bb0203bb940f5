//! Query parameters as people give them (HTTP query strings, command-line flags), checked
//! and turned into filters. Every value is parsed here into a typed value; nothing a caller
//! writes is ever put into SQL text (the queries bind what these produce).
use chrono::{DateTime, Duration, Utc};

use super::{
    Cursor, EventFilter, InvestigationFilter, Outcome, filter::check_kind, query::MAX_PAGE,
};
use crate::identity::{InvestigationId, Phase};

/// The default page of events, and of runs.
pub const DEFAULT_LIMIT: usize = 100;

/// A parameter that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {param}: {message}")]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

fn bad(param: &str, message: impl Into<String>) -> ParamError {
    ParamError { param: param.to_owned(), message: message.into() }
}

/// A time: RFC 3339 (`2026-11-26T15:00:00Z`), or an age before `now` (`90s`, `15m`, `2h`,
/// `7d`).
pub fn parse_time(
    param: &str,
    given: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ParamError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(given) {
        return Ok(t.to_utc());
    }
    let unit = given.chars().last().unwrap_or(' ');
    let number = &given[..given.len().saturating_sub(unit.len_utf8())];
    let seconds: Option<i64> = match unit {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    let ago = seconds.zip(number.parse::<u32>().ok()).and_then(|(unit, n)| {
        Duration::try_seconds(unit * i64::from(n)).and_then(|d| now.checked_sub_signed(d))
    });
    ago.ok_or_else(|| {
        bad(
            param,
            format!(
                "{given:?} is not a time: use RFC 3339 (2026-11-26T15:00:00Z) or an age such as \
                 90s, 15m, 2h, 7d"
            ),
        )
    })
}

fn parse_limit(given: &str) -> Result<usize, ParamError> {
    match given.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(bad("limit", format!("{given:?} must be a whole number from 1 to {MAX_PAGE}"))),
    }
}

fn parse_run(given: &str) -> Result<i64, ParamError> {
    given
        .parse::<i64>()
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| bad("run", format!("{given:?} must be a run number (1 or more)")))
}

fn unknown(param: &str, known: &[&str]) -> ParamError {
    bad(param, format!("unknown parameter; expected one of {}", known.join(", ")))
}

fn once<'a>(seen: &mut Vec<&'a str>, param: &'a str) -> Result<(), ParamError> {
    if seen.contains(&param) {
        return Err(bad(param, "given more than once"));
    }
    seen.push(param);
    Ok(())
}

/// `GET /v1/investigations` and `paddock audit list`: id, phase, since, outcome, limit.
pub fn list_filter(
    pairs: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<InvestigationFilter, ParamError> {
    const KNOWN: &[&str] = &["id", "phase", "since", "outcome", "limit"];
    let mut filter = InvestigationFilter { limit: DEFAULT_LIMIT, ..Default::default() };
    let mut seen = Vec::new();
    for (param, value) in pairs {
        once(&mut seen, param)?;
        match param.as_str() {
            "id" => {
                filter.id =
                    Some(value.parse::<InvestigationId>().map_err(|e| bad("id", e.to_string()))?);
            }
            "phase" => {
                filter.phase =
                    Some(value.parse::<Phase>().map_err(|e| bad("phase", e.to_string()))?);
            }
            "since" => filter.since = Some(parse_time("since", value, now)?),
            "outcome" => {
                filter.outcome =
                    Some(value.parse::<Outcome>().map_err(|e| bad("outcome", e.to_string()))?);
            }
            "limit" => filter.limit = parse_limit(value)?,
            other => return Err(unknown(other, KNOWN)),
        }
    }
    Ok(filter)
}

/// One page of an investigation's events: the filter, where to start, how many.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsRequest {
    pub filter: EventFilter,
    pub cursor: Option<Cursor>,
    pub limit: usize,
}

/// `GET /v1/investigations/{id}/events` and `paddock audit show`: run, kind, since, until,
/// cursor, limit.
pub fn events_request(
    pairs: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<EventsRequest, ParamError> {
    const KNOWN: &[&str] = &["run", "kind", "since", "until", "cursor", "limit"];
    let mut request =
        EventsRequest { filter: EventFilter::default(), cursor: None, limit: DEFAULT_LIMIT };
    let mut seen = Vec::new();
    for (param, value) in pairs {
        once(&mut seen, param)?;
        match param.as_str() {
            "run" => request.filter.run = Some(parse_run(value)?),
            "kind" => {
                let kind = check_kind(value).map_err(|e| bad("kind", e.to_string()))?;
                request.filter.kind = Some(kind.to_owned());
            }
            "since" => request.filter.since = Some(parse_time("since", value, now)?),
            "until" => request.filter.until = Some(parse_time("until", value, now)?),
            "cursor" => {
                request.cursor =
                    Some(value.parse::<Cursor>().map_err(|e| bad("cursor", e.to_string()))?);
            }
            "limit" => request.limit = parse_limit(value)?,
            other => return Err(unknown(other, KNOWN)),
        }
    }
    if let (Some(since), Some(until)) = (request.filter.since, request.filter.until)
        && until <= since
    {
        return Err(bad("until", "must be later than since"));
    }
    Ok(request)
}

/// `GET /v1/investigations/{id}/tree` and `paddock audit tree`: run.
pub fn tree_run(pairs: &[(String, String)]) -> Result<Option<i64>, ParamError> {
    let mut run = None;
    let mut seen = Vec::new();
    for (param, value) in pairs {
        once(&mut seen, param)?;
        match param.as_str() {
            "run" => run = Some(parse_run(value)?),
            other => return Err(unknown(other, &["run"])),
        }
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T15:00:00Z").unwrap().to_utc()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn times_are_rfc3339_or_ages() {
        let t = |s| parse_time("since", s, now());
        assert_eq!(t("2026-11-26T14:00:00Z").unwrap(), now() - Duration::hours(1));
        assert_eq!(t("90s").unwrap(), now() - Duration::seconds(90));
        assert_eq!(t("15m").unwrap(), now() - Duration::minutes(15));
        assert_eq!(t("2h").unwrap(), now() - Duration::hours(2));
        assert_eq!(t("7d").unwrap(), now() - Duration::days(7));
        for bad in ["", "h", "-2h", "2w", "yesterday", "2026-11-26", "1e3s", "99999999999d"] {
            let err = t(bad).unwrap_err();
            assert_eq!(err.param, "since", "{bad}");
            assert!(err.message.contains("is not a time"), "{bad}: {err}");
        }
    }

    #[test]
    fn list_parameters_become_a_filter() {
        let filter = list_filter(
            &pairs(&[
                ("phase", "read-only"),
                ("outcome", "killed"),
                ("since", "1h"),
                ("limit", "5"),
            ]),
            now(),
        )
        .unwrap();
        assert_eq!(filter.phase, Some(Phase::ReadOnly));
        assert_eq!(filter.outcome, Some(Outcome::Killed));
        assert_eq!(filter.since, Some(now() - Duration::hours(1)));
        assert_eq!(filter.limit, 5);
        assert_eq!(list_filter(&[], now()).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_list_parameters_name_the_parameter() {
        let err = |list: &[(&str, &str)]| list_filter(&pairs(list), now()).unwrap_err();
        assert_eq!(err(&[("phase", "admin")]).param, "phase");
        assert!(err(&[("phase", "admin")]).message.contains("read-only"));
        assert_eq!(err(&[("outcome", "dead")]).param, "outcome");
        assert_eq!(err(&[("limit", "0")]).param, "limit");
        assert_eq!(err(&[("limit", "10001")]).param, "limit");
        assert_eq!(err(&[("id", "Not A Label!")]).param, "id");
        let e = err(&[("sort", "asc")]);
        assert_eq!(e.param, "sort");
        assert!(e.message.contains("expected one of id, phase"), "{e}");
        assert_eq!(
            err(&[("phase", "shadow"), ("phase", "read-only")]).message,
            "given more than once"
        );
    }

    #[test]
    fn event_parameters_become_a_request() {
        let request = events_request(
            &pairs(&[("kind", "exec"), ("cursor", "42"), ("limit", "3"), ("run", "7")]),
            now(),
        )
        .unwrap();
        assert_eq!(request.filter.kind.as_deref(), Some("exec"));
        assert_eq!(request.filter.run, Some(7));
        assert_eq!(request.cursor, Some("42".parse().unwrap()));
        assert_eq!(request.limit, 3);
    }

    #[test]
    fn bad_event_parameters_name_the_parameter() {
        let err = |list: &[(&str, &str)]| events_request(&pairs(list), now()).unwrap_err();
        let e = err(&[("kind", "exec' OR 1=1 --")]);
        assert_eq!(e.param, "kind");
        assert!(e.message.contains("verdict"), "{e}");
        assert_eq!(err(&[("cursor", "1; DROP TABLE events")]).param, "cursor");
        assert_eq!(err(&[("run", "0")]).param, "run");
        assert_eq!(err(&[("run", "x")]).param, "run");
        assert_eq!(err(&[("since", "1h"), ("until", "2h")]).param, "until");
        assert_eq!(err(&[("page", "2")]).param, "page");
    }

    #[test]
    fn the_tree_takes_a_run_and_nothing_else() {
        assert_eq!(tree_run(&[]).unwrap(), None);
        assert_eq!(tree_run(&pairs(&[("run", "3")])).unwrap(), Some(3));
        assert_eq!(tree_run(&pairs(&[("run", "0")])).unwrap_err().param, "run");
        assert_eq!(tree_run(&pairs(&[("kind", "exec")])).unwrap_err().param, "kind");
    }
}
