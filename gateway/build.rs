//! Builds the first-party plugins (`plugins/`, a separate cargo workspace) for `wasm32-wasip2`
//! from source and copies the components to `$OUT_DIR/plugins/` for `include_bytes!`.
//!
//! The nested cargo uses its own target dir (`plugins/target`), so it never waits on the lock of
//! the outer build's target dir, and it shares the outer jobserver (CARGO_MAKEFLAGS), so the two
//! builds together stay within `-j`. Flags meant for the host build (RUSTFLAGS, clippy's
//! RUSTC_WORKSPACE_WRAPPER, a CARGO_TARGET_DIR override, ...) are cleared for it.
//!
//! It reruns only when sources of the plugins or the SDK change. The hostile test guests
//! (`plugins/testdata`) are built too; tests find them through `GATEWAY_TEST_GUESTS_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// Components embedded in the gateway (first-party) or used by its tests (testdata).
const COMPONENTS: &[&str] = &[
    "template",
    "placeholders",
    "slack",
    "teams",
    "discord",
    "google_chat",
    "mattermost",
    "pagerduty",
    "opsgenie",
    "jira",
    "zendesk",
    "signed_header",
    "aws_sigv4",
    "oauth2",
    "hostile",
    "wrong_world",
];

/// Environment of the outer build that must not leak into the nested one.
const CLEARED_ENV: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_NAME",
    "CARGO_LLVM_COV",
    "LLVM_PROFILE_FILE",
    "CARGO_PROFILE_RELEASE_DEBUG",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().expect("gateway/ has a parent");
    let plugins = root.join("plugins");
    let sdk = root.join("sdk");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("plugins");
    fs::create_dir_all(&out).unwrap();

    for path in [
        plugins.join("Cargo.toml"),
        plugins.join("Cargo.lock"),
        plugins.join(".cargo"),
        plugins.join("template"),
        plugins.join("placeholders"),
        plugins.join("connector-kit"),
        plugins.join("slack"),
        plugins.join("teams"),
        plugins.join("discord"),
        plugins.join("google-chat"),
        plugins.join("mattermost"),
        plugins.join("pagerduty"),
        plugins.join("opsgenie"),
        plugins.join("jira"),
        plugins.join("zendesk"),
        root.join("tests/fixtures/squadcast"),
        plugins.join("signed-header"),
        plugins.join("aws-sigv4"),
        plugins.join("oauth2"),
        plugins.join("testdata"),
        sdk.join("Cargo.toml"),
        sdk.join("build.rs"),
        sdk.join("src"),
        sdk.join("wit"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=GATEWAY_TEST_GUESTS_DIR={}", out.display());

    check_target_installed();

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = plugins.join("target");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    // The outer build's per-package variables would only confuse the plugins' own build scripts.
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("DEP_")
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    let output = cmd.output().unwrap_or_else(|e| {
        panic!(
            "could not run `{cargo} build` in {}: {e}",
            plugins.display()
        )
    });
    if !output.status.success() {
        panic!(
            "\n\nbuilding the first-party plugins failed (cd plugins && cargo build --release):\n{}\n",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let built = target_dir.join("wasm32-wasip2").join("release");
    for name in COMPONENTS {
        let from = built.join(format!("{name}.wasm"));
        let to = out.join(format!("{name}.wasm"));
        copy_if_changed(&from, &to);
    }
    let version = workspace_version(&plugins.join("Cargo.toml"));
    write_if_changed(&out.join("VERSION"), version.as_bytes());
}

/// Fails with instructions when the standard library for wasm32-wasip2 is missing.
fn check_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let missing = |root: &PathBuf| !root.join("lib/rustlib/wasm32-wasip2").is_dir();
    if let Some(sysroot) = sysroot
        && missing(&sysroot)
        && (!add_target_with_rustup() || missing(&sysroot))
    {
        panic!(
            "\n\nThe first-party plugins build for the `wasm32-wasip2` target, which is not installed \
             for this toolchain ({}).\nInstall it with:\n\n    rustup target add wasm32-wasip2\n\n",
            sysroot.display()
        );
    }
}

/// rust-toolchain.toml names the target, but rustup adds a toolchain file's targets only when it
/// installs the toolchain: an existing toolchain without it gets it here, so `cargo run` works as
/// the README writes it on a machine that has only Rust.
fn add_target_with_rustup() -> bool {
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", "wasm32-wasip2"]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    println!(
        "cargo:warning=installing the wasm32-wasip2 target with rustup (the first-party plugins build for it)"
    );
    cmd.status().is_ok_and(|s| s.success())
}

fn copy_if_changed(from: &Path, to: &Path) {
    let bytes = fs::read(from)
        .unwrap_or_else(|e| panic!("plugin build produced no {}: {e}", from.display()));
    write_if_changed(to, &bytes);
}

/// Keeps the mtime when nothing changed, so dependants are not rebuilt for nothing.
fn write_if_changed(to: &Path, bytes: &[u8]) {
    if fs::read(to).ok().as_deref() != Some(bytes) {
        fs::write(to, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
    }
}

/// `version = "x"` of `[workspace.package]` in plugins/Cargo.toml.
fn workspace_version(manifest: &Path) -> String {
    let text = fs::read_to_string(manifest).expect("plugins/Cargo.toml");
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .expect("[workspace.package] in plugins/Cargo.toml");
    section
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("version").map(|v| {
                v.trim()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
        })
        .expect("version in [workspace.package]")
}
