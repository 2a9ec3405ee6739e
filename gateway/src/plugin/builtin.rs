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
        connector(
            "teams",
            embedded!("teams.wasm"),
            "Microsoft Teams Workflows message with an Adaptive Card for incident events",
        ),
        connector(
            "discord",
            embedded!("discord.wasm"),
            "Discord webhook message with an embed (colour by status) for incident events",
        ),
        connector(
            "google-chat",
            embedded!("google_chat.wasm"),
            "Google Chat card (cardsV2), one thread per incident",
        ),
        connector(
            "mattermost",
            embedded!("mattermost.wasm"),
            "Mattermost incoming-webhook post with a coloured attachment",
        ),
        connector(
            "pagerduty",
            embedded!("pagerduty.wasm"),
            "PagerDuty Events API v2 trigger / acknowledge / resolve, dedup_key from the incident id; routing_key filled in by the host",
        ),
        connector(
            "opsgenie",
            embedded!("opsgenie.wasm"),
            "Opsgenie alert create / acknowledge / close by alias; GenieKey filled in by the host",
        ),
        connector(
            "jira",
            embedded!("jira.wasm"),
            "Jira issue on trigger; later events through a Jira Automation incoming webhook by label",
        ),
        connector(
            "zendesk",
            embedded!("zendesk.wasm"),
            "Zendesk ticket with external_id on trigger; later events skipped unless update_by_external_id",
        ),
        BuiltinPlugin {
            name: "signed-header",
            version: VERSION,
            kind: PluginKind::Authenticator,
            description: "Adds a header with an HMAC (sha256/sha512) of the body made with a webhook secret",
            bytes: embedded!("signed_header.wasm"),
        },
        authenticator(
            "aws-sigv4",
            embedded!("aws_sigv4.wasm"),
            "Signs each attempt with AWS Signature Version 4; the signing key chain stays in the host",
        ),
        authenticator(
            "oauth2",
            embedded!("oauth2.wasm"),
            "Bearer token from the OAuth 2.0 client credentials grant, fetched and cached by the host",
        ),
    ]
}

/// A first-party connector (a transformer for a vendor's API), by name and component file.
fn connector(name: &'static str, bytes: &'static [u8], description: &'static str) -> BuiltinPlugin {
    BuiltinPlugin {
        name,
        version: VERSION,
        kind: PluginKind::Transformer,
        description,
        bytes,
    }
}

/// A first-party authenticator, by name and component file.
fn authenticator(
    name: &'static str,
    bytes: &'static [u8],
    description: &'static str,
) -> BuiltinPlugin {
    BuiltinPlugin {
        kind: PluginKind::Authenticator,
        ..connector(name, bytes, description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_components_with_distinct_names() {
        let all = builtin_plugins();
        assert_eq!(all.len(), 14);
        for p in &all {
            assert_eq!(&p.bytes[..4], b"\0asm", "{}", p.name);
            assert_eq!(p.bytes[6..8], [1, 0], "{} is not a component", p.name);
            assert!(!p.version.is_empty());
        }
        let mut names: Vec<_> = all.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 14);
    }
}
