//! Suite: API keys, webhooks and plugins.

use std::sync::Arc;

use serde_json::json;

use super::{attempt, ingest, plugin, record, team, webhook};
use crate::model::{
    ApiKey, AttemptOutcome, DeliveryStatus, PluginRecord, Role, Scope, Webhook, WebhookHealth,
    new_id,
};
use crate::store::{HealthChange, Store, StoreError, WebhookQuery};

pub async fn api_keys(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
    assert!(store.list_api_keys().await.unwrap().is_empty());
    let admin = ApiKey {
        id: new_id("key"),
        name: "admin".into(),
        role: Role::Admin,
        team_id: None,
        token_hash: "h1".into(),
        created_at: 1,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        bootstrap: true,
    };
    let mgr = ApiKey {
        id: new_id("key"),
        name: "mgr".into(),
        role: Role::Manager,
        team_id: Some("t1".into()),
        token_hash: "h2".into(),
        created_at: 2,
        expires_at: Some(5_000),
        last_used_at: None,
        revoked_at: None,
        bootstrap: false,
    };
    store.insert_api_key(mgr.clone()).await.unwrap();
    store.insert_api_key(admin.clone()).await.unwrap();
    // The same token again (e.g. the bootstrap admin at every start) is a no-op.
    store
        .insert_api_key(ApiKey {
            id: new_id("key"),
            created_at: 3,
            ..admin.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.api_key_by_hash("h1").await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(
        store.api_key_by_hash("h2").await.unwrap(),
        Some(mgr.clone())
    );
    assert_eq!(store.api_key_by_hash("nope").await.unwrap(), None);
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        vec![admin.clone(), mgr.clone()],
        "ordered by creation"
    );
    // Revocation keeps the row (the audit) and the first revocation time; unknown ids are None.
    let revoked = store.revoke_api_key(&mgr.id, 10).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(10));
    assert!(!revoked.is_active(11));
    let again = store.revoke_api_key(&mgr.id, 20).await.unwrap().unwrap();
    assert_eq!(
        again.revoked_at,
        Some(10),
        "a second revocation keeps the first time"
    );
    assert_eq!(store.revoke_api_key("key_nope", 10).await.unwrap(), None);
    assert_eq!(
        store
            .api_key_by_hash("h2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(10)
    );
    // last_used_at only moves forward.
    store.touch_api_key(&admin.id, 100).await.unwrap();
    store.touch_api_key(&admin.id, 50).await.unwrap();
    let a = store.api_key_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(
        (a.last_used_at, a.bootstrap, a.revoked_at),
        (Some(100), true, None)
    );
    assert_eq!(store.list_api_keys().await.unwrap().len(), 2);
}

pub async fn webhook_crud(store: Arc<dyn Store>) {
    let mut w = webhook(team("t1"), 100);
    w.filter = Some(json!({ "service.id": { "$in": ["a", "b"] } }));
    w.password = Some("secret".into());
    store.insert_webhook(&w).await.unwrap();
    assert_eq!(
        store.get_webhook(&w.id).await.unwrap(),
        Some(w.clone()),
        "secrets stored in clear, document intact"
    );
    assert_eq!(
        store.webhook_health(&w.id).await.unwrap(),
        WebhookHealth::default()
    );
    assert!(
        store.insert_webhook(&w).await.is_err(),
        "duplicate id refused"
    );

    w.name = "renamed".into();
    w.scope = Scope::Service {
        team_id: Some("t2".into()),
        service_id: "svc".into(),
    };
    w.updated_at = 200;
    store.update_webhook(&w).await.unwrap();
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), Some(w.clone()));
    assert_eq!(store.all_webhooks().await.unwrap(), vec![w.clone()]);

    let ghost = webhook(Scope::Global, 1);
    assert!(matches!(
        store.update_webhook(&ghost).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.webhook_health(&ghost.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_webhook(&ghost.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_webhook(&ghost.id).await.unwrap(), None);

    store.delete_webhook(&w.id).await.unwrap();
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), None);
    assert!(store.all_webhooks().await.unwrap().is_empty());
}

pub async fn webhook_list_paging_and_team_filter(store: Arc<dyn Store>) {
    let mut all = Vec::new();
    for i in 0..7 {
        let scope = match i % 3 {
            0 => Scope::Global,
            1 => team("t1"),
            _ => Scope::Service {
                team_id: Some("t1".into()),
                service_id: format!("svc{i}"),
            },
        };
        // Created out of order: the list is by creation time.
        let w = webhook(scope, 1000 - i * 10);
        store.insert_webhook(&w).await.unwrap();
        all.push(w);
    }
    all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let ids = |ws: &[Webhook]| ws.iter().map(|w| w.id.clone()).collect::<Vec<_>>();

    let p1 = store
        .list_webhooks(&WebhookQuery {
            team_id: None,
            name: None,
            offset: 0,
            limit: 3,
        })
        .await
        .unwrap();
    let p3 = store
        .list_webhooks(&WebhookQuery {
            team_id: None,
            name: None,
            offset: 6,
            limit: 3,
        })
        .await
        .unwrap();
    assert_eq!((p1.total, p3.total), (7, 7));
    assert_eq!(ids(&p1.items), ids(&all[..3]));
    assert_eq!(ids(&p3.items), ids(&all[6..]));
    let past = store
        .list_webhooks(&WebhookQuery {
            team_id: None,
            name: None,
            offset: 10,
            limit: 3,
        })
        .await
        .unwrap();
    assert!(past.items.is_empty());
    assert_eq!(past.total, 7);
    let zero = store
        .list_webhooks(&WebhookQuery {
            team_id: None,
            name: None,
            offset: 0,
            limit: 0,
        })
        .await
        .unwrap();
    assert_eq!(zero.items.len(), 1, "a zero limit means one");

    let t1: Vec<Webhook> = all
        .iter()
        .filter(|w| w.scope.team() == Some("t1"))
        .cloned()
        .collect();
    let page = store
        .list_webhooks(&WebhookQuery {
            team_id: Some("t1".into()),
            name: None,
            offset: 1,
            limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(page.total, t1.len() as u64);
    assert_eq!(ids(&page.items), ids(&t1[1..3]));
    let none = store
        .list_webhooks(&WebhookQuery {
            team_id: Some("t9".into()),
            name: None,
            offset: 0,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!((none.items.len(), none.total), (0, 0));
    assert_eq!(ids(&store.all_webhooks().await.unwrap()), ids(&all));
}

pub async fn webhook_scope_counts(store: Arc<dyn Store>) {
    let svc = |t: Option<&str>, s: &str| Scope::Service {
        team_id: t.map(str::to_string),
        service_id: s.into(),
    };
    for scope in [
        Scope::Global,
        Scope::Global,
        team("t1"),
        team("t1"),
        team("t1"),
        team("t2"),
        svc(Some("t1"), "s1"),
        svc(None, "s1"),
        svc(Some("t1"), "s2"),
    ] {
        store.insert_webhook(&webhook(scope, 5)).await.unwrap();
    }
    assert_eq!(
        store.count_webhooks_in_scope(&Scope::Global).await.unwrap(),
        2
    );
    assert_eq!(store.count_webhooks_in_scope(&team("t1")).await.unwrap(), 3);
    assert_eq!(store.count_webhooks_in_scope(&team("t2")).await.unwrap(), 1);
    assert_eq!(store.count_webhooks_in_scope(&team("t3")).await.unwrap(), 0);
    // A service scope is counted by service, whoever owns it.
    assert_eq!(
        store
            .count_webhooks_in_scope(&svc(Some("t9"), "s1"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count_webhooks_in_scope(&svc(None, "s2"))
            .await
            .unwrap(),
        1
    );
}

pub async fn set_webhook_enabled_resets_health(store: Arc<dyn Store>) {
    let w = webhook(Scope::Global, 1);
    store.insert_webhook(&w).await.unwrap();
    let (_, ds) = ingest(store.as_ref(), 10, &[&w.id]).await;
    let a = attempt(&ds[0], 1, 20, AttemptOutcome::Failed);
    store
        .record_attempts(vec![record(
            a,
            DeliveryStatus::Failed,
            20,
            None,
            HealthChange::DeliveryFailed,
        )])
        .await
        .unwrap();
    assert_eq!(
        store.webhook_health(&w.id).await.unwrap(),
        WebhookHealth {
            consecutive_failures: 1,
            failing_since: Some(20)
        }
    );

    store
        .set_webhook_enabled(&w.id, false, Some("6 failed deliveries"), 30)
        .await
        .unwrap();
    let off = store.get_webhook(&w.id).await.unwrap().unwrap();
    assert!(!off.is_webhook_enabled);
    assert_eq!(off.disabled_reason.as_deref(), Some("6 failed deliveries"));
    assert_eq!(off.updated_at, 30);
    assert_eq!(
        store
            .webhook_health(&w.id)
            .await
            .unwrap()
            .consecutive_failures,
        1,
        "disabling keeps health"
    );

    store
        .set_webhook_enabled(&w.id, true, Some("ignored"), 40)
        .await
        .unwrap();
    let on = store.get_webhook(&w.id).await.unwrap().unwrap();
    assert!(on.is_webhook_enabled);
    assert_eq!(on.disabled_reason, None);
    assert_eq!(on.updated_at, 40);
    assert_eq!(
        store.webhook_health(&w.id).await.unwrap(),
        WebhookHealth::default(),
        "enabling resets health"
    );
    assert!(matches!(
        store.set_webhook_enabled("wh_nope", true, None, 1).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn plugins_roundtrip(store: Arc<dyn Store>) {
    assert!(store.list_plugins().await.unwrap().is_empty());
    let bytes_a = b"\0asm-a".to_vec();
    let bytes_b = (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>();
    let t1 = plugin("template", "1.0.0", "sha-a", 10);
    let t2 = plugin("template", "2.0.0", "sha-b", 20);
    let slack = plugin("slack", "1.0.0", "sha-a", 30); // same bytes as template 1.0.0
    store.put_plugin(&t2, &bytes_b).await.unwrap();
    store.put_plugin(&t1, &bytes_a).await.unwrap();
    store.put_plugin(&slack, &bytes_a).await.unwrap();
    assert_eq!(
        store.list_plugins().await.unwrap(),
        vec![slack.clone(), t1.clone(), t2.clone()],
        "by name, then age"
    );
    assert_eq!(
        store.get_plugin("template", "2.0.0").await.unwrap(),
        Some(t2.clone())
    );
    assert_eq!(store.get_plugin("template", "3.0.0").await.unwrap(), None);
    assert_eq!(
        store.plugin_bytes("sha-b").await.unwrap(),
        Some(bytes_b.clone()),
        "binary-safe"
    );
    assert_eq!(store.plugin_bytes("sha-zzz").await.unwrap(), None);

    // Re-uploading a version replaces its record.
    let t2b = PluginRecord {
        sha256: "sha-c".into(),
        description: Some("fixed".into()),
        ..t2.clone()
    };
    store.put_plugin(&t2b, b"fixed").await.unwrap();
    assert_eq!(
        store.get_plugin("template", "2.0.0").await.unwrap(),
        Some(t2b)
    );
    assert_eq!(
        store.plugin_bytes("sha-c").await.unwrap().as_deref(),
        Some(&b"fixed"[..])
    );

    // Bytes go when their last record goes.
    store.delete_plugin("template", "1.0.0").await.unwrap();
    assert_eq!(
        store.plugin_bytes("sha-a").await.unwrap(),
        Some(bytes_a),
        "still used by slack"
    );
    store.delete_plugin("slack", "1.0.0").await.unwrap();
    assert_eq!(store.plugin_bytes("sha-a").await.unwrap(), None);
    assert!(matches!(
        store.delete_plugin("slack", "1.0.0").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_plugins().await.unwrap().len(), 1);
}
