//! The Grafana dashboard as the monitoring test checks it: every query of every panel and
//! variable, its variables substituted as Grafana would for the test's Prometheus, each
//! asked of that Prometheus until it answers with a series.
use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::monitoring::{JOB, Prometheus, SCRAPE_INTERVAL_S};

impl Prometheus {
    /// What Grafana would put for a dashboard's variables when showing this Prometheus's
    /// daemon: its job and target, and `$__rate_interval` as Grafana computes it for this
    /// scrape interval (four of them).
    pub fn dashboard_variables(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("job".to_owned(), JOB.to_owned()),
            ("instance".to_owned(), self.target.clone()),
            ("__rate_interval".to_owned(), format!("{}s", 4 * SCRAPE_INTERVAL_S)),
            ("__interval".to_owned(), format!("{SCRAPE_INTERVAL_S}s")),
            ("__range".to_owned(), "1h".to_owned()),
        ])
    }

    /// Poll every query until each has answered as it should (at least one series, each
    /// with the label it asks for, when it asks for one), for at most 20 s; the queries that
    /// never did, each with its last answer.
    pub fn unanswered(&self, queries: &[DashboardQuery]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut waiting: Vec<&DashboardQuery> = queries.iter().collect();
        loop {
            let mut last = Vec::new();
            waiting.retain(|q| {
                let result = self.query(&q.promql);
                let answered = !result.is_empty()
                    && q.label.as_ref().is_none_or(|label| {
                        result.iter().all(|s| s.labels.get(label).is_some_and(|v| !v.is_empty()))
                    });
                if !answered {
                    last.push(format!("{q}\n    answered: {result:?}"));
                }
                !answered
            });
            if waiting.is_empty() || Instant::now() > deadline {
                return last;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A dashboard's JSON.
pub fn load_dashboard(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One PromQL query of a Grafana dashboard: a panel's target, or a query variable's
/// `label_values(SELECTOR, LABEL)` (asked as `SELECTOR`, whose series must carry `LABEL`).
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    /// `panel "TITLE"` or `variable "NAME"`.
    pub source: String,
    /// As written in the dashboard.
    pub written: String,
    /// As sent, its variables substituted.
    pub promql: String,
    pub label: Option<String>,
}

impl std::fmt::Display for DashboardQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.written)?;
        if self.promql != self.written {
            write!(f, "\n    sent as: {}", self.promql)?;
        }
        if let Some(label) = &self.label {
            write!(f, "\n    (its series must carry the label {label})")?;
        }
        Ok(())
    }
}

/// Every query of a dashboard: each target's `expr` of each panel (rows' panels too), and each
/// query variable's, with the variables substituted from `values`. A variable not in
/// `values`, or a variable query other than `label_values(SELECTOR, LABEL)`, is an error
/// naming the panel or variable.
pub fn dashboard_queries(
    dashboard: &Value,
    values: &BTreeMap<String, String>,
) -> Result<Vec<DashboardQuery>, String> {
    fn panels<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            panels(&panel["panels"], out);
        }
    }
    let mut all = Vec::new();
    panels(&dashboard["panels"], &mut all);
    let mut queries = Vec::new();
    for panel in all {
        let source = format!("panel {:?}", panel["title"].as_str().unwrap_or("(no title)"));
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                return Err(format!("{source}: a target without a PromQL expr: {target}"));
            };
            let promql = substitute(expr, values).map_err(|e| format!("{source}: {expr}: {e}"))?;
            queries.push(DashboardQuery {
                source: source.clone(),
                written: expr.into(),
                promql,
                label: None,
            });
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] != "query" {
            continue;
        }
        let source = format!("variable {:?}", variable["name"].as_str().unwrap_or("(no name)"));
        let query = match &variable["query"] {
            Value::String(q) => q.as_str(),
            q => q["query"].as_str().unwrap_or_default(),
        };
        let (selector, label) = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .ok_or_else(|| format!("{source}: not label_values(SELECTOR, LABEL): {query}"))?;
        let promql =
            substitute(selector.trim(), values).map_err(|e| format!("{source}: {query}: {e}"))?;
        queries.push(DashboardQuery {
            source,
            written: query.into(),
            promql,
            label: Some(label.trim().into()),
        });
    }
    Ok(queries)
}

/// `text` with Grafana's variables (`$name`, `${name}`, `${name:format}`) replaced by
/// `values`; a `$` not followed by a name (a regex's end anchor) is left as it is.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').ok_or("a ${ without its }")?;
                let inner = &braced[..end];
                (inner.split(':').next().unwrap_or(inner), end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if name.is_empty() {
            out.push('$');
        } else {
            let value = values.get(name).ok_or_else(|| {
                format!(
                    "the variable ${name} has no value in the test (it knows {:?})",
                    values.keys()
                )
            })?;
            out.push_str(value);
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_variables_are_substituted_in_each_form() {
        let values = BTreeMap::from([
            ("instance".to_owned(), "127.0.0.1:9".to_owned()),
            ("__rate_interval".to_owned(), "4s".to_owned()),
        ]);
        assert_eq!(
            substitute(r#"rate(x{instance=~"$instance"}[$__rate_interval])"#, &values).unwrap(),
            r#"rate(x{instance=~"127.0.0.1:9"}[4s])"#
        );
        assert_eq!(
            substitute(r#"x{instance=~"${instance:regex}",a=~"b$"}"#, &values).unwrap(),
            r#"x{instance=~"127.0.0.1:9",a=~"b$"}"#
        );
        assert!(substitute("x{node=~\"$node\"}", &values).unwrap_err().contains("$node"));
    }
}
