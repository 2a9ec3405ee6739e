//! Filters: a Mongo-style query, the Squadcast shortcuts and expression groups, all compiled once
//! (when a webhook is saved or the matcher is built) into one small tree of `Node`s.
//!
//! The accepted JSON shapes are documented on the [`matching`](super) module. Evaluation never
//! allocates: paths are pre-split, regexes pre-built, and a failed check returns the position of the
//! failing clause (`filter.$or`, `filter.severity.$gt`, ...) borrowed from the compiled tree, which
//! is what the dry-run (`explain`) reports.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::{Map, Value};

use super::FieldError;
use crate::model::Event;

/// Compiled size cap of one `$regex` (the `regex` crate's `size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest `$regex` pattern accepted, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;
/// Deepest nesting of filter objects and groups.
pub const MAX_DEPTH: usize = 32;
/// Most clauses (operators, rules, groups) in one filter.
pub const MAX_CLAUSES: usize = 512;

/// A compiled filter. `check` is pure and cheap; build one with [`Filter::compile`].
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
}

impl Filter {
    /// Compiles a filter value. `at` names its position in error messages (`"filter"`).
    pub fn compile(value: &Value, at: &str) -> Result<Filter, FieldError> {
        let mut c = Compiler { clauses: 0 };
        Ok(Filter {
            root: c.object(value, at, 0)?,
        })
    }

    /// Grafana OnCall's `integration_filter`: the event's alert source (id, short name or
    /// integration id) must be one of `ids`. `None` or an empty list means no restriction.
    pub fn integration(ids: &[String], at: &str) -> Result<Option<Filter>, FieldError> {
        if ids.is_empty() {
            return Ok(None);
        }
        let mut names = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let id = id.trim();
            if id.is_empty() {
                return Err(FieldError::new(format!("{at}[{i}]"), "must not be empty"));
            }
            names.push(Box::from(id));
        }
        Ok(Some(Filter {
            root: Node::Scoped {
                key: ScopeKey::AlertSource,
                names,
                at: at.into(),
            },
        }))
    }

    /// `Ok` when the event passes, else the position of the clause that failed.
    pub fn check<'f>(&'f self, event: &Event) -> Result<(), &'f str> {
        self.root.check(event)
    }

    /// Whether the event passes.
    pub fn matches(&self, event: &Event) -> bool {
        self.check(event).is_ok()
    }
}

/// One clause of a compiled filter. `at` is its position in the source (for explain).
#[derive(Debug, Clone)]
enum Node {
    /// Every child passes (an empty list passes).
    All(Vec<Node>),
    /// At least one child passes.
    Any {
        children: Vec<Node>,
        at: Box<str>,
    },
    Not {
        child: Box<Node>,
        at: Box<str>,
    },
    Field {
        path: Path,
        test: Test,
        at: Box<str>,
    },
    /// Squadcast's services / alert sources: the event's id (or slug, name, short name) is listed.
    Scoped {
        key: ScopeKey,
        names: Vec<Box<str>>,
        at: Box<str>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeKey {
    Service,
    AlertSource,
}

impl Node {
    fn check<'f>(&'f self, event: &Event) -> Result<(), &'f str> {
        match self {
            Node::All(children) => children.iter().try_for_each(|c| c.check(event)),
            Node::Any { children, at } => {
                if children.iter().any(|c| c.check(event).is_ok()) {
                    Ok(())
                } else {
                    Err(at)
                }
            }
            Node::Not { child, at } => {
                if child.check(event).is_ok() {
                    Err(at)
                } else {
                    Ok(())
                }
            }
            Node::Field { path, test, at } => {
                if test.on_path(&event.body, path) {
                    Ok(())
                } else {
                    Err(at)
                }
            }
            Node::Scoped { key, names, at } => {
                let listed = |s: &str| names.iter().any(|n| &**n == s);
                let hit = match key {
                    ScopeKey::Service => {
                        event.scope.service_id.as_deref().is_some_and(listed)
                            || ["id", "slug", "name"].iter().any(|k| {
                                event
                                    .body
                                    .get("service")
                                    .and_then(|s| s.get(k))
                                    .and_then(Value::as_str)
                                    .is_some_and(listed)
                            })
                    }
                    ScopeKey::AlertSource => event.scope.alert_sources.iter().any(|s| listed(s)),
                };
                if hit { Ok(()) } else { Err(at) }
            }
        }
    }
}

/// A dotted path, split once. A numeric segment also indexes arrays (`assigned_to.0.type`).
#[derive(Debug, Clone)]
struct Path(Box<[Segment]>);

#[derive(Debug, Clone)]
struct Segment {
    key: Box<str>,
    index: Option<usize>,
}

impl Path {
    fn parse(raw: &str, at: &str) -> Result<Path, FieldError> {
        if raw.is_empty() || raw.split('.').any(str::is_empty) {
            return Err(FieldError::new(
                at,
                format!("{raw:?} is not a valid dotted path (empty segment)"),
            ));
        }
        Ok(Path(
            raw.split('.')
                .map(|s| Segment {
                    key: s.into(),
                    index: s.parse().ok(),
                })
                .collect(),
        ))
    }
}

/// Calls `f` on every value the path reaches, stopping at the first `true`. Like Mongo, a
/// non-numeric segment that meets an array looks into each element.
fn visit<'a>(v: &'a Value, segs: &[Segment], f: &mut dyn FnMut(&'a Value) -> bool) -> bool {
    let Some((seg, rest)) = segs.split_first() else {
        return f(v);
    };
    match v {
        Value::Object(m) => m.get(&*seg.key).is_some_and(|c| visit(c, rest, f)),
        Value::Array(items) => match seg.index {
            Some(i) => items.get(i).is_some_and(|c| visit(c, rest, f)),
            None => items.iter().any(|c| c.is_object() && visit(c, segs, f)),
        },
        _ => false,
    }
}

/// A field-level test. Negations (`$ne`, `$nin`, `$not`, `$exists: false`) are `Node::Not`
/// around the positive test, which gives Mongo's rule that a missing field passes them.
#[derive(Debug, Clone)]
enum Test {
    Eq(Value),
    In(Vec<Value>),
    Cmp(Ordering, bool, Bound),
    Exists,
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum Bound {
    Num(f64),
    Str(Box<str>),
}

impl Test {
    fn on_path(&self, body: &Value, path: &Path) -> bool {
        let mut found = false;
        let hit = visit(body, &path.0, &mut |v| {
            found = true;
            self.on_value(v)
        });
        hit || (!found && self.on_missing())
    }

    /// Mongo: `{a: null}` and `{a: {$in: [null]}}` match documents without `a`.
    fn on_missing(&self) -> bool {
        match self {
            Test::Eq(t) => t.is_null(),
            Test::In(ts) => ts.iter().any(Value::is_null),
            _ => false,
        }
    }

    /// Mongo: a value that is an array matches when it, or any of its elements, matches.
    fn on_value(&self, v: &Value) -> bool {
        let one = |x: &Value| match self {
            Test::Eq(t) => json_eq(x, t),
            Test::In(ts) => ts.iter().any(|t| json_eq(x, t)),
            Test::Cmp(ord, or_equal, bound) => {
                compare(x, bound).is_some_and(|o| o == *ord || (*or_equal && o.is_eq()))
            }
            Test::Exists => true,
            Test::Regex(re) => x.as_str().is_some_and(|s| re.is_match(s)),
        };
        one(v) || v.as_array().is_some_and(|items| items.iter().any(one))
    }
}

/// `v` compared with the bound; only numbers with numbers and strings with strings (Mongo's type
/// bracketing), so `{"$gt": 5}` never matches `"6"`.
fn compare(v: &Value, bound: &Bound) -> Option<Ordering> {
    match (v, bound) {
        (Value::Number(n), Bound::Num(b)) => n.as_f64()?.partial_cmp(b),
        (Value::String(s), Bound::Str(b)) => Some(s.as_str().cmp(b)),
        _ => None,
    }
}

/// JSON equality where `1` equals `1.0` (Mongo compares numbers by value).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

const OPERATORS: &str = "$eq $ne $in $nin $gt $gte $lt $lte $exists $regex $options $not";
const RULE_OPS: &str = "is is_not in not_in gt gte lt lte exists not_exists matches contains";

struct Compiler {
    clauses: usize,
}

fn err(at: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(at, message)
}

fn one_or_all(mut nodes: Vec<Node>) -> Node {
    if nodes.len() == 1 {
        nodes.pop().unwrap_or(Node::All(Vec::new()))
    } else {
        Node::All(nodes)
    }
}

impl Compiler {
    fn count(&mut self, at: &str, depth: usize) -> Result<(), FieldError> {
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(err(
                at,
                format!("the filter has more than {MAX_CLAUSES} clauses"),
            ));
        }
        if depth > MAX_DEPTH {
            return Err(err(
                at,
                format!("the filter is nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    /// A filter object: operators, shortcuts and paths (implicit AND), or an expression group.
    fn object(&mut self, v: &Value, at: &str, depth: usize) -> Result<Node, FieldError> {
        self.count(at, depth)?;
        let Value::Object(m) = v else {
            return Err(err(at, "expected a filter object"));
        };
        if m.contains_key("rules") || m.contains_key("match") {
            return self.group(m, at, depth);
        }
        let mut nodes = Vec::with_capacity(m.len());
        for (k, val) in m {
            let at = format!("{at}.{k}");
            nodes.push(match k.as_str() {
                "$and" | "$or" => {
                    let children = self.list(val, &at, depth)?;
                    if k == "$and" {
                        Node::All(children)
                    } else {
                        Node::Any {
                            children,
                            at: at.into(),
                        }
                    }
                }
                "$not" => Node::Not {
                    child: Box::new(self.object(val, &at, depth + 1)?),
                    at: at.into(),
                },
                "services" => self.scoped(ScopeKey::Service, val, &at, &at)?,
                "alert_sources" => self.scoped(ScopeKey::AlertSource, val, &at, &at)?,
                op if op.starts_with('$') => {
                    return Err(err(
                        &at,
                        format!("unknown operator {op} (top level accepts $and $or $not)"),
                    ));
                }
                path => self.field(path, val, &at, depth)?,
            });
        }
        Ok(one_or_all(nodes))
    }

    fn list(&mut self, v: &Value, at: &str, depth: usize) -> Result<Vec<Node>, FieldError> {
        match v {
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.object(item, &format!("{at}[{i}]"), depth + 1))
                .collect(),
            _ => Err(err(at, "expected a non-empty array of filter objects")),
        }
    }

    /// `path: value` (equality) or `path: {operators}`.
    fn field(&mut self, raw: &str, v: &Value, at: &str, depth: usize) -> Result<Node, FieldError> {
        let path = Path::parse(raw, at)?;
        let Value::Object(ops) = v else {
            return self.op(&path, "$eq", v, at, at);
        };
        if !ops.keys().any(|k| k.starts_with('$')) {
            return self.op(&path, "$eq", v, at, at);
        }
        if let Some(k) = ops.keys().find(|k| !k.starts_with('$')) {
            return Err(err(
                &format!("{at}.{k}"),
                "cannot mix operators and field names in one object",
            ));
        }
        self.ops(&path, ops, at, depth)
    }

    fn ops(
        &mut self,
        path: &Path,
        ops: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<Node, FieldError> {
        let mut nodes = Vec::with_capacity(ops.len());
        for (op, val) in ops {
            let op_at = format!("{at}.{op}");
            self.count(&op_at, depth)?;
            nodes.push(match op.as_str() {
                "$options" if ops.contains_key("$regex") => continue,
                "$options" => return Err(err(&op_at, "$options is only valid beside $regex")),
                "$regex" => {
                    let options = match ops.get("$options") {
                        None => "",
                        Some(Value::String(s)) => s.as_str(),
                        Some(_) => {
                            return Err(err(
                                &format!("{at}.$options"),
                                "expected a string of flags (i m s x)",
                            ));
                        }
                    };
                    let pattern = val
                        .as_str()
                        .ok_or_else(|| err(&op_at, "expected a regular expression string"))?;
                    let re = regex(pattern, options, &op_at, &format!("{at}.$options"))?;
                    Node::Field {
                        path: path.clone(),
                        test: Test::Regex(re),
                        at: op_at.into(),
                    }
                }
                "$not" => {
                    let Value::Object(inner) = val else {
                        return Err(err(
                            &op_at,
                            "expected an operator object such as {\"$eq\": ...}",
                        ));
                    };
                    if inner.is_empty() || inner.keys().any(|k| !k.starts_with('$')) {
                        return Err(err(
                            &op_at,
                            "expected an operator object such as {\"$eq\": ...}",
                        ));
                    }
                    let child = self.ops(path, inner, &op_at, depth + 1)?;
                    Node::Not {
                        child: Box::new(child),
                        at: op_at.into(),
                    }
                }
                _ => self.op(path, op, val, &op_at, &op_at)?,
            });
        }
        Ok(one_or_all(nodes))
    }

    /// One comparison operator. `at` names the clause, `value_at` where its value sits.
    fn op(
        &mut self,
        path: &Path,
        op: &str,
        v: &Value,
        at: &str,
        value_at: &str,
    ) -> Result<Node, FieldError> {
        let field = |test| Node::Field {
            path: path.clone(),
            test,
            at: at.into(),
        };
        let not = |node| Node::Not {
            child: Box::new(node),
            at: at.into(),
        };
        let list = || match v {
            Value::Array(items) => Ok(items.clone()),
            _ => Err(err(value_at, "expected an array")),
        };
        let bound = || match v {
            Value::Number(n) => n
                .as_f64()
                .map(Bound::Num)
                .ok_or_else(|| err(value_at, "number out of range")),
            Value::String(s) => Ok(Bound::Str(s.as_str().into())),
            _ => Err(err(value_at, "expected a number or string")),
        };
        Ok(match op {
            "$eq" => field(Test::Eq(v.clone())),
            "$ne" => not(field(Test::Eq(v.clone()))),
            "$in" => field(Test::In(list()?)),
            "$nin" => not(field(Test::In(list()?))),
            "$gt" => field(Test::Cmp(Ordering::Greater, false, bound()?)),
            "$gte" => field(Test::Cmp(Ordering::Greater, true, bound()?)),
            "$lt" => field(Test::Cmp(Ordering::Less, false, bound()?)),
            "$lte" => field(Test::Cmp(Ordering::Less, true, bound()?)),
            "$exists" => {
                let want = match v {
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    _ => return Err(err(value_at, "expected true or false")),
                };
                if want {
                    field(Test::Exists)
                } else {
                    not(field(Test::Exists))
                }
            }
            other => {
                return Err(err(
                    at,
                    format!("unknown operator {other} (expected one of {OPERATORS})"),
                ));
            }
        })
    }

    /// Squadcast's `services` / `alert_sources`: a list of ids (or slugs, names, short names).
    /// An empty list means no restriction, as an untouched drop-down does.
    fn scoped(
        &mut self,
        key: ScopeKey,
        v: &Value,
        at: &str,
        value_at: &str,
    ) -> Result<Node, FieldError> {
        let what = if key == ScopeKey::Service {
            "service ids, slugs or names"
        } else {
            "alert source ids or short names"
        };
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            Value::String(_) => vec![v],
            _ => return Err(err(value_at, format!("expected an array of {what}"))),
        };
        if items.is_empty() {
            return Ok(Node::All(Vec::new()));
        }
        let mut names = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str().map(str::trim) {
                Some(s) if !s.is_empty() => names.push(Box::from(s)),
                _ => {
                    return Err(err(
                        &format!("{value_at}[{i}]"),
                        format!("expected one of {what} (a non-empty string)"),
                    ));
                }
            }
        }
        Ok(Node::Scoped {
            key,
            names,
            at: at.into(),
        })
    }

    /// An expression group: `{"match": "all"|"any", "rules": [rule | group, ...]}`.
    fn group(
        &mut self,
        m: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<Node, FieldError> {
        if let Some(k) = m.keys().find(|k| *k != "match" && *k != "rules") {
            return Err(err(
                &format!("{at}.{k}"),
                "an expression group has only `match` and `rules`",
            ));
        }
        let any = match m.get("match") {
            None => false,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("all") => false,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("any") => true,
            Some(_) => return Err(err(&format!("{at}.match"), "expected \"all\" or \"any\"")),
        };
        let rules_at = format!("{at}.rules");
        let Some(Value::Array(rules)) = m
            .get("rules")
            .filter(|r| r.as_array().is_some_and(|a| !a.is_empty()))
        else {
            return Err(err(
                &rules_at,
                "expected a non-empty array of rules or groups",
            ));
        };
        let mut children = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{rules_at}[{i}]");
            children.push(match rule {
                Value::Object(r) if r.contains_key("rules") || r.contains_key("match") => {
                    self.object(rule, &at, depth + 1)?
                }
                Value::Object(r) => self.rule(r, &at, depth + 1)?,
                _ => {
                    return Err(err(
                        &at,
                        "expected a rule {\"field\", \"op\", \"value\"} or a group",
                    ));
                }
            });
        }
        Ok(if any {
            Node::Any {
                children,
                at: at.into(),
            }
        } else {
            Node::All(children)
        })
    }

    /// `{"field": ..., "op": ..., "value": ...}`, mapped onto the same nodes as the Mongo form.
    fn rule(&mut self, r: &Map<String, Value>, at: &str, depth: usize) -> Result<Node, FieldError> {
        self.count(at, depth)?;
        if let Some(k) = r
            .keys()
            .find(|k| !["field", "op", "value"].contains(&k.as_str()))
        {
            return Err(err(
                &format!("{at}.{k}"),
                "a rule has only `field`, `op` and `value`",
            ));
        }
        let field = r
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&format!("{at}.field"), "expected a string"))?;
        let op = match r.get("op") {
            None => "is",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(err(
                    &format!("{at}.op"),
                    format!("expected one of {RULE_OPS}"),
                ));
            }
        };
        let value_at = format!("{at}.value");
        let null = Value::Null;
        let value = r.get("value").unwrap_or(&null);
        if !matches!(op, "exists" | "not_exists") && !r.contains_key("value") {
            return Err(err(&value_at, "is required"));
        }
        let not = |node| Node::Not {
            child: Box::new(node),
            at: at.into(),
        };
        let scope_key = match field {
            "service" | "services" => Some(ScopeKey::Service),
            "alert_source" | "alert_sources" => Some(ScopeKey::AlertSource),
            _ => None,
        };
        if let Some(key) = scope_key {
            if value.as_array().is_some_and(Vec::is_empty) {
                return Err(err(&value_at, "expected at least one value"));
            }
            let node = self.scoped(key, value, at, &value_at)?;
            return match op {
                "is" | "in" => Ok(node),
                "is_not" | "not_in" => Ok(not(node)),
                _ => Err(err(
                    &format!("{at}.op"),
                    format!("{field} accepts is, is_not, in, not_in"),
                )),
            };
        }
        let path = Path::parse(field, &format!("{at}.field"))?;
        let mongo = match op {
            "is" => "$eq",
            "is_not" => "$ne",
            "in" => "$in",
            "not_in" => "$nin",
            "gt" => "$gt",
            "gte" => "$gte",
            "lt" => "$lt",
            "lte" => "$lte",
            "exists" | "not_exists" => {
                let node = Node::Field {
                    path,
                    test: Test::Exists,
                    at: at.into(),
                };
                return Ok(if op == "exists" { node } else { not(node) });
            }
            "matches" | "contains" => {
                let s = value
                    .as_str()
                    .ok_or_else(|| err(&value_at, "expected a string"))?;
                let pattern = if op == "contains" {
                    regex::escape(s)
                } else {
                    s.to_string()
                };
                let re = regex(&pattern, "", &value_at, &value_at)?;
                return Ok(Node::Field {
                    path,
                    test: Test::Regex(re),
                    at: at.into(),
                });
            }
            _ => {
                return Err(err(
                    &format!("{at}.op"),
                    format!("unknown op {op:?} (expected one of {RULE_OPS})"),
                ));
            }
        };
        self.op(&path, mongo, value, at, &value_at)
    }
}

fn regex(pattern: &str, options: &str, at: &str, options_at: &str) -> Result<Regex, FieldError> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(err(
            at,
            format!("the pattern is longer than {MAX_REGEX_LEN} bytes"),
        ));
    }
    let mut b = regex::RegexBuilder::new(pattern);
    for flag in options.chars() {
        match flag {
            'i' => b.case_insensitive(true),
            'm' => b.multi_line(true),
            's' => b.dot_matches_new_line(true),
            'x' => b.ignore_whitespace(true),
            other => {
                return Err(err(
                    options_at,
                    format!("unknown regex flag {other:?} (expected i, m, s or x)"),
                ));
            }
        };
    }
    b.size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT);
    b.build().map_err(|e| match e {
        regex::Error::CompiledTooBig(_) => err(
            at,
            format!(
                "the regular expression is too large (limit {REGEX_SIZE_LIMIT} bytes compiled)"
            ),
        ),
        other => err(
            at,
            format!(
                "invalid regular expression: {}",
                other
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("syntax error")
                    .trim()
            ),
        ),
    })
}

#[cfg(test)]
mod tests;
