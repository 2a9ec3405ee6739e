//! The first-party plugins, built from `plugins/` for `wasm32-wasip2` by `gateway/build.rs` and
//! embedded in the binary, so they are available with no extra step.

use super::PluginKind;

/// A plugin shipped inside the gateway.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinPlugin {
    pub name: &'static str,
    pub version: &'static str,
    pub kind: PluginKind,
    pub description: &'static str,
    /// The component bytes.
    pub bytes: &'static [u8],
}

/// Version of the plugins workspace (`plugins/Cargo.toml`), written by the build script.
const VERSION: &str = include_str!(concat!(env!("OUT_DIR"), "/plugins/VERSION"));

macro_rules! embedded {
    ($file:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/plugins/", $file))
    };
}

/// The first-party plugins: name, version, kind and component bytes.
pub fn builtin_plugins() -> Vec<BuiltinPlugin> {
    vec![
        BuiltinPlugin {
            name: "template",
            version: VERSION,
            kind: PluginKind::Transformer,
            description: "Jinja templates (minijinja) for body, url, headers and query; Grafana OnCall `data` templates work unchanged",
            bytes: embedded!("template.wasm"),
        },
        BuiltinPlugin {
            name: "placeholders",
            version: VERSION,
            kind: PluginKind::Transformer,
            description: "Callgoose SQIBS placeholders ({{incident.id}}) and {{{ if(..) return(..); }}} logic, body or query",
            bytes: embedded!("placeholders.wasm"),
        },
        BuiltinPlugin {
            name: "slack",
            version: VERSION,
            kind: PluginKind::Transformer,
            description: "Slack incoming-webhook message with blocks for incident events",
            bytes: embedded!("slack.wasm"),
        },
        BuiltinPlugin {
            name: "signed-header",
            version: VERSION,
            kind: PluginKind::Authenticator,
            description: "Adds a header with an HMAC (sha256/sha512) of the body made with a webhook secret",
            bytes: embedded!("signed_header.wasm"),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_components_with_distinct_names() {
        let all = builtin_plugins();
        assert_eq!(all.len(), 4);
        for p in &all {
            assert_eq!(&p.bytes[..4], b"\0asm", "{}", p.name);
            assert_eq!(p.bytes[6..8], [1, 0], "{} is not a component", p.name);
            assert!(!p.version.is_empty());
        }
        let mut names: Vec<_> = all.iter().map(|p| p.name).collect();
        names.dedup();
        assert_eq!(names.len(), 4);
    }
}
