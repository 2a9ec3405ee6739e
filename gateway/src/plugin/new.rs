//! `webhook-gateway plugin new`: writes a working plugin project (Rust, JavaScript or Python;
//! transformer or authenticator) from templates embedded in the binary: the source, the plugin
//! interface (WIT), a sample test, a Squadcast sample event and a README with the build and
//! `plugin run` commands.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

/// The plugin's role (its WIT world).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Transformer,
    Authenticator,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Transformer => "transformer",
            Role::Authenticator => "authenticator",
        }
    }
}

const WIT: [(&str, &str); 6] = [
    ("config.wit", include_str!("../../../sdk/wit/config.wit")),
    ("log.wit", include_str!("../../../sdk/wit/log.wit")),
    ("oauth2.wit", include_str!("../../../sdk/wit/oauth2.wit")),
    ("secrets.wit", include_str!("../../../sdk/wit/secrets.wit")),
    ("types.wit", include_str!("../../../sdk/wit/types.wit")),
    ("worlds.wit", include_str!("../../../sdk/wit/worlds.wit")),
];

/// The Rust SDK, written into a Rust project's `sdk/` so it needs no git dependency.
const SDK: [(&str, &str); 13] = [
    ("Cargo.toml", include_str!("../../../sdk/Cargo.toml")),
    ("build.rs", include_str!("../../../sdk/build.rs")),
    ("src/config.rs", include_str!("../../../sdk/src/config.rs")),
    (
        "src/encoding.rs",
        include_str!("../../../sdk/src/encoding.rs"),
    ),
    ("src/entry.rs", include_str!("../../../sdk/src/entry.rs")),
    ("src/error.rs", include_str!("../../../sdk/src/error.rs")),
    ("src/event.rs", include_str!("../../../sdk/src/event.rs")),
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    ("src/log.rs", include_str!("../../../sdk/src/log.rs")),
    ("src/oauth2.rs", include_str!("../../../sdk/src/oauth2.rs")),
    (
        "src/request.rs",
        include_str!("../../../sdk/src/request.rs"),
    ),
    (
        "src/secrets.rs",
        include_str!("../../../sdk/src/secrets.rs"),
    ),
    ("src/time.rs", include_str!("../../../sdk/src/time.rs")),
];

const SAMPLE_EVENT: &str =
    include_str!("../../../tests/fixtures/squadcast/incident_triggered.json");

/// The config `plugin run` uses for an authenticator: the secret it signs with (a CLI-only key).
const AUTH_CONFIG: &str = "{\"$secrets\": {\"signing_secret\": \"test-key\"}}\n";

/// The files of one project: (relative path, content with `{{name}}` / `{{role}}` unfilled).
fn files(lang: Lang, role: Role) -> Vec<(String, &'static str)> {
    use Role::*;
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut add = |p: &str, c: &'static str| out.push((p.to_string(), c));
    match (lang, role) {
        (Lang::Rust, _) => {
            add("Cargo.toml", include_str!("templates/rust/Cargo.toml"));
            add(".gitignore", "/target\n");
        }
        (Lang::Js, _) => {
            add("package.json", include_str!("templates/js/package.json"));
            add(".gitignore", "/node_modules\n*.wasm\n");
        }
        (Lang::Python, _) => add(".gitignore", "__pycache__/\n*.wasm\n"),
    }
    match (lang, role) {
        (Lang::Rust, Transformer) => add(
            "src/lib.rs",
            include_str!("templates/rust/transformer-lib.rs"),
        ),
        (Lang::Rust, Authenticator) => add(
            "src/lib.rs",
            include_str!("templates/rust/authenticator-lib.rs"),
        ),
        (Lang::Js, Transformer) => {
            add("app.js", include_str!("templates/js/transformer-app.js"));
            add(
                "logic.js",
                include_str!("templates/js/transformer-logic.js"),
            );
            add(
                "logic.test.js",
                include_str!("templates/js/transformer-test.js"),
            );
        }
        (Lang::Js, Authenticator) => {
            add("app.js", include_str!("templates/js/authenticator-app.js"));
            add(
                "logic.js",
                include_str!("templates/js/authenticator-logic.js"),
            );
            add(
                "logic.test.js",
                include_str!("templates/js/authenticator-test.js"),
            );
        }
        (Lang::Python, Transformer) => {
            add(
                "app.py",
                include_str!("templates/python/transformer-app.py"),
            );
            add(
                "logic.py",
                include_str!("templates/python/transformer-logic.py"),
            );
            add(
                "test_logic.py",
                include_str!("templates/python/transformer-test.py"),
            );
        }
        (Lang::Python, Authenticator) => {
            add(
                "app.py",
                include_str!("templates/python/authenticator-app.py"),
            );
            add(
                "logic.py",
                include_str!("templates/python/authenticator-logic.py"),
            );
            add(
                "test_logic.py",
                include_str!("templates/python/authenticator-test.py"),
            );
        }
    }
    let wit_dir = if lang == Lang::Rust { "sdk/wit" } else { "wit" };
    for (f, c) in WIT {
        add(&format!("{wit_dir}/{f}"), c);
    }
    if lang == Lang::Rust {
        for (f, c) in SDK {
            add(&format!("sdk/{f}"), c);
        }
    }
    add("fixtures/incident_triggered.json", SAMPLE_EVENT);
    if role == Authenticator {
        add("fixtures/config.json", AUTH_CONFIG);
    }
    out
}

/// The commands a project's README gives: (build, test, component path).
pub fn commands(lang: Lang, role: Role, name: &str) -> (String, String, String) {
    match lang {
        Lang::Rust => (
            "cargo build --release --target wasm32-wasip2".into(),
            "cargo test".into(),
            format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
        ),
        Lang::Js => (
            "npm install && npm run build".into(),
            "npm test".into(),
            format!("{name}.wasm"),
        ),
        Lang::Python => (
            format!(
                "componentize-py -d wit -w {} componentize app -o {name}.wasm",
                role.as_str()
            ),
            "python -m unittest".into(),
            format!("{name}.wasm"),
        ),
    }
}

fn readme(lang: Lang, role: Role, name: &str) -> String {
    let (build, test, wasm) = commands(lang, role, name);
    let (tool, logic) = match lang {
        Lang::Rust => (
            "Rust with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`). The guest \
             SDK is in `sdk/` (its WIT in `sdk/wit/`), so the project needs no other checkout.",
            "`src/lib.rs`: the logic is a plain function, tested natively by `cargo test`.",
        ),
        Lang::Js => (
            "Node.js and npm; `npm install` brings componentize-js (pinned in package.json). The \
             build disables every WASI feature (`--disable http` etc.): the gateway refuses a \
             component that imports them.",
            "`logic.js` holds the logic (tested by `node --test`); `app.js` is the component's \
             entry point.",
        ),
        Lang::Python => (
            "componentize-py (`pip install componentize-py==0.25.1`).",
            "`logic.py` holds the logic (tested by `python -m unittest`); `app.py` is the \
             component's entry point (the `wit_world` bindings are generated at build time).",
        ),
    };
    let (config, note) = match role {
        Role::Transformer => (String::new(), ""),
        Role::Authenticator => (" --config fixtures/config.json".into(), BODY_NOTE),
    };
    format!(
        "# {name}\n\nA webhook-gateway {role} plugin.\n\nNeeds: {tool}\n\n{logic}\n\n{note}\
         Test:\n\n    {test}\n\nBuild:\n\n    {build}\n\n\
         Run it on the sample event:\n\n    webhook-gateway plugin run --plugin {wasm} \
         --event fixtures/incident_triggered.json{config}\n\n\
         Upload it:\n\n    curl -X POST \"http://127.0.0.1:8080/api/v1/plugins?name={name}&version=0.1.0\" \\\n\
         \x20     -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/wasm' \\\n\
         \x20     --data-binary @{wasm}\n",
        role = role.as_str()
    )
}

/// What an authenticator's README says about the body it signs.
const BODY_NOTE: &str = "The body this authenticator signs is the body as it gets it: when the \
    webhook's transformer puts `{\"$secret\": ...}` placeholders in the body, the gateway fills \
    them in only after the authenticator runs (no secret value enters a plugin), so the signature \
    covers the placeholder body, not the body sent. Do not combine a body signature with body \
    placeholders (docs/plugins.md, \"Write an authenticator\").\n\n";

/// Checks a plugin name: lower-case letters, digits and `-`, starting with a letter.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    anyhow::ensure!(
        ok,
        "NAME: `{name}` must be 1-64 lower-case letters, digits or `-`, starting with a letter"
    );
    Ok(())
}

/// Writes the project `name` into `parent/name` (which must not exist) and returns its path.
pub fn new_project(name: &str, lang: Lang, role: Role, parent: &Path) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    anyhow::ensure!(!dir.exists(), "{} already exists", dir.display());
    let fill = |c: &str| {
        c.replace("{{name}}", name)
            .replace("{{role}}", role.as_str())
    };
    let mut all: Vec<(String, String)> = files(lang, role)
        .into_iter()
        .map(|(p, c)| (p, fill(c)))
        .collect();
    all.push(("README.md".into(), readme(lang, role, name)));
    for (rel, content) in all {
        let path = dir.join(&rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sdk_and_wit_are_every_file_of_the_sdk() {
        // A file added to the SDK or its WIT must be added to `SDK` / `WIT` too, or generated
        // projects stop building.
        let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
        let names = |dir: &str| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(sdk.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let mut wit: Vec<String> = WIT.iter().map(|(n, _)| n.to_string()).collect();
        wit.sort();
        assert_eq!(wit, names("wit"));
        let mut src: Vec<String> = SDK
            .iter()
            .filter_map(|(n, _)| n.strip_prefix("src/"))
            .map(str::to_string)
            .collect();
        src.sort();
        assert_eq!(src, names("src"));
    }

    #[test]
    fn every_project_has_its_sources_wit_fixture_and_readme() {
        let tmp = tempfile::tempdir().unwrap();
        for (lang, entry) in [
            (Lang::Rust, "src/lib.rs"),
            (Lang::Js, "app.js"),
            (Lang::Python, "app.py"),
        ] {
            for role in [Role::Transformer, Role::Authenticator] {
                let name = format!("p-{}-{}", entry.replace(['/', '.'], "-"), role.as_str());
                let dir = new_project(&name, lang, role, tmp.path()).unwrap();
                assert!(dir.join(entry).is_file(), "{lang:?} {role:?}");
                assert!(dir.join("fixtures/incident_triggered.json").is_file());
                let wit = if lang == Lang::Rust { "sdk/wit" } else { "wit" };
                assert!(dir.join(wit).join("worlds.wit").is_file());
                let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
                assert!(readme.contains("webhook-gateway plugin run"), "{readme}");
                assert_eq!(
                    readme.contains("signature covers the placeholder body"),
                    role == Role::Authenticator,
                    "{readme}"
                );
                let all = walk(&dir);
                assert!(!all.contains("{{name}}") && !all.contains("{{role}}"));
            }
        }
    }

    #[test]
    fn bad_names_and_existing_folders_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let e = new_project("Bad Name", Lang::Js, Role::Transformer, tmp.path()).unwrap_err();
        assert!(e.to_string().contains("NAME"), "{e}");
        new_project("ok", Lang::Js, Role::Transformer, tmp.path()).unwrap();
        let e = new_project("ok", Lang::Js, Role::Transformer, tmp.path()).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
    }

    fn walk(dir: &Path) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push_str(&walk(&p));
            } else {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
        out
    }
}
