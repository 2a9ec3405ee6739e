//! Unit tests of the masking rules, one per class of secret.

use super::*;
use crate::delivery::auth::tests::webhook;
use crate::model::{PluginRef, RetiredSecret};
use serde_json::json;

#[test]
fn masking_catches_secrets_in_other_headers_but_shows_signatures() {
    let wh = Webhook {
        auth: Auth::Bearer {
            token: "tok_123456".into(),
        },
        signing: Signing::StandardWebhooks {
            secret: "whsec_abcd".into(),
            previous: vec![],
        },
        ..webhook()
    };
    let headers = vec![
        (
            "X-Forwarded-Token".to_string(),
            "prefix tok_123456".to_string(),
        ),
        ("X-Leak".to_string(), "whsec_abcd".to_string()),
        ("Cookie".to_string(), "session=1".to_string()),
        ("webhook-signature".to_string(), "v1,abc=".to_string()),
        ("webhook-id".to_string(), "msg_1".to_string()),
    ];
    let masked = mask_headers(&headers, &wh);
    assert_eq!(masked[0].1, MASK);
    assert_eq!(masked[1].1, MASK);
    assert_eq!(masked[2].1, MASK);
    assert_eq!(masked[3].1, "v1,abc=");
    assert_eq!(masked[4].1, "msg_1");
}

#[test]
fn short_secrets_mask_only_exact_values() {
    let wh = Webhook {
        auth: Auth::Bearer { token: "a".into() },
        ..webhook()
    };
    let headers = vec![
        ("X-A".to_string(), "a".to_string()),
        ("X-B".to_string(), "banana".to_string()),
    ];
    let masked = mask_headers(&headers, &wh);
    assert_eq!(masked[0].1, MASK);
    assert_eq!(masked[1].1, "banana");
}

#[test]
fn url_userinfo_password_is_masked() {
    assert_eq!(
        mask_url("https://bob:hunter22@example.com/x?y=1", &webhook()),
        format!("https://bob:{MASK}@example.com/x?y=1")
    );
}

#[test]
fn credential_like_header_names_are_masked_whatever_they_hold() {
    let wh = webhook();
    let headers: Vec<(String, String)> = [
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "X-Auth-Token",
        "X-Client-Secret",
        "X-Api-Key",
        "X-Password",
    ]
    .iter()
    .map(|n| (n.to_string(), "v-visible".to_string()))
    .chain([
        ("Idempotency-Key".to_string(), "idem-1".to_string()),
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Signature".to_string(), "sig".to_string()),
    ])
    .collect();
    let masked = mask_headers(&headers, &wh);
    for (name, value) in &masked[..7] {
        assert_eq!(value, MASK, "{name}");
    }
    assert_eq!(masked[7].1, "idem-1");
    assert_eq!(masked[8].1, "application/json");
    assert_eq!(masked[9].1, "sig");
}

#[test]
fn headers_the_user_marks_secret_are_masked() {
    let wh = Webhook {
        secret_headers: vec!["X-Custom".into()],
        ..webhook()
    };
    let masked = mask_headers(
        &[
            ("x-custom".into(), "abc".into()),
            ("X-Other".into(), "abc".into()),
        ],
        &wh,
    );
    assert_eq!(masked[0].1, MASK);
    assert_eq!(masked[1].1, "abc");
}

#[test]
fn oncall_headers_json_values_are_masked_one_by_one() {
    let wh = Webhook {
        secret_headers: vec!["X-Custom".into()],
        ..webhook()
    };
    let set = SecretSet::of(&wh);
    let shown = set.headers_json(
        r#"{"Authorization": "Bearer abc", "X-Custom": "c", "X-Team": "ops", "X-Count": 3}"#,
    );
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["Authorization"], MASK);
    assert_eq!(v["X-Custom"], MASK);
    assert_eq!(v["X-Team"], "ops");
    assert_eq!(v["X-Count"], 3);
    // A template that is not JSON may hold anything: masked whole.
    assert_eq!(set.headers_json("{{ headers }}"), MASK);
}

#[test]
fn url_userinfo_query_secrets_and_lone_users_are_masked() {
    assert_eq!(
        mask_url_plain("https://tok-as-user@example.com/x"),
        format!("https://{MASK}@example.com/x")
    );
    assert_eq!(
        mask_url_plain("https://example.com/x?token=abc&page=2&api_key=&b=1"),
        format!("https://example.com/x?token={MASK}&page=2&api_key=&b=1")
    );
    assert_eq!(
        mask_url_plain("https://example.com/x"),
        "https://example.com/x"
    );
}

#[test]
fn plugin_config_secret_names_use_the_same_rule_at_any_depth() {
    let c = json!({
        "api_token": "t1",
        "channel": "#ops",
        "nested": {"client_secret": "s1", "count": 2, "list": [{"password": "p1"}]},
        "key_count": 3
    });
    let m = mask_config(&c);
    assert_eq!(m["api_token"], MASK);
    assert_eq!(m["channel"], "#ops");
    assert_eq!(m["nested"]["client_secret"], MASK);
    assert_eq!(m["nested"]["count"], 2);
    assert_eq!(m["nested"]["list"][0]["password"], MASK);
    assert_eq!(m["key_count"], 3, "only string values are secrets");
    assert!(is_secret_name("Authorization") && !is_secret_name("channel"));
}

#[test]
fn plugin_and_retired_secrets_are_caught_inside_other_values() {
    let wh = Webhook {
        signing: Signing::StandardWebhooks {
            secret: "whsec_now".into(),
            previous: vec![RetiredSecret {
                secret: "whsec_before".into(),
                expires_at: 0,
            }],
        },
        plugins: vec![PluginRef {
            name: "p".into(),
            version: None,
            config: json!({"api_token": "plugin-tok-1"}),
        }],
        ..webhook()
    };
    let masked = mask_headers(
        &[
            ("X-A".into(), "x whsec_before".into()),
            ("X-B".into(), "plugin-tok-1".into()),
        ],
        &wh,
    );
    assert_eq!(masked[0].1, MASK);
    assert_eq!(masked[1].1, MASK);
    assert_eq!(
        mask_url("https://e.com/?q=plugin-tok-1", &wh),
        format!("https://e.com/?q={MASK}")
    );
}

#[test]
fn masked_values_sent_back_keep_the_stored_secret() {
    let wh = webhook();
    let set = SecretSet::of(&wh);
    let stored = vec!["https://bob:pw@e.com/a?token=t1".to_string()];
    let shown = set.url(&stored[0]);
    assert_eq!(restore_url(shown, &stored, &set), stored[0]);
    let changed = format!("https://bob:{MASK}@other.com/a");
    assert_eq!(restore_url(changed.clone(), &stored, &set), changed);
    let h = r#"{"Authorization":"Bearer x","X-Team":"ops"}"#;
    let back = restore_headers_json(Some(set.headers_json(h)), Some(h)).unwrap();
    let v: Value = serde_json::from_str(&back).unwrap();
    assert_eq!(v["Authorization"], "Bearer x");
    assert_eq!(
        restore_headers_json(Some(MASK.into()), Some(h)).as_deref(),
        Some(h)
    );
    let mut c = json!({"api_token": MASK, "channel": "#new"});
    restore_config(&mut c, &json!({"api_token": "real", "channel": "#old"}));
    assert_eq!(c, json!({"api_token": "real", "channel": "#new"}));
}

#[test]
fn free_text_loses_every_secret_it_quotes() {
    let wh = Webhook {
        auth: Auth::Bearer {
            token: "tok_123456".into(),
        },
        signing: Signing::StandardWebhooks {
            secret: "whsec_abcd".into(),
            previous: vec![],
        },
        password: Some("pw".into()),
        ..webhook()
    };
    let set = SecretSet::of(&wh);
    let text = set.text("receiver said: bad token tok_123456 (secret whsec_abcd), pw ok");
    assert!(
        !text.contains("tok_123456") && !text.contains("whsec_abcd"),
        "{text}"
    );
    assert!(
        text.contains("receiver said") && text.contains(MASK),
        "{text}"
    );
    // A short secret is masked only when it is the whole text, not inside words.
    assert!(text.contains("pw ok"), "{text}");
    assert_eq!(set.text("pw"), MASK);
}
