//! The Grafana dashboard (`docs/dashboards/seawall.json`) queries only
//! metrics the code exports, and every metric the code exports has a panel.
//!
//! Every PromQL expression in the dashboard (panel targets, template
//! variables, annotations) is scanned for metric names; each must be one of
//! `seawall_core::names::ALL_METRICS`, plus the `_bucket`/`_sum`/`_count`
//! series a Prometheus exporter adds to a histogram or summary (seawall has
//! none, so such a suffix is refused). The checker itself is tested below
//! against expressions that name unknown metrics.

use std::collections::BTreeSet;

use seawall::core::names::ALL_METRICS;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../docs/dashboards/seawall.json");

/// Metrics that are histograms or summaries, whose exported series carry a
/// suffix. None today: every seawall metric is a counter or a gauge.
const DISTRIBUTIONS: &[&str] = &[];

/// PromQL words that are not metric names: keywords, and the aggregation
/// operators, which may be followed by `by (…)` before their `(`.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
];

/// The metric names in a PromQL expression (or a Grafana `label_values`
/// query): identifiers outside string literals, label matchers (`{…}`),
/// ranges (`[…]`) and grouping clauses (`by (…)`), not called as functions,
/// not keywords.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    // Words whose parenthesised list holds label names, not expressions.
    let label_lists = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                i += 1;
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            if chars[i] == '\\' {
                                i += 1;
                            }
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_list => {
                skip_list = false;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                // A Grafana variable ($name, $__rate_interval, ${x}).
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_{}".contains(chars[i])) {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number, with any unit or exponent letters glued to it.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let called = j < chars.len() && chars[j] == '(';
                if label_lists.contains(&word.as_str()) {
                    // `group_left` may stand without a list.
                    skip_list = called;
                } else if !called && !KEYWORDS.contains(&word.as_str()) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The names in `expr` that the code does not export.
fn unknown(expr: &str) -> Vec<String> {
    metric_names(expr)
        .into_iter()
        .filter(|name| !is_exported(name))
        .collect()
}

fn is_exported(name: &str) -> bool {
    ALL_METRICS.contains(&name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| DISTRIBUTIONS.contains(&base))
        })
}

/// The PromQL inside a Grafana variable query: `label_values(selector,
/// label)` queries `selector` (`label_values(label)` queries no metric),
/// `query_result(expr)` queries `expr`.
fn variable_expr(q: &str) -> String {
    let q = q.trim();
    if let Some(inner) = q
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return inner.to_owned();
    }
    let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    else {
        return q.to_owned();
    };
    // The last comma outside braces and quotes separates the label name.
    let (mut depth, mut quoted, mut split) = (0i32, false, None);
    for (i, c) in inner.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '(' | '[' if !quoted => depth += 1,
            '}' | ')' | ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => split = Some(i),
            _ => {}
        }
    }
    split.map_or_else(String::new, |i| inner[..i].to_owned())
}

/// Every PromQL string in the dashboard, with where it is.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("a panel has targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("a target has a PromQL expr");
            out.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if var["type"] == "query" {
            let q = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .expect("a query variable has a query");
            out.push((format!("variable {}", var["name"]), variable_expr(q)));
        }
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = a["expr"].as_str() {
            out.push((format!("annotation {}", a["name"]), expr.to_owned()));
        }
    }
    out
}

#[test]
fn the_checker_finds_metric_names_and_refuses_unknown_ones() {
    assert_eq!(
        metric_names(
            r#"sum by (name, reason) (rate(seawall_shed_rejected_total{name=~"$name", reason!="x"}[$__rate_interval])) / ignoring(reason) group_left max(seawall_shed_limit offset 5m) > 0.5"#
        ),
        ["seawall_shed_rejected_total", "seawall_shed_limit"]
    );
    assert_eq!(
        metric_names(&variable_expr(
            r#"label_values({__name__=~"seawall_.+"}, name)"#
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        metric_names(&variable_expr(
            "label_values(seawall_shed_limit{x=\"a,b\"}, name)"
        )),
        ["seawall_shed_limit"]
    );
    assert_eq!(
        metric_names(&variable_expr("label_values(name)")),
        Vec::<String>::new()
    );
    // Known names pass.
    assert!(unknown("rate(seawall_breaker_rejected_total[5m])").is_empty());
    assert!(unknown("seawall_timeout_deadline_seconds").is_empty());
    // A misspelt name, a name of no seawall metric, a histogram suffix on a
    // gauge, and a counter without the `_total` the code gives it: all
    // refused.
    assert_eq!(
        unknown("rate(seawall_shed_rejected_totl[5m])"),
        ["seawall_shed_rejected_totl"]
    );
    assert_eq!(unknown("up + node_load1"), ["up", "node_load1"]);
    assert_eq!(
        unknown("histogram_quantile(0.99, rate(seawall_timeout_deadline_seconds_bucket[5m]))"),
        ["seawall_timeout_deadline_seconds_bucket"]
    );
    assert_eq!(
        unknown("increase(seawall_breaker_transitions[1h])"),
        ["seawall_breaker_transitions"]
    );
    // And a whole (tiny) dashboard with an unknown metric fails the check.
    let bad: Value = serde_json::from_str(
        r#"{"panels": [{"type": "timeseries", "title": "t",
            "targets": [{"expr": "rate(seawall_shed_dropped_total[1m])"}]}],
            "templating": {"list": []}}"#,
    )
    .unwrap();
    let problems: Vec<_> = queries(&bad)
        .into_iter()
        .flat_map(|(_, q)| unknown(&q))
        .collect();
    assert_eq!(problems, ["seawall_shed_dropped_total"]);
}

#[test]
fn every_query_names_only_exported_metrics() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (place, q) in queries(&dashboard) {
        let names = metric_names(&q);
        if names.is_empty() && !place.starts_with("variable") {
            problems.push(format!("{place}: no metric in {q:?}"));
        }
        for name in names {
            if is_exported(&name) {
                used.insert(name);
            } else {
                problems.push(format!("{place}: unknown metric {name:?} in {q:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The other way round: every exported metric is on the dashboard.
    let missing: Vec<_> = ALL_METRICS.iter().filter(|m| !used.contains(**m)).collect();
    assert!(missing.is_empty(), "metrics with no panel: {missing:?}");
}

#[test]
fn the_datasource_is_a_template_variable() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["type"] == "datasource"
        && v["query"] == "prometheus"
        && v["name"] == "datasource"));
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {} uses the variable",
            panel["title"]
        );
        for t in panel["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}");
        }
    }
}
