//! Grafana OnCall drop-in: one row per test case of OnCall's public API tests and per behaviour
//! read from its code (each labelled with the OnCall file and test or code path), replayed against
//! a real gateway on port 0. Every refused write is checked to leave the stored webhooks as they
//! were. OnCall's code is not copied here: these are our requests and expectations.

use axum::response::IntoResponse;

use crate::support::{ADMIN, TestGateway};
use reqwest::Method;
use serde_json::{Value, json};

const T_WEBHOOKS: &str = "engine/apps/public_api/tests/test_webhooks.py";
const T_ACTIONS: &str = "engine/apps/public_api/tests/test_custom_actions.py";
const S_WEBHOOKS: &str = "engine/apps/public_api/serializers/webhooks.py";
const S_ACTION: &str = "engine/apps/public_api/serializers/action.py";
const V_WEBHOOKS: &str = "engine/apps/public_api/views/webhooks.py";
const M_WEBHOOK: &str = "engine/apps/webhooks/models/webhook.py";
const PAGINATORS: &str = "engine/common/api_helpers/paginators.py";
const PRESET_MESSAGE: &str = "Preset webhooks must be modified through web UI";

/// One request and what OnCall answers to it.
struct Row {
    /// `<OnCall file>::<test or code path>`.
    from: String,
    method: Method,
    /// `{fixture}`, `{preset}`, `{advanced}`, `{last}` are replaced by ids.
    path: &'static str,
    body: Option<Value>,
    status: u16,
    /// JSON pointer -> expected value in the answer.
    expect: Vec<(&'static str, Value)>,
}

fn row(
    file: &str,
    test: &str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    status: u16,
    expect: Vec<(&'static str, Value)>,
) -> Row {
    Row {
        from: format!("{file}::{test}"),
        method,
        path,
        body,
        status,
        expect,
    }
}

/// OnCall's `_get_expected_result` for a webhook made with only name, url, http_method and
/// trigger_type, as JSON-pointer expectations.
fn plain(name: &str, url: &str, trigger: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("/name", json!(name)),
        ("/team", Value::Null),
        ("/url", json!(url)),
        ("/data", Value::Null),
        ("/username", Value::Null),
        ("/password", Value::Null),
        ("/authorization_header", Value::Null),
        ("/forward_all", json!(true)),
        ("/is_webhook_enabled", json!(true)),
        ("/trigger_template", Value::Null),
        ("/headers", Value::Null),
        ("/http_method", json!("POST")),
        ("/trigger_type", json!(trigger)),
        ("/integration_filter", Value::Null),
        ("/preset", Value::Null),
    ]
}

/// The action view of such a webhook (OnCall's action field names, no `preset`).
fn plain_action(name: &str, url: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("/name", json!(name)),
        ("/team_id", Value::Null),
        ("/url", json!(url)),
        ("/data", Value::Null),
        ("/user", Value::Null),
        ("/password", Value::Null),
        ("/authorization_header", Value::Null),
        ("/forward_whole_payload", json!(true)),
        ("/is_webhook_enabled", json!(true)),
        ("/trigger_template", Value::Null),
        ("/headers", Value::Null),
        ("/http_method", json!("POST")),
        ("/trigger_type", json!("escalation")),
        ("/integration_filter", Value::Null),
    ]
}

fn with(
    mut e: Vec<(&'static str, Value)>,
    more: Vec<(&'static str, Value)>,
) -> Vec<(&'static str, Value)> {
    for (k, v) in more {
        e.retain(|(p, _)| *p != k);
        e.push((k, v));
    }
    e
}

fn field(f: &str) -> Vec<(&'static str, Value)> {
    vec![("/field", json!(f))]
}

fn rows() -> Vec<Row> {
    use Method as M;
    let create = |n: &str, extra: Value| {
        let mut b = json!({"name": n, "url": "https://example.com", "http_method": "POST", "trigger_type": "acknowledge"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        Some(b)
    };
    let optional = |v: Value| {
        json!({"data": v, "username": v, "password": v, "authorization_header": v,
            "trigger_template": v, "headers": v, "forward_all": true, "is_webhook_enabled": true,
            "integration_filter": null})
    };
    let empty_page = vec![
        ("/count", json!(0)),
        ("/next", Value::Null),
        ("/previous", Value::Null),
        ("/results", json!([])),
        ("/current_page_number", json!(1)),
        ("/page_size", json!(50)),
        ("/total_pages", json!(1)),
    ];
    let fixture = plain("fixture", "https://example.com/fixture", "escalation");
    let mut fixture_in_page: Vec<(&'static str, Value)> = vec![
        ("/count", json!(1)),
        ("/next", Value::Null),
        ("/previous", Value::Null),
        ("/current_page_number", json!(1)),
        ("/page_size", json!(50)),
        ("/total_pages", json!(1)),
    ];
    fixture_in_page.push(("/results/0/name", json!("fixture")));
    fixture_in_page.push(("/results/0/preset", Value::Null));
    fixture_in_page.push(("/results/0/trigger_type", json!("escalation")));
    let action_fixture_page: Vec<(&'static str, Value)> = vec![
        ("/count", json!(1)),
        ("/next", Value::Null),
        ("/previous", Value::Null),
        ("/current_page_number", json!(1)),
        ("/page_size", json!(50)),
        ("/total_pages", json!(1)),
        ("/results/0/name", json!("fixture")),
        ("/results/0/team_id", Value::Null),
        ("/results/0/user", Value::Null),
        ("/results/0/forward_whole_payload", json!(true)),
        ("/results/0/trigger_type", json!("escalation")),
    ];
    vec![
        // ---- test_webhooks.py
        row(
            T_WEBHOOKS,
            "test_get_webhooks_filter_by_name",
            M::GET,
            "/api/v1/webhooks/?name=fixture",
            None,
            200,
            fixture_in_page.clone(),
        ),
        row(
            T_WEBHOOKS,
            "test_get_webhooks_filter_by_name_empty_result",
            M::GET,
            "/api/v1/webhooks/?name=NonExistentName",
            None,
            200,
            empty_page.clone(),
        ),
        row(
            T_WEBHOOKS,
            "test_get_webhook",
            M::GET,
            "/api/v1/webhooks/{fixture}/",
            None,
            200,
            fixture.clone(),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook (empty body)",
            M::POST,
            "/api/v1/webhooks/",
            Some(json!({})),
            400,
            field("name"),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook (+name)",
            M::POST,
            "/api/v1/webhooks/",
            Some(json!({"name": "Test outgoing webhook"})),
            400,
            field("url"),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook (+url)",
            M::POST,
            "/api/v1/webhooks/",
            Some(json!({"name": "Test outgoing webhook", "url": "https://example.com"})),
            400,
            field("trigger_type"),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook (+trigger_type)",
            M::POST,
            "/api/v1/webhooks/",
            Some(
                json!({"name": "Test outgoing webhook", "url": "https://example.com", "trigger_type": "escalation"}),
            ),
            400,
            field("http_method"),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook (+http_method)",
            M::POST,
            "/api/v1/webhooks/",
            Some(
                json!({"name": "Test outgoing webhook", "url": "https://example.com", "trigger_type": "escalation", "http_method": "POST"}),
            ),
            201,
            plain("Test outgoing webhook", "https://example.com", "escalation"),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook_optional_fields[None]",
            M::POST,
            "/api/v1/webhooks/",
            create("optional none", optional(Value::Null)),
            201,
            plain("optional none", "https://example.com", "acknowledge"),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook_optional_fields[\"\"]",
            M::POST,
            "/api/v1/webhooks/",
            create("optional empty", optional(json!(""))),
            201,
            with(
                plain("optional empty", "https://example.com", "acknowledge"),
                vec![
                    ("/username", json!("")),
                    ("/password", json!("")),
                    ("/authorization_header", json!("")),
                ],
            ),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook_nested_data (to_json: unknown filter)",
            M::POST,
            "/api/v1/webhooks/",
            create(
                "nested",
                json!({"data": "{\"nested_item\": \"{{ alert_payload.foo.bar | to_json }}\"}"}),
            ),
            400,
            field("data"),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook_nested_data (tojson())",
            M::POST,
            "/api/v1/webhooks/",
            create(
                "nested",
                json!({"data": "{\"nested_item\": \"{{ alert_payload.foo.bar | tojson() }}\"}"}),
            ),
            201,
            // Deliberate difference (README): `data` without `forward_all` makes it false.
            with(
                plain("nested", "https://example.com", "acknowledge"),
                vec![
                    (
                        "/data",
                        json!("{\"nested_item\": \"{{ alert_payload.foo.bar | tojson() }}\"}"),
                    ),
                    ("/forward_all", json!(false)),
                ],
            ),
        ),
        row(
            T_WEBHOOKS,
            "test_create_webhook_via_service_account",
            M::POST,
            "/api/v1/webhooks/",
            create("Test outgoing webhook sa", json!({})),
            201,
            plain(
                "Test outgoing webhook sa",
                "https://example.com",
                "acknowledge",
            ),
        ),
        row(
            T_WEBHOOKS,
            "test_update_webhook",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"name": "RENAMED"})),
            200,
            with(fixture.clone(), vec![("/name", json!("RENAMED"))]),
        ),
        row(
            T_WEBHOOKS,
            "test_webhook_validate_integration_filters (a string)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"integration_filter": "CRV8A5MXC751A"})),
            400,
            field("integration_filter"),
        ),
        row(
            T_WEBHOOKS,
            "test_webhook_validate_integration_filters (a list)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"integration_filter": ["CRV8A5MXC751A"]})),
            200,
            vec![("/integration_filter", json!(["CRV8A5MXC751A"]))],
        ),
        row(
            T_WEBHOOKS,
            "test_webhook_validate_integration_filters ([] is null)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"integration_filter": []})),
            200,
            vec![("/integration_filter", Value::Null)],
        ),
        row(
            T_WEBHOOKS,
            "test_webhook_validate_integration_filters (null)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"integration_filter": null})),
            200,
            vec![("/integration_filter", Value::Null)],
        ),
        row(
            T_WEBHOOKS,
            "test_get_webhook_with_preset",
            M::GET,
            "/api/v1/webhooks/{preset}/",
            None,
            200,
            vec![("/preset", json!("simple_webhook"))],
        ),
        row(
            T_WEBHOOKS,
            "test_webhook_block_preset_create",
            M::POST,
            "/api/v1/webhooks/",
            Some(
                json!({"name": "Test outgoing webhook with nested data", "trigger_type": "acknowledge", "preset": "simple_webhook", "url": "https://example.com", "http_method": "POST"}),
            ),
            400,
            vec![
                ("/field", json!("preset")),
                ("/preset/0", json!(PRESET_MESSAGE)),
            ],
        ),
        row(
            T_WEBHOOKS,
            "test_webhook_block_preset_update",
            M::PUT,
            "/api/v1/webhooks/{preset}/",
            Some(json!({"name": "Test rename preset webhook"})),
            400,
            vec![("/non_field_errors/0", json!(PRESET_MESSAGE))],
        ),
        row(
            T_WEBHOOKS,
            "test_webhook_advanced_preset_update",
            M::PUT,
            "/api/v1/webhooks/{advanced}/",
            Some(json!({"name": "Test rename preset webhook"})),
            200,
            vec![
                ("/name", json!("Test rename preset webhook")),
                ("/preset", json!("advanced_webhook")),
            ],
        ),
        // ---- serializers/webhooks.py
        row(
            S_WEBHOOKS,
            "WebhookTriggerTypeField (personal notification is in the public map)",
            M::POST,
            "/api/v1/webhooks/",
            Some(
                json!({"name": "pn", "url": "https://example.com", "http_method": "POST", "trigger_type": "personal notification"}),
            ),
            201,
            vec![("/trigger_type", json!("personal notification"))],
        ),
        row(
            S_WEBHOOKS,
            "WebhookTriggerTypeField (status change)",
            M::POST,
            "/api/v1/webhooks/",
            Some(
                json!({"name": "sc", "url": "https://example.com", "http_method": "POST", "trigger_type": "status change"}),
            ),
            201,
            vec![("/trigger_type", json!("status change"))],
        ),
        row(
            S_WEBHOOKS,
            "WebhookTriggerTypeField (unknown type, create)",
            M::POST,
            "/api/v1/webhooks/",
            Some(
                json!({"name": "tt", "url": "https://example.com", "http_method": "POST", "trigger_type": "incident_triggered"}),
            ),
            400,
            field("trigger_type"),
        ),
        row(
            S_WEBHOOKS,
            "WebhookTriggerTypeField (unknown type, update)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"trigger_type": "Resolved", "name": "half"})),
            400,
            field("trigger_type"),
        ),
        row(
            S_WEBHOOKS,
            "validate_http_method (exact case)",
            M::POST,
            "/api/v1/webhooks/",
            Some(
                json!({"name": "hm", "url": "https://example.com", "http_method": "post", "trigger_type": "resolve"}),
            ),
            400,
            field("http_method"),
        ),
        row(
            S_WEBHOOKS,
            "validate_http_method (update refused, rename not applied)",
            M::PATCH,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"name": "half", "http_method": "TRACE"})),
            400,
            field("http_method"),
        ),
        row(
            S_WEBHOOKS,
            "UniqueTogetherValidator(name, organization) on create",
            M::POST,
            "/api/v1/webhooks/",
            create("RENAMED", json!({})),
            400,
            field("name"),
        ),
        row(
            S_WEBHOOKS,
            "UniqueTogetherValidator(name, organization) on rename",
            M::PUT,
            "/api/v1/webhooks/{last}/",
            Some(json!({"name": "RENAMED"})),
            400,
            field("name"),
        ),
        row(
            S_WEBHOOKS,
            "validate_headers (syntax error)",
            M::POST,
            "/api/v1/webhooks/",
            create(
                "hd",
                json!({"headers": "{\"X-A\": \"{{ alert_payload.a \"}"}),
            ),
            400,
            field("headers"),
        ),
        row(
            S_WEBHOOKS,
            "validate_url (syntax error)",
            M::POST,
            "/api/v1/webhooks/",
            create("ur", json!({"url": "https://example.com/{% if %}"})),
            400,
            field("url"),
        ),
        row(
            S_WEBHOOKS,
            "validate_trigger_template (unknown filter)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"trigger_template": "{{ alert_payload.x | nope }}"})),
            400,
            field("trigger_template"),
        ),
        row(
            S_WEBHOOKS,
            "validate_data (syntax error on update)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"data": "{{ x ", "name": "half"})),
            400,
            field("data"),
        ),
        row(
            S_WEBHOOKS,
            "to_representation (set secrets are masked)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"password": "p", "authorization_header": "Bearer x"})),
            200,
            vec![
                ("/password", json!("****************")),
                ("/authorization_header", json!("****************")),
            ],
        ),
        row(
            S_WEBHOOKS,
            "to_internal_value (the mask keeps the stored secret)",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"password": "****************"})),
            200,
            vec![("/password", json!("****************"))],
        ),
        row(
            S_WEBHOOKS,
            "TeamPrimaryKeyRelatedField (team \"\" is no team)",
            M::POST,
            "/api/v1/webhooks/",
            create("team empty", json!({"team": ""})),
            201,
            vec![("/team", Value::Null)],
        ),
        row(
            S_WEBHOOKS,
            "validate_preset (preset cannot be set on update)",
            M::PATCH,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"preset": "advanced_webhook"})),
            400,
            field("preset"),
        ),
        row(
            S_WEBHOOKS,
            "extra_kwargs name allow_blank=False",
            M::PUT,
            "/api/v1/webhooks/{fixture}/",
            Some(json!({"name": ""})),
            400,
            field("name"),
        ),
        // ---- views/webhooks.py, models/webhook.py
        row(
            V_WEBHOOKS,
            "get_object (unknown id: Not found.)",
            M::GET,
            "/api/v1/webhooks/WHNOPE/",
            None,
            404,
            vec![("/detail", json!("Not found."))],
        ),
        row(
            M_WEBHOOK,
            "trigger_type / forward_all / is_webhook_enabled defaults",
            M::POST,
            "/api/v1/webhooks/",
            create("defaults", json!({})),
            201,
            vec![
                ("/forward_all", json!(true)),
                ("/is_webhook_enabled", json!(true)),
                ("/preset", Value::Null),
            ],
        ),
        // ---- the gateway's superset rule (README: Grafana OnCall)
        row(
            S_WEBHOOKS,
            "superset: our own fields imply http_method POST",
            M::POST,
            "/api/v1/webhooks/",
            Some(
                json!({"name": "ours", "url": "https://example.com", "trigger_events": ["my.custom-type"]}),
            ),
            201,
            vec![
                ("/http_method", json!("POST")),
                ("/trigger_events", json!(["my.custom-type"])),
            ],
        ),
        row(
            T_WEBHOOKS,
            "test_delete_webhook",
            M::DELETE,
            "/api/v1/webhooks/{last}/",
            None,
            204,
            vec![],
        ),
        row(
            T_WEBHOOKS,
            "test_delete_webhook (then 404 Not found.)",
            M::GET,
            "/api/v1/webhooks/{last}/",
            None,
            404,
            vec![("/detail", json!("Not found."))],
        ),
        // ---- test_custom_actions.py (the same webhooks under /api/v1/actions/)
        row(
            T_ACTIONS,
            "test_get_custom_actions_filter_by_name",
            M::GET,
            "/api/v1/actions/?name=fixture-action",
            None,
            200,
            action_fixture_page
                .iter()
                .map(|(k, v)| {
                    (
                        *k,
                        if *k == "/results/0/name" {
                            json!("fixture-action")
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect(),
        ),
        row(
            T_ACTIONS,
            "test_get_custom_actions_filter_by_name_empty_result",
            M::GET,
            "/api/v1/actions/?name=NonExistentName",
            None,
            200,
            empty_page,
        ),
        row(
            T_ACTIONS,
            "test_create_custom_action[name, url]",
            M::POST,
            "/api/v1/actions/",
            Some(json!({"name": "Test outgoing action", "url": "https://example.com/a"})),
            201,
            plain_action("Test outgoing action", "https://example.com/a"),
        ),
        row(
            T_ACTIONS,
            "test_get_custom_action",
            M::GET,
            "/api/v1/actions/{last}/",
            None,
            200,
            plain_action("Test outgoing action", "https://example.com/a"),
        ),
        row(
            T_ACTIONS,
            "test_create_custom_action[nulls]",
            M::POST,
            "/api/v1/actions/",
            Some(
                json!({"name": "a nulls", "url": "https://example.com", "user": null, "password": null, "data": null, "authorization_header": null, "forward_whole_payload": true}),
            ),
            201,
            plain_action("a nulls", "https://example.com"),
        ),
        row(
            T_ACTIONS,
            "test_create_custom_action[empty strings]",
            M::POST,
            "/api/v1/actions/",
            Some(
                json!({"name": "a empty", "url": "https://example.com", "user": "", "password": "", "data": "", "authorization_header": "", "forward_whole_payload": true}),
            ),
            201,
            with(
                plain_action("a empty", "https://example.com"),
                vec![
                    ("/user", json!("")),
                    ("/password", json!("")),
                    ("/authorization_header", json!("")),
                ],
            ),
        ),
        row(
            T_ACTIONS,
            "test_create_custom_action_nested_data",
            M::POST,
            "/api/v1/actions/",
            Some(
                json!({"name": "a nested", "url": "https://example.com", "data": "{\"nested_item\": \"{{ alert_payload.foo.bar }}\"}"}),
            ),
            201,
            vec![(
                "/data",
                json!("{\"nested_item\": \"{{ alert_payload.foo.bar }}\"}"),
            )],
        ),
        row(
            T_ACTIONS,
            "test_create_custom_action_valid_after_render",
            M::POST,
            "/api/v1/actions/",
            Some(
                json!({"name": "a render", "url": "https://example.com", "data": "{\"name\": \"{{ alert_payload.name }}\", \"labels\": {{ alert_payload.labels | tojson }}}"}),
            ),
            201,
            vec![("/name", json!("a render"))],
        ),
        row(
            T_ACTIONS,
            "test_create_custom_action_valid_after_render_use_all_data",
            M::POST,
            "/api/v1/actions/",
            Some(
                json!({"name": "a all", "url": "https://example.com", "data": "{{ alert_payload | tojson }}"}),
            ),
            201,
            vec![("/data", json!("{{ alert_payload | tojson }}"))],
        ),
        row(
            T_ACTIONS,
            "test_update_custom_action[name, url]",
            M::PUT,
            "/api/v1/actions/{last}/",
            Some(json!({"name": "RENAMED action", "url": "https://example.com"})),
            200,
            // Deliberate difference (README): `data` without `forward_whole_payload` made it false.
            with(
                plain_action("RENAMED action", "https://example.com"),
                vec![
                    ("/data", json!("{{ alert_payload | tojson }}")),
                    ("/forward_whole_payload", json!(false)),
                ],
            ),
        ),
        row(
            T_ACTIONS,
            "test_update_custom_action[nulls]",
            M::PUT,
            "/api/v1/actions/{last}/",
            Some(
                json!({"name": "RENAMED 1", "url": "https://example.com", "user": null, "password": null, "data": null, "authorization_header": null, "forward_whole_payload": true}),
            ),
            200,
            plain_action("RENAMED 1", "https://example.com"),
        ),
        row(
            T_ACTIONS,
            "test_update_custom_action[empty strings]",
            M::PUT,
            "/api/v1/actions/{last}/",
            Some(
                json!({"name": "RENAMED 2", "url": "https://example.com", "user": "", "password": "", "data": "", "authorization_header": "", "forward_whole_payload": true}),
            ),
            200,
            with(
                plain_action("RENAMED 2", "https://example.com"),
                vec![
                    ("/user", json!("")),
                    ("/password", json!("")),
                    ("/authorization_header", json!("")),
                ],
            ),
        ),
        row(
            S_ACTION,
            "ActionCreateSerializer (forward_whole_payload must be a boolean)",
            M::PUT,
            "/api/v1/actions/{last}/",
            Some(json!({"forward_whole_payload": "yes", "name": "half"})),
            400,
            field("forward_whole_payload"),
        ),
        row(
            S_ACTION,
            "UniqueTogetherValidator on actions",
            M::POST,
            "/api/v1/actions/",
            Some(json!({"name": "RENAMED 2", "url": "https://example.com"})),
            400,
            field("name"),
        ),
        row(
            T_ACTIONS,
            "test_delete_custom_action",
            M::DELETE,
            "/api/v1/actions/{last}/",
            None,
            204,
            vec![],
        ),
        row(
            T_ACTIONS,
            "test_delete_custom_action (then 404 Not found.)",
            M::GET,
            "/api/v1/actions/{last}/",
            None,
            404,
            vec![("/detail", json!("Not found."))],
        ),
    ]
}

/// Every stored webhook, as the API shows it (the state a refused write must not change).
async fn snapshot(gw: &TestGateway) -> Value {
    let (s, page) = gw
        .admin(Method::GET, "/api/v1/webhooks/?perpage=100", None)
        .await;
    assert_eq!(s, 200);
    page["results"].clone()
}

/// Gives a stored webhook an OnCall preset, as an import from OnCall would (the API cannot).
fn set_preset(gw: &TestGateway, id: &str, preset: &str) {
    let db = rusqlite::Connection::open(gw.dir.path().join("gateway.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let n = db
        .execute(
            "UPDATE webhooks SET doc = json_set(doc, '$.preset', ?1) WHERE id = ?2",
            rusqlite::params![preset, id],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oncall_public_api_tests_replayed() {
    let gw = TestGateway::start().await;
    let make = |name: &str| json!({"name": name, "url": format!("https://example.com/{name}"), "http_method": "POST", "trigger_type": "escalation"});
    let fixture = gw.create_webhook(make("fixture")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let preset = gw.create_webhook(make("preset")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let advanced = gw.create_webhook(make("advanced")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    set_preset(&gw, &preset, "simple_webhook");
    set_preset(&gw, &advanced, "advanced_webhook");
    let (s, _) = gw
        .admin(
            Method::POST,
            "/api/v1/actions/",
            Some(&json!({"name": "fixture-action", "url": "https://example.com/fa"})),
        )
        .await;
    assert_eq!(s, 201);

    let mut last = fixture.clone();
    let mut failures = Vec::new();
    for r in rows() {
        let path = r
            .path
            .replace("{fixture}", &fixture)
            .replace("{preset}", &preset)
            .replace("{advanced}", &advanced)
            .replace("{last}", &last);
        let refused_write = r.method != Method::GET && r.status >= 400;
        let before = if refused_write {
            Some(snapshot(&gw).await)
        } else {
            None
        };
        let (s, v) = gw.admin(r.method.clone(), &path, r.body.as_ref()).await;
        if s.as_u16() != r.status {
            failures.push(format!(
                "{}: {} {path}: status {s}, want {} ({v})",
                r.from, r.method, r.status
            ));
            continue;
        }
        for (ptr, want) in &r.expect {
            let got = v
                .pointer(ptr)
                .cloned()
                .unwrap_or(Value::String("<absent>".into()));
            if &got != want {
                failures.push(format!("{}: {ptr} = {got}, want {want} ({v})", r.from));
            }
        }
        if s.as_u16() >= 400 && s.as_u16() < 500 {
            assert!(
                v["type"].is_string() && v["status"] == s.as_u16(),
                "{}: not a problem body: {v}",
                r.from
            );
        }
        if let Some(before) = before {
            let after = snapshot(&gw).await;
            if before != after {
                failures.push(format!(
                    "{}: a refused request changed the stored webhooks",
                    r.from
                ));
            }
        }
        if s.as_u16() == 201 {
            last = v["id"].as_str().unwrap().to_string();
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows differ from OnCall:\n{}",
        failures.len(),
        failures.join("\n")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oncall_paging_from_public_url() {
    let gw = TestGateway::start_with(
        |c| c.public_url = "https://gateway.example.com/".into(),
        None,
    )
    .await;
    for i in 0..5 {
        gw.create_webhook(json!({"name": format!("w{i}"), "url": "https://example.com", "http_method": "POST", "trigger_type": "resolve"}))
            .await;
    }
    let get = |q: &'static str| {
        let gw = &gw;
        async move {
            let (s, v) = gw.call(Method::GET, q, Some(ADMIN), None).await;
            assert_eq!(s, 200, "{q}: {v}");
            v
        }
    };
    let names = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect()
    };
    // PAGINATORS: perpage sets the size and stays in the links; the Host header is never used.
    let p = get("/api/v1/webhooks/?perpage=2").await;
    assert_eq!(
        (
            names(&p),
            p["page_size"].clone(),
            p["total_pages"].clone(),
            p["count"].clone()
        ),
        (vec!["w0".into(), "w1".into()], json!(2), json!(3), json!(5)),
        "{PAGINATORS}"
    );
    assert_eq!(
        p["next"],
        "https://gateway.example.com/api/v1/webhooks/?page=2&perpage=2"
    );
    assert_eq!(p["previous"], Value::Null);
    let p = get("/api/v1/webhooks/?perpage=2&page=3").await;
    assert_eq!(names(&p), vec!["w4".to_string()]);
    assert_eq!(
        p["previous"],
        "https://gateway.example.com/api/v1/webhooks/?page=2&perpage=2"
    );
    let p2 = get("/api/v1/webhooks/?perpage=2&page=2").await;
    assert_eq!(
        p2["previous"], "https://gateway.example.com/api/v1/webhooks/?perpage=2",
        "DRF drops page=1"
    );
    // A page past the end answers the last page; an unusable page is page 1.
    let p = get("/api/v1/webhooks/?perpage=2&page=99").await;
    assert_eq!(
        (names(&p), p["current_page_number"].clone()),
        (vec!["w4".to_string()], json!(3))
    );
    for q in [
        "/api/v1/webhooks/?perpage=2&page=abc",
        "/api/v1/webhooks/?perpage=2&page=0",
        "/api/v1/webhooks/?perpage=2&page=-1",
    ] {
        let p = get(q).await;
        assert_eq!(
            (names(&p), p["current_page_number"].clone()),
            (vec!["w0".to_string(), "w1".to_string()], json!(1)),
            "{q}"
        );
    }
    // An unusable perpage is the default 50; more than 100 is 100.
    assert_eq!(get("/api/v1/webhooks/?perpage=zz").await["page_size"], 50);
    assert_eq!(get("/api/v1/webhooks/?perpage=500").await["page_size"], 100);
    // ?name= is exact and kept in the links.
    let p = get("/api/v1/webhooks/?name=w3").await;
    assert_eq!(names(&p), vec!["w3".to_string()]);
    assert_eq!(get("/api/v1/webhooks/?name=w").await["count"], 0);
    // The actions list pages the same webhooks the same way.
    let p = get("/api/v1/actions/?perpage=4").await;
    assert_eq!(
        p["next"],
        "https://gateway.example.com/api/v1/actions/?page=2&perpage=4"
    );
    assert_eq!(p["results"][0]["forward_whole_payload"], true);
    // The attempts and responses lists use the same helper.
    let id = get("/api/v1/webhooks/?name=w0").await["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, p) = gw
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/attempts?perpage=1&page=7"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (
            s.as_u16(),
            p["current_page_number"].clone(),
            p["page_size"].clone()
        ),
        (200, json!(1), json!(1))
    );
    gw.stop().await;

    // With an empty public_url the links are relative, whatever the Host header says.
    let gw = TestGateway::start().await;
    for i in 0..2 {
        gw.create_webhook(json!({"name": format!("r{i}"), "url": "https://example.com", "http_method": "POST", "trigger_type": "resolve"}))
            .await;
    }
    let resp = gw
        .client
        .get(gw.url("/api/v1/webhooks/?perpage=1"))
        .header("Authorization", ADMIN)
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["next"], "/api/v1/webhooks/?page=2&perpage=1");
    gw.stop().await;
}

/// `test_webhooks.py::test_get_webhook_responses`: 20 responses of a webhook; the first result
/// has the receiver's status and content and the event's data, and `count` is 20. OnCall's test
/// makes the response rows directly; here 20 real events are delivered to a real receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oncall_get_webhook_responses() {
    let from = format!("{T_WEBHOOKS}::test_get_webhook_responses");
    let receiver = crate::support::Receiver::start().await;
    receiver.set_fallback(|_| {
        (
            axum::http::StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"id": "third-party-id"}"#,
        )
            .into_response()
    });
    let gw = TestGateway::start().await;
    let w = gw
        .create_webhook(
            json!({"name": "responses", "url": receiver.url("/hook"), "http_method": "POST",
            "trigger_type": "escalation", "forward_all": true}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    let event = json!({"event_type": "escalation", "test": "abc"});
    for _ in 0..20 {
        gw.post_event(&event).await;
    }
    receiver
        .wait_for(20, std::time::Duration::from_secs(20))
        .await;
    // Deliveries are recorded just after the receiver answers: wait for all 20 rows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let page = loop {
        let (s, v) = gw
            .admin(
                Method::GET,
                &format!("/api/v1/webhooks/{id}/responses"),
                None,
            )
            .await;
        assert_eq!(s.as_u16(), 200, "{from}: {v}");
        if v["count"] == 20 || std::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(page["count"], 20, "{from}: {page}");
    let first = &page["results"][0];
    assert_eq!(first["status_code"], 200, "{from}: {first}");
    assert_eq!(first["content"], r#"{"id": "third-party-id"}"#, "{from}");
    let event_data: Value = serde_json::from_str(
        first["event_data"]
            .as_str()
            .expect("event_data is a string"),
    )
    .expect("event_data holds the event's JSON");
    assert_eq!(event_data, event, "{from}");
    gw.stop().await;
}
