//! Writes the macros that generate a plugin's export bindings *in the plugin crate*.
//!
//! Why: wit-bindgen embeds a custom section describing the world in every crate that runs
//! `generate!`, and a component must export everything its (merged) worlds export. If the SDK
//! generated both the transformer and the authenticator world, every plugin would have to export
//! both functions. So the SDK only generates the imports (log, config, secrets, types) and the entry
//! macros generate the one world the plugin picks, reading this crate's `wit/` by absolute path.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let wit = manifest.join("wit");
    println!("cargo:rerun-if-changed=build.rs");
    let wit_lit = format!("{:?}", wit.to_str().expect("the sdk path is not UTF-8"));
    let mut out = String::new();
    // `with` must name exactly the interfaces the world uses (unused keys are an error).
    let secrets = r#"
                "webhook-gateway:plugin/secrets@0.1.0": ::gateway_sdk::__bindings::webhook_gateway::plugin::secrets,
                "webhook-gateway:plugin/oauth2@0.1.0": ::gateway_sdk::__bindings::webhook_gateway::plugin::oauth2,"#;
    for (macro_name, world, extra) in [
        ("__transformer_bindings", "webhook-gateway:plugin/transformer@0.1.0", ""),
        ("__authenticator_bindings", "webhook-gateway:plugin/authenticator@0.1.0", secrets),
    ] {
        out.push_str(&format!(
            r#"
#[doc(hidden)]
#[macro_export]
macro_rules! {macro_name} {{
    () => {{
        ::gateway_sdk::__rt::wit_bindgen::generate!({{
            path: {wit_lit},
            world: "{world}",
            runtime_path: "::gateway_sdk::__rt::wit_bindgen::rt",
            with: {{
                "webhook-gateway:plugin/types@0.1.0": ::gateway_sdk::__bindings::webhook_gateway::plugin::types,
                "webhook-gateway:plugin/log@0.1.0": ::gateway_sdk::__bindings::webhook_gateway::plugin::log,
                "webhook-gateway:plugin/config@0.1.0": ::gateway_sdk::__bindings::webhook_gateway::plugin::config,{extra}
            }},
        }});
    }};
}}
"#
        ));
    }
    let dest = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("entry_bindings.rs");
    fs::write(dest, out).expect("write entry_bindings.rs");
}
