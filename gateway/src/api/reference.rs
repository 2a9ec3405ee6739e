//! The API reference as a readable page at `/api/docs`, rendered on the server from the same
//! OpenAPI document `/api/v1/openapi.json` serves. No documentation viewer is embedded: the
//! usual ones (Swagger UI, Redoc, Scalar) load their scripts from a CDN or download them while
//! building, and the gateway works offline and builds without network access.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;
use utoipa::OpenApi;

use super::AppState;
use super::openapi::{ApiDoc, PATH};

const PAGE: &str = include_str!("reference/page.html");
const CSS: &str = include_str!("reference/page.css");
/// The page has no script and only its own stylesheet.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/docs", get(page))
        .route("/api/docs.css", get(css))
}

async fn page() -> Response {
    static RENDERED: LazyLock<String> = LazyLock::new(|| render(&doc()));
    let mut resp = Html(RENDERED.as_str()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn css() -> Response {
    let mut resp = CSS.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

fn doc() -> Value {
    serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises")
}

#[derive(Serialize)]
struct Tag {
    name: String,
    description: String,
    ops: Vec<Op>,
}

#[derive(Serialize)]
struct Op {
    id: String,
    method: String,
    path: String,
    summary: String,
    description: String,
    auth: bool,
    params: Vec<Param>,
    body: Option<Body>,
    responses: Vec<Reply>,
}

#[derive(Serialize)]
struct Param {
    name: String,
    location: String,
    kind: String,
    required: bool,
    description: String,
}

#[derive(Serialize)]
struct Body {
    content_type: String,
    kind: String,
    link: Option<String>,
    required: bool,
}

#[derive(Serialize)]
struct Reply {
    status: String,
    description: String,
    kind: String,
    link: Option<String>,
}

#[derive(Serialize)]
struct Schema {
    name: String,
    description: String,
    kind: String,
    fields: Vec<Field>,
}

#[derive(Serialize)]
struct Field {
    name: String,
    kind: String,
    link: Option<String>,
    required: bool,
    description: String,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A schema as a short type text, with the schema it names (for a link), if any.
fn kind_of(s: &Value) -> (String, Option<String>) {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r).to_string();
        return (name.clone(), Some(name));
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = s[key].as_array() {
            let kinds: Vec<(String, Option<String>)> = parts.iter().map(kind_of).collect();
            let link = kinds.iter().find_map(|(_, l)| l.clone());
            let names: Vec<String> = kinds
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k != "null")
                .collect();
            let joined = names.join(if key == "allOf" { " & " } else { " | " });
            return (joined, link);
        }
    }
    let ty = match &s["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => String::new(),
    };
    match ty.as_str() {
        "array" => {
            let (inner, link) = kind_of(&s["items"]);
            (format!("array of {inner}"), link)
        }
        "" => ("any".into(), None),
        _ => match s["format"].as_str() {
            Some(f) => (format!("{ty} ({f})"), None),
            None => (ty, None),
        },
    }
}

fn first_content(content: &Value) -> Option<(String, &Value)> {
    content
        .as_object()?
        .iter()
        .next()
        .map(|(ct, c)| (ct.clone(), &c["schema"]))
}

fn op(method: &str, path: &str, o: &Value) -> Op {
    let params = o["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Param {
            name: text(&p["name"]),
            location: text(&p["in"]),
            kind: kind_of(&p["schema"]).0,
            required: p["required"].as_bool().unwrap_or(false),
            description: text(&p["description"]),
        })
        .collect();
    let body = first_content(&o["requestBody"]["content"]).map(|(ct, s)| {
        let (kind, link) = kind_of(s);
        Body {
            content_type: ct,
            kind,
            link,
            required: o["requestBody"]["required"].as_bool().unwrap_or(false),
        }
    });
    let mut responses: Vec<Reply> = o["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(status, r)| {
            let (kind, link) = first_content(&r["content"])
                .map(|(_, s)| kind_of(s))
                .unwrap_or_default();
            Reply {
                status: status.clone(),
                description: text(&r["description"]),
                kind,
                link,
            }
        })
        .collect();
    responses.sort_by(|a, b| a.status.cmp(&b.status));
    Op {
        id: text(&o["operationId"]),
        method: method.to_uppercase(),
        path: path.to_string(),
        summary: text(&o["summary"]),
        description: text(&o["description"]),
        auth: o["security"].as_array().is_some_and(|s| !s.is_empty()),
        params,
        body,
        responses,
    }
}

fn schema(name: &str, s: &Value) -> Schema {
    let required: Vec<&str> = s["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let fields = s["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(f, p)| {
            let (kind, link) = kind_of(p);
            Field {
                name: f.clone(),
                kind,
                link,
                required: required.contains(&f.as_str()),
                description: text(&p["description"]),
            }
        })
        .collect();
    Schema {
        name: name.to_string(),
        description: text(&s["description"]),
        kind: kind_of(s).0,
        fields,
    }
}

/// The page for `doc` (an OpenAPI document as JSON).
fn render(doc: &Value) -> String {
    let mut tags: Vec<Tag> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Tag {
            name: text(&t["name"]),
            description: text(&t["description"]),
            ops: Vec::new(),
        })
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let o = &item[method];
            if o.is_null() {
                continue;
            }
            let tag = o["tags"][0].as_str().unwrap_or("other").to_string();
            let at = match tags.iter().position(|t| t.name == tag) {
                Some(i) => i,
                None => {
                    tags.push(Tag {
                        name: tag,
                        description: String::new(),
                        ops: Vec::new(),
                    });
                    tags.len() - 1
                }
            };
            tags[at].ops.push(op(method, path, o));
        }
    }
    tags.retain(|t| !t.ops.is_empty());
    let schemas: Vec<Schema> = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(n, s)| schema(n, s))
        .collect();
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("page.html", PAGE)
        .expect("the reference template parses");
    env.get_template("page.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                version => text(&doc["info"]["version"]),
                description => text(&doc["info"]["description"]),
                openapi_path => PATH,
                tags => minijinja::value::Serde(&tags),
                schemas => minijinja::value::Serde(&schemas),
            })
        })
        .expect("the reference page renders")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_schema_is_on_the_page() {
        let d = doc();
        let page = render(&d);
        let mut missing = Vec::new();
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, o) in item.as_object().unwrap() {
                let anchor = format!("id=\"op-{}\"", o["operationId"].as_str().unwrap());
                if !page.contains(&anchor) {
                    missing.push(format!("{method} {path}"));
                }
            }
        }
        for name in d["components"]["schemas"].as_object().unwrap().keys() {
            if !page.contains(&format!("id=\"schema-{name}\"")) {
                missing.push(name.clone());
            }
        }
        assert!(missing.is_empty(), "{missing:?}");
        assert!(
            page.contains(r#"<h2 id="h-tag-webhooks">webhooks</h2>"#),
            "{page}"
        );
    }

    #[test]
    fn text_from_the_document_is_escaped() {
        let d = serde_json::json!({
            "info": {"version": "1", "description": "<script>alert(1)</script>"},
            "tags": [], "paths": {}, "components": {"schemas": {}}
        });
        let page = render(&d);
        assert!(!page.contains("<script>alert(1)"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
