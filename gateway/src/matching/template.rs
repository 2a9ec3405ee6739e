//! Grafana OnCall's `trigger_template`: a Jinja condition rendered against the event body.
//!
//! OnCall's rule, not Jinja truthiness: the webhook fires when the rendered text, trimmed, is `true`
//! or `1` in any case. So `{{ 0 }}`, `False`, `yes` and an empty string do not fire.
//!
//! Sandbox: each template gets its own minijinja environment with no loader (so `include`,
//! `import` and `extends` find nothing), a fuel budget that bounds both instructions and
//! allocation, and the default recursion limit. Syntax errors are refused when the webhook is
//! saved, with line and column; a render error at match time means "does not fire".

use minijinja::{Environment, Value as JinjaValue};

use super::FieldError;

/// Fuel for one render (minijinja: roughly one unit per instruction, or ~64 bytes allocated).
pub const TEMPLATE_FUEL: u64 = 50_000;
/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 64 * 1024;
/// How much of a non-firing render `explain` reports.
const RENDERED_PREVIEW: usize = 200;

const NAME: &str = "trigger_template";

/// A compiled trigger template.
#[derive(Debug)]
pub struct TriggerTemplate {
    env: Environment<'static>,
}

/// Why a template did not fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateMiss {
    /// It rendered, to something other than `true` / `1` (shown cut to 200 characters).
    Rendered(String),
    /// Rendering failed (undefined attribute, out of fuel, ...).
    Error(String),
}

impl TriggerTemplate {
    /// Compiles `source`; `at` names the field in errors.
    pub fn compile(source: &str, at: &str) -> Result<TriggerTemplate, FieldError> {
        if source.len() > MAX_TEMPLATE_LEN {
            return Err(FieldError::new(
                at,
                format!("the template is longer than {MAX_TEMPLATE_LEN} bytes"),
            ));
        }
        let mut env = Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| FieldError::new(at, describe(&e, source)))?;
        unknown_filters(&env, NAME, at)?;
        Ok(TriggerTemplate { env })
    }

    /// Renders against `ctx` (the event body as a Jinja value) and applies OnCall's rule.
    pub fn check(&self, ctx: &JinjaValue) -> Result<(), TemplateMiss> {
        let rendered = self
            .env
            .get_template(NAME)
            .and_then(|t| t.render(ctx))
            .map_err(|e| TemplateMiss::Error(render_error(&e)))?;
        if fires(&rendered) {
            Ok(())
        } else {
            Err(TemplateMiss::Rendered(
                rendered.trim().chars().take(RENDERED_PREVIEW).collect(),
            ))
        }
    }
}

/// Checks a Jinja template as Grafana OnCall does when a webhook is saved (`data`, `headers`,
/// `url`): a syntax error or a filter nobody defines is refused, naming `at`; what only fails when
/// rendered against a real event (an undefined attribute, a type error) is not.
pub fn validate_jinja(source: &str, at: &str) -> Result<(), FieldError> {
    if source.len() > MAX_TEMPLATE_LEN {
        return Err(FieldError::new(
            at,
            format!("the template is longer than {MAX_TEMPLATE_LEN} bytes"),
        ));
    }
    let mut env = Environment::new();
    env.add_template_owned(NAME, source.to_string())
        .map_err(|e| FieldError::new(at, describe(&e, source)))?;
    unknown_filters(&env, NAME, at)
}

/// Refuses the first filter the compiled template applies that `env` does not define (minijinja
/// only finds those when rendering reaches them; Jinja, which OnCall runs, when compiling).
fn unknown_filters(env: &Environment<'_>, name: &str, at: &str) -> Result<(), FieldError> {
    use minijinja::machinery::{Instruction, Instructions, get_compiled_template};
    let tmpl = env
        .get_template(name)
        .map_err(|e| FieldError::new(at, e.to_string()))?;
    let compiled = get_compiled_template(&tmpl);
    let applied = |ins: &Instructions<'_>, out: &mut Vec<String>| {
        let mut i = 0;
        while let Some(op) = ins.get(i) {
            if let Instruction::ApplyFilter(f, ..) = op {
                out.push((*f).to_string());
            }
            i += 1;
        }
    };
    let mut names = Vec::new();
    applied(&compiled.instructions, &mut names);
    for block in compiled.blocks.values() {
        applied(block, &mut names);
    }
    for f in names {
        // Applying it to nothing fails with UnknownFilter only when nobody defines it (a
        // filter's own refusal of `none` is another error kind).
        let known = !matches!(
            env.render_str(&format!("{{{{ none | {f} }}}}"), ()),
            Err(e) if e.kind() == minijinja::ErrorKind::UnknownFilter
        );
        if !known {
            return Err(FieldError::new(at, format!("unknown filter {f:?}")));
        }
    }
    Ok(())
}

/// OnCall's rule: trimmed text equal to `true` or `1`, any case.
pub fn fires(rendered: &str) -> bool {
    let t = rendered.trim();
    t == "1" || t.eq_ignore_ascii_case("true")
}

/// `line 2, column 7: syntax error: unexpected end of input, expected end of block`.
fn describe(e: &minijinja::Error, source: &str) -> String {
    let what = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    match (e.line(), e.range()) {
        (Some(line), Some(range)) => {
            let start = range.start.min(source.len());
            let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
            let column = source[line_start..start].chars().count() + 1;
            format!("line {line}, column {column}: {what}")
        }
        (Some(line), None) => format!("line {line}: {what}"),
        _ => what,
    }
}

fn render_error(e: &minijinja::Error) -> String {
    let what = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    match e.line() {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(src: &str, body: serde_json::Value) -> Result<(), TemplateMiss> {
        TriggerTemplate::compile(src, "trigger_template")
            .unwrap()
            .check(&JinjaValue::from(minijinja::value::Serde(&body)))
    }

    #[test]
    fn saved_templates_refuse_syntax_errors_and_unknown_filters() {
        let ok = validate_jinja("{\"a\": {{ alert_payload.foo | tojson() }}}", "data");
        assert!(ok.is_ok(), "{ok:?}");
        assert!(validate_jinja("{% if x %}{{ y | upper }}{% endif %}", "data").is_ok());
        let e = validate_jinja("{{ alert_payload.foo.bar | to_json }}", "data").unwrap_err();
        assert_eq!(e.field, "data");
        assert!(e.message.contains("to_json"), "{}", e.message);
        // Found even where rendering would not reach it.
        let e = validate_jinja("{% if false %}{{ y | nope }}{% endif %}", "url").unwrap_err();
        assert!(e.message.contains("nope"), "{}", e.message);
        let e = validate_jinja("{{ x ", "headers").unwrap_err();
        assert_eq!(e.field, "headers");
        assert!(TriggerTemplate::compile("{{ x | to_json }}", "trigger_template").is_err());
    }

    #[test]
    fn oncall_rule_true_or_one_any_case() {
        for (src, fired) in [
            ("true", true),
            ("  TRUE \n", true),
            ("True", true),
            ("1", true),
            ("{{ 1 }}", true),
            ("false", false),
            ("0", false),
            ("yes", false),
            ("", false),
            ("11", false),
        ] {
            assert_eq!(run(src, json!({})).is_ok(), fired, "{src:?}");
        }
    }

    #[test]
    fn renders_against_the_event_body() {
        let body = json!({"alert_payload": {"labels": {"severity": "critical"}}, "service": {"slug": "db"}});
        let t = "{{ alert_payload.labels.severity == 'critical' and service.slug == 'db' }}";
        assert_eq!(run(t, body.clone()), Ok(()));
        assert_eq!(
            run("{{ service.slug == 'web' }}", body),
            Err(TemplateMiss::Rendered("False".into()))
        );
    }

    #[test]
    fn jinja_truthiness_is_not_enough() {
        // A non-empty string is truthy in Jinja, but OnCall fires only on `true` / `1`.
        assert_eq!(
            run("{{ status }}", json!({"status": "firing"})),
            Err(TemplateMiss::Rendered("firing".into()))
        );
    }

    #[test]
    fn render_error_does_not_fire() {
        let miss = run("{{ missing.attribute.deeper }}", json!({})).unwrap_err();
        assert!(
            matches!(&miss, TemplateMiss::Error(m) if m.contains("undefined")),
            "{miss:?}"
        );
    }

    #[test]
    fn runaway_template_runs_out_of_fuel() {
        let t = "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}";
        let miss = run(t, json!({})).unwrap_err();
        assert!(
            matches!(&miss, TemplateMiss::Error(m) if m.contains("fuel")),
            "{miss:?}"
        );
    }

    #[test]
    fn no_loader_so_include_fails() {
        let miss = run("{% include '/etc/passwd' %}", json!({})).unwrap_err();
        assert!(matches!(miss, TemplateMiss::Error(_)));
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let e =
            TriggerTemplate::compile("true\n{% if x %}\n{{ y }", "trigger_template").unwrap_err();
        assert_eq!(e.field, "trigger_template");
        assert!(e.message.starts_with("line 3, column "), "{}", e.message);
        assert!(e.message.contains("syntax error"), "{}", e.message);
        let e = TriggerTemplate::compile("{% if %}", "trigger_template").unwrap_err();
        assert!(e.message.starts_with("line 1, column 7"), "{}", e.message);
    }

    #[test]
    fn oversized_template_is_refused() {
        assert!(TriggerTemplate::compile(&"x".repeat(MAX_TEMPLATE_LEN + 1), "t").is_err());
    }

    #[test]
    fn environment_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TriggerTemplate>();
    }
}
