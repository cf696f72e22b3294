//! Reading a [`StackConfig`] from TOML, with every problem named by its path.
//!
//! The document is parsed once into a tree that remembers where each key and
//! value was written. Each part (`client.breaker`, …) is then deserialised on
//! its own, into the mechanism crate's config type, so a problem in one part
//! does not hide the problems of the others; a problem's position in the
//! file gives back its full path (`client.breaker.per_key.policy.rate`).

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue, ValueDeserializer};

use seawall_core::ConfigError;

use super::{BudgetBackend, BudgetPart, ClientConfig, ServerConfig, StackConfig};

const TOP: &[&str] = &["client", "server"];
const CLIENT: &[&str] = &[
    "retry", "breaker", "timeout", "budget", "chaos", "hedge", "deadline",
];
const SERVER: &[&str] = &["shed", "budget", "timeout", "routes", "chaos", "deadline"];

type Entry<'a, 'i> = (&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>);

/// The config, with the parts that could not be read left out, and the
/// problems found reading it.
pub(super) fn from_str(text: &str) -> (StackConfig, Option<ConfigError>) {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            let (line, column) = line_column(text, at);
            let err = ConfigError::new(
                format!("line {line}, column {column}"),
                snippet(text, e.span().unwrap_or(at..at)),
                format!("is not valid TOML: {}", e.message().trim_end()),
            );
            return (StackConfig::default(), Some(err));
        }
    };
    let mut load = Load {
        text,
        doc: doc.get_ref(),
        errors: Vec::new(),
    };
    let mut config = StackConfig::default();
    for (key, value) in in_file_order(load.doc) {
        match &**key.get_ref() {
            "client" => {
                for (key, part) in load.table("client", value) {
                    let name = &**key.get_ref();
                    let path = format!("client.{name}");
                    match name {
                        "retry" => config.client.retry = load.part(&path, part),
                        "breaker" => config.client.breaker = load.part(&path, part),
                        "timeout" => config.client.timeout = load.part(&path, part),
                        "budget" => config.client.budget = load.budget(&path, part),
                        #[cfg(feature = "chaos")]
                        "chaos" => config.client.chaos = load.part(&path, part),
                        #[cfg(not(feature = "chaos"))]
                        "chaos" => load.needs_feature(&path, part, "chaos"),
                        #[cfg(feature = "hedge")]
                        "hedge" => config.client.hedge = load.part(&path, part),
                        #[cfg(not(feature = "hedge"))]
                        "hedge" => load.needs_feature(&path, part, "hedge"),
                        #[cfg(feature = "deadline")]
                        "deadline" => config.client.deadline = load.part(&path, part),
                        #[cfg(not(feature = "deadline"))]
                        "deadline" => load.needs_feature(&path, part, "deadline"),
                        _ => load.unknown(&path, key, part, CLIENT),
                    }
                }
            }
            "server" => {
                for (key, part) in load.table("server", value) {
                    let name = &**key.get_ref();
                    let path = format!("server.{name}");
                    match name {
                        "shed" => config.server.shed = load.part(&path, part),
                        "budget" => config.server.budget = load.budget(&path, part),
                        "timeout" => config.server.timeout = load.part(&path, part),
                        "routes" => config.server.routes = load.list(&path, part),
                        #[cfg(feature = "chaos")]
                        "chaos" => config.server.chaos = load.part(&path, part),
                        #[cfg(not(feature = "chaos"))]
                        "chaos" => load.needs_feature(&path, part, "chaos"),
                        #[cfg(feature = "deadline")]
                        "deadline" => config.server.deadline = load.part(&path, part),
                        #[cfg(not(feature = "deadline"))]
                        "deadline" => load.needs_feature(&path, part, "deadline"),
                        _ => load.unknown(&path, key, part, SERVER),
                    }
                }
            }
            other => load.unknown(other, key, value, TOP),
        }
    }
    (config, load.finish())
}

struct Load<'a, 'i> {
    text: &'a str,
    doc: &'a DeTable<'i>,
    errors: Vec<ConfigError>,
}

impl<'a, 'i> Load<'a, 'i> {
    /// The entries of table `path`.
    fn table(&mut self, path: &str, value: &'a Spanned<DeValue<'i>>) -> Vec<Entry<'a, 'i>> {
        match value.get_ref().as_table() {
            Some(table) => in_file_order(table),
            None => {
                self.not_a_table(path, value);
                Vec::new()
            }
        }
    }

    /// Deserialises one part as the crate's config type.
    fn part<T: DeserializeOwned>(&mut self, path: &str, value: &Spanned<DeValue<'i>>) -> Option<T> {
        if value.get_ref().as_table().is_none() {
            self.not_a_table(path, value);
            return None;
        }
        self.deserialize(path, value.clone(), "")
    }

    /// An array of tables (`[[server.routes]]`), each deserialised on its
    /// own so that every bad entry is reported; bad entries are left out.
    fn list<T: DeserializeOwned>(&mut self, path: &str, value: &Spanned<DeValue<'i>>) -> Vec<T> {
        let Some(items) = value.get_ref().as_array() else {
            let value_text = if value.get_ref().is_table() {
                "a table".to_owned()
            } else {
                snippet(self.text, value.span())
            };
            self.errors.push(ConfigError::new(
                path,
                value_text,
                format!(
                    "is not an array of tables (write `[[{path}]]`){}",
                    self.line_of(value.span())
                ),
            ));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{path}[{i}]");
            if let Some(t) = self.part(&path, item) {
                out.push(t);
            }
        }
        out
    }

    /// A budget table: `backend` beside the backend's own fields.
    fn budget(&mut self, path: &str, value: &Spanned<DeValue<'i>>) -> Option<BudgetPart> {
        let Some(table) = value.get_ref().as_table() else {
            self.not_a_table(path, value);
            return None;
        };
        let mut rest = table.clone();
        let backend = match rest.remove("backend") {
            None => Some(BudgetBackend::Local),
            Some(b) => {
                let named = b.get_ref().as_str().and_then(BudgetBackend::from_name);
                match named {
                    None => {
                        let names: Vec<String> = BudgetBackend::NAMES
                            .iter()
                            .map(|n| format!("\"{n}\""))
                            .collect();
                        self.errors.push(ConfigError::new(
                            format!("{path}.backend"),
                            snippet(self.text, b.span()),
                            format!(
                                "is not a budget backend (expected one of {}){}",
                                names.join(", "),
                                self.line_of(b.span())
                            ),
                        ));
                    }
                    Some(backend) if !backend.is_available() => {
                        // Its fields cannot be checked either: report the
                        // backend alone.
                        self.errors.push(ConfigError::new(
                            format!("{path}.backend"),
                            snippet(self.text, b.span()),
                            format!(
                                "needs seawall's `{name}` feature, and this build of seawall \
                                 was compiled without it (enable `features = [\"{name}\"]` \
                                 on the seawall dependency){}",
                                self.line_of(b.span()),
                                name = backend.as_str(),
                            ),
                        ));
                        return None;
                    }
                    Some(_) => {}
                }
                named
            }
        };
        let rest = Spanned::new(value.span(), DeValue::Table(rest));
        match backend {
            #[cfg(feature = "redis")]
            Some(BudgetBackend::Redis) => self
                .deserialize(path, rest, ", `backend`")
                .map(BudgetPart::Redis),
            // Local, or an unknown name: check the fields as a local budget's.
            _ => {
                let config = self.deserialize(path, rest, ", `backend`");
                backend?;
                config.map(BudgetPart::Local)
            }
        }
    }

    fn deserialize<T: DeserializeOwned>(
        &mut self,
        path: &str,
        value: Spanned<DeValue<'i>>,
        also_expected: &str,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.errors.push(self.serde_error(path, &e, also_expected));
                None
            }
        }
    }

    fn serde_error(&self, part: &str, e: &toml::de::Error, also_expected: &str) -> ConfigError {
        let message = e.message().trim_end();
        let Some(span) = e.span() else {
            return ConfigError::new(part, "the table", format!("is rejected: {message}"));
        };
        let mut path = Vec::new();
        if !find_path(self.doc, span.start, &mut path) {
            path = part.split('.').map(str::to_owned).collect();
        }
        let line = self.line_of(span.clone());
        if let Some(rest) = message.strip_prefix("unknown field `") {
            // serde: "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
            let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
            // Fields of an inline table deserialised through a buffer (a
            // tagged enum) are reported at the table: name the field itself.
            if self.node(&path).is_some_and(|v| {
                v.get_ref()
                    .as_table()
                    .is_some_and(|t| t.get(name).is_some())
            }) {
                path.push(name.to_owned());
            }
            // The part's own table also takes the fields the loader takes out.
            let also = if path.len() == part.split('.').count() + 1 {
                also_expected
            } else {
                ""
            };
            let expected = expected
                .strip_prefix(", ")
                .map(|expected| format!(" ({expected}{also})"))
                .unwrap_or_default();
            let value = match self.node(&path) {
                Some(v) if v.get_ref().is_table() => "a table".to_owned(),
                Some(v) => snippet(self.text, v.span()),
                None => snippet(self.text, span),
            };
            return ConfigError::new(
                path.join("."),
                value,
                format!("is set on an unknown field{expected}{line}"),
            );
        }
        let field = path.join(".");
        ConfigError::new(
            field,
            snippet(self.text, span),
            format!("is rejected: {message}{line}"),
        )
    }

    /// The value at `path` in the document.
    fn node(&self, path: &[String]) -> Option<&'a Spanned<DeValue<'i>>> {
        // `name` in a table, or `name[i]` in an array of tables.
        fn get<'a, 'i>(at: &'a DeTable<'i>, p: &str) -> Option<&'a Spanned<DeValue<'i>>> {
            match p.strip_suffix(']').and_then(|p| p.split_once('[')) {
                Some((name, i)) => at
                    .get(name)?
                    .get_ref()
                    .as_array()?
                    .get(i.parse::<usize>().ok()?),
                None => at.get(p),
            }
        }
        let (last, parents) = path.split_last()?;
        let mut at: &'a DeTable<'i> = self.doc;
        for p in parents {
            at = get(at, p)?.get_ref().as_table()?;
        }
        get(at, last)
    }

    fn unknown(
        &mut self,
        path: &str,
        key: &Spanned<DeString<'i>>,
        value: &Spanned<DeValue<'i>>,
        known: &[&str],
    ) {
        let value_text = if value.get_ref().is_table() {
            "a table".to_owned()
        } else {
            snippet(self.text, value.span())
        };
        let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        self.errors.push(ConfigError::new(
            path,
            value_text,
            format!(
                "is set on an unknown field (expected one of {}){}",
                expected.join(", "),
                self.line_of(key.span())
            ),
        ));
    }

    /// A part this build cannot read: its feature is off.
    #[cfg_attr(
        all(feature = "chaos", feature = "hedge", feature = "deadline"),
        allow(dead_code)
    )]
    fn needs_feature(&mut self, path: &str, value: &Spanned<DeValue<'i>>, feature: &str) {
        self.errors.push(ConfigError::new(
            path,
            snippet(self.text, value.span()),
            format!(
                "needs seawall's `{feature}` feature, and this build of seawall was compiled \
                 without it (enable `features = [\"{feature}\"]` on the seawall dependency){}",
                self.line_of(value.span())
            ),
        ));
    }

    fn not_a_table(&mut self, path: &str, value: &Spanned<DeValue<'i>>) {
        self.errors.push(ConfigError::new(
            path,
            snippet(self.text, value.span()),
            format!("is not a table{}", self.line_of(value.span())),
        ));
    }

    fn line_of(&self, span: Range<usize>) -> String {
        format!(" (line {})", line_column(self.text, span.start).0)
    }

    fn finish(self) -> Option<ConfigError> {
        let mut errors = self.errors.into_iter();
        let first = errors.next()?;
        Some(errors.fold(first, ConfigError::merge))
    }
}

/// The entries of `table` in the order they were written (whether or not
/// toml's `preserve_order` feature is on), so messages follow the file.
fn in_file_order<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut entries: Vec<Entry<'a, 'i>> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The path of the deepest key whose key or value was written at `pos`.
fn find_path(table: &DeTable<'_>, pos: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        if let Some(child) = value.get_ref().as_table() {
            path.push(key.get_ref().to_string());
            if find_path(child, pos, path) {
                return true;
            }
            path.pop();
        }
        // An array of tables: its entries are named `key[i]`.
        if let Some(items) = value.get_ref().as_array() {
            for (i, item) in items.iter().enumerate() {
                if let Some(child) = item.get_ref().as_table() {
                    path.push(format!("{}[{i}]", key.get_ref()));
                    if find_path(child, pos, path) {
                        return true;
                    }
                    path.pop();
                }
            }
        }
    }
    for (key, value) in table.iter() {
        if key.span().contains(&pos) || value.span().contains(&pos) {
            path.push(key.get_ref().to_string());
            return true;
        }
    }
    false
}

/// 1-based line and column of byte `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The text at `span`, on one line and at most 40 characters.
fn snippet(text: &str, span: Range<usize>) -> String {
    let raw = text.get(span).unwrap_or("").trim();
    let first = raw.lines().next().unwrap_or("");
    let mut out: String = first.chars().take(40).collect();
    if out.len() < raw.len() {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(empty)");
    }
    out
}

impl ClientConfig {
    #[cfg(test)]
    fn parts(&self) -> [bool; 4] {
        [
            self.retry.is_some(),
            self.breaker.is_some(),
            self.timeout.is_some(),
            self.budget.is_some(),
        ]
    }
}

impl ServerConfig {
    #[cfg(test)]
    fn parts(&self) -> [bool; 3] {
        [
            self.shed.is_some(),
            self.budget.is_some(),
            self.timeout.is_some(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        match from_str(text) {
            (c, None) => panic!("expected an error, got {c:?}"),
            (_, Some(e)) => e.errors().iter().map(|e| e.to_string()).collect(),
        }
    }

    fn ok(text: &str) -> StackConfig {
        match from_str(text) {
            (c, None) => c,
            (_, Some(e)) => panic!("{e}"),
        }
    }

    #[test]
    fn empty_document_leaves_everything_out() {
        let c = ok("");
        assert_eq!(c.client.parts(), [false; 4]);
        assert_eq!(c.server.parts(), [false; 3]);
        let c = ok("[client.budget]\n[server.timeout]\n");
        assert_eq!(c.client.parts(), [false, false, false, true]);
        assert_eq!(c.server.parts(), [false, false, true]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let m = messages("[client.retry]\nmax_attempts = = 3\n");
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with("line 2, column "), "{m:?}");
        assert!(m[0].contains("is not valid TOML"), "{m:?}");
    }

    #[test]
    fn routes_are_an_array_and_each_bad_entry_is_named() {
        let c = ok(concat!(
            "[[server.routes]]\npath = \"/search\"\nbudget = { rate = 10 }\n",
            "[[server.routes]]\npath = \"*\"\nbudget = { rate = 1000 }\n",
        ));
        assert_eq!(c.server.routes.len(), 2);
        assert_eq!(c.server.routes[0].path, "/search");
        assert_eq!(c.server.routes[0].budget.rate, 10);
        assert_eq!(c.server.routes[1].method, None);

        assert_eq!(
            messages(concat!(
                "[[server.routes]]\npath = \"/a\"\nbudget = { rate = \"ten\" }\n",
                "[[server.routes]]\npath = \"/b\"\nmethd = \"GET\"\nbudget = {}\n",
                "[[server.routes]]\npath = \"/c\"\nbudget = { rate = 1 }\n",
            )),
            [
                "server.routes[0].budget.rate: \"ten\" is rejected: invalid type: string \"ten\", expected u32 (line 3)",
                "server.routes[1].methd: \"GET\" is set on an unknown field (expected one of `path`, `method`, `budget`) (line 6)",
            ]
        );
        assert_eq!(
            messages("[server.routes]\npath = \"/a\"\n"),
            [
                "server.routes: a table is not an array of tables (write `[[server.routes]]`) (line 1)"
            ]
        );
    }

    #[test]
    fn unknown_tables_and_parts() {
        assert_eq!(
            messages("[clinet.retry]\n[server.cache]\nx = 1\n[client]\nretry = 3\n"),
            [
                "clinet: a table is set on an unknown field (expected one of `client`, `server`) (line 1)",
                "server.cache: a table is set on an unknown field (expected one of `shed`, `budget`, `timeout`, `routes`, `chaos`, `deadline`) (line 2)",
                "client.retry: 3 is not a table (line 5)",
            ]
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        assert_eq!(
            messages(
                "[server.budget]\nrate = \"ten\"\n[client.timeout.per_key]\nmax = \"2 parsecs\"\n"
            ),
            [
                "server.budget.rate: \"ten\" is rejected: invalid type: string \"ten\", expected u32 (line 2)",
                "client.timeout.per_key.max: \"2 parsecs\" is rejected: invalid value: string \"2 parsecs\", \
                 expected a duration (line 4)",
            ]
        );
    }

    #[test]
    fn nested_unknown_fields_have_full_paths() {
        assert_eq!(
            messages(
                "[client.breaker.keys]\ncapacity = 10\n[client.breaker.per_key]\npolicy = { kind = \"consecutive_failures\", treshold = 3 }\n"
            ),
            [
                "client.breaker.per_key.policy.treshold: 3 is set on an unknown field (expected `threshold`) (line 4)"
            ]
        );
    }

    #[test]
    fn missing_policy_fields_name_the_policy() {
        let m = messages(
            "[client.breaker.per_key]\npolicy = { kind = \"failure_rate_time\", window = \"10s\", rate = 0.5, min_calls = 5 }\n",
        );
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with(
                "client.breaker.per_key.policy: { kind = \"failure_rate_time\", window = "
            ),
            "{m:?}"
        );
        assert!(
            m[0].ends_with("is rejected: missing field `buckets` (line 2)"),
            "{m:?}"
        );
    }

    #[test]
    fn budget_backends() {
        let c = ok("[server.budget]\nbackend = \"local\"\nrate = 5\n");
        let b = c.server.budget.unwrap();
        assert_eq!(b.backend(), BudgetBackend::Local);
        assert_eq!(b.as_local().map(|c| c.rate), Some(5));
        assert_eq!(
            messages(
                "[server.budget]\nbackend = \"memcached\"\n[client.budget]\nbackend = 1\nrat = 5\n"
            ),
            [
                "server.budget.backend: \"memcached\" is not a budget backend (expected one of \"local\", \"redis\") (line 2)",
                "client.budget.backend: 1 is not a budget backend (expected one of \"local\", \"redis\") (line 4)",
                "client.budget.rat: 5 is set on an unknown field (expected one of `name`, `rate`, `per`, `burst`, `mode`, `advertise`, `backend`) (line 5)",
            ]
        );
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_backend_needs_the_feature() {
        assert_eq!(
            messages("[server.budget]\nbackend = \"redis\"\nurl = \"redis://h:1\"\n"),
            [
                "server.budget.backend: \"redis\" needs seawall's `redis` feature, and this build of \
                 seawall was compiled without it (enable `features = [\"redis\"]` on the seawall \
                 dependency) (line 2)"
            ]
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_backend_reads_the_redis_fields() {
        let c = ok(
            "[client.budget]\nbackend = \"redis\"\nurl = \"redis://10.0.0.1:6379\"\nname = \"payments-api\"\nrate = 50\n",
        );
        let b = c.client.budget.unwrap();
        assert_eq!(b.backend(), BudgetBackend::Redis);
        let r = b.as_redis().unwrap();
        assert_eq!(
            (r.url.as_str(), r.name.as_str(), r.rate),
            ("redis://10.0.0.1:6379", "payments-api", 50)
        );
        assert_eq!(
            messages("[server.budget]\nbackend = \"redis\"\nrat = 5\n"),
            [
                "server.budget.rat: 5 is set on an unknown field (expected one of `url`, `name`, `rate`, `per`, `burst`, `mode`, `fallback`, `redis_timeout`, `probe_interval`, `lease_interval`, `lease_share`, `keys`, `deployment`, `key_slots`, `username`, `password`, `tls`, `backend`) (line 3)",
            ]
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_backend_reads_the_deployment_and_tls_fields() {
        use seawall_budget_redis::Deployment;
        let c = ok(concat!(
            "[client.budget]\nbackend = \"redis\"\nname = \"tenants\"\nkey_slots = 48\n",
            "username = \"budget\"\npassword = \"s3cret\"\n",
            "deployment = { cluster = { nodes = [\"rediss://10.0.0.1:6379\", \"rediss://10.0.0.2:6379\"] } }\n",
            "tls = { ca_file = \"/etc/redis/ca.pem\" }\n",
            "[server.budget]\nbackend = \"redis\"\n",
            "deployment = { sentinel = { master = \"budget\", sentinels = [\"redis://10.0.0.9:26379\"] } }\n",
        ));
        let r = c.client.budget.unwrap();
        let r = r.as_redis().unwrap();
        assert_eq!(
            r.deployment,
            Deployment::Cluster {
                nodes: vec![
                    "rediss://10.0.0.1:6379".into(),
                    "rediss://10.0.0.2:6379".into()
                ]
            }
        );
        assert_eq!(r.key_slots, 48);
        assert_eq!(r.username.as_deref(), Some("budget"));
        assert_eq!(
            r.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/redis/ca.pem"))
        );
        assert!(!format!("{r:?}").contains("s3cret"));
        let s = c.server.budget.unwrap();
        assert_eq!(s.as_redis().unwrap().deployment.kind(), "sentinel");
        // A deployment that names no node is refused by validation, by field.
        let c =
            ok("[server.budget]\nbackend = \"redis\"\ndeployment = { cluster = { nodes = [] } }\n");
        let err = c.server.budget.unwrap().validate().unwrap_err();
        assert_eq!(err.field(), "deployment.cluster.nodes");
        // A misspelt deployment is reported with its path, like every field.
        let m = messages("[server.budget]\nbackend = \"redis\"\ndeployment = \"clustr\"\n");
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].starts_with("server.budget.deployment"), "{m:?}");
    }
}
