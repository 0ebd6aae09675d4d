//! Pieces every CF resource shape shares: links, metadata, pagination, times.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_store::{Metadata, format_cf_time};
use serde::Serialize;
use serde_json::{Value, json};

use crate::context::Ctx;
use crate::params::ListParams;

pub mod json;

pub fn time(stored: &str) -> String {
    format_cf_time(stored)
}

pub fn link(ctx: &Ctx, path: &str) -> Value {
    json!({"href": ctx.url(path)})
}

pub fn metadata(md: Option<&Metadata>) -> Value {
    match md {
        Some(m) => json!({"labels": m.labels, "annotations": m.annotations}),
        None => json!({"labels": {}, "annotations": {}}),
    }
}

pub fn rel(guid: Option<&str>) -> Value {
    match guid {
        Some(g) => json!({"data": {"guid": g}}),
        None => json!({"data": null}),
    }
}

/// CF's `pagination` object with absolute links that keep the request's filters.
pub fn pagination(ctx: &Ctx, path: &str, params: &ListParams, total: u64) -> Value {
    let per_page = params.per_page.max(1) as u64;
    let pages = total.div_ceil(per_page).max(1);
    let href = |page: u64| {
        let mut pairs: Vec<(String, String)> = params.kept.clone();
        pairs.push(("page".into(), page.to_string()));
        pairs.push(("per_page".into(), per_page.to_string()));
        let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        json!({"href": ctx.url(&format!("{path}?{qs}"))})
    };
    let page = params.page as u64;
    json!({
        "total_results": total,
        "total_pages": pages,
        "first": href(1),
        "last": href(pages),
        "next": if page < pages { href(page + 1) } else { Value::Null },
        "previous": if page > 1 { href(page - 1) } else { Value::Null },
    })
}

/// A list response: `pagination`, `resources` and, when asked for, `included`. Typed so
/// that a page serialises straight to bytes, without building a JSON tree first.
#[derive(Serialize)]
struct ListBody<T: Serialize> {
    pagination: Value,
    resources: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    included: Option<Value>,
}

/// Room for one rendered resource; a page's buffer is sized for all of them up front,
/// so a 50-resource page is written without growing (and copying) the buffer ten times.
const RESOURCE_BYTES: usize = 2048;

/// The 200 answer for a list page (`application/json`, as `Json` answers).
pub fn list<T: Serialize>(
    ctx: &Ctx,
    path: &str,
    params: &ListParams,
    total: u64,
    resources: Vec<T>,
    included: Option<Value>,
) -> Response {
    let capacity = 1024 + resources.len() * RESOURCE_BYTES;
    let body = ListBody { pagination: pagination(ctx, path, params, total), resources, included };
    json_with_capacity(StatusCode::OK, &body, capacity)
}

/// `status` with `value` as an `application/json` body (as axum's `Json` answers).
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    json_with_capacity(status, value, RESOURCE_BYTES)
}

fn json_with_capacity<T: Serialize + ?Sized>(status: StatusCode, value: &T, capacity: usize) -> Response {
    let mut buf = Vec::with_capacity(capacity);
    match json::to_writer(&mut buf, value) {
        Ok(()) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the answer: {e}")).into_response(),
    }
}

/// `{"href": …}`.
#[derive(Serialize)]
pub struct Href {
    pub href: String,
}

/// A link base (`http://host/v3/apps/GUID`) checked once for JSON escaping, so that each
/// of a resource's links copies it as it is.
#[derive(Clone, Copy)]
pub struct LinkBase<'a> {
    text: &'a str,
    clean: bool,
}

impl<'a> LinkBase<'a> {
    pub fn new(text: &'a str) -> LinkBase<'a> {
        LinkBase { text, clean: json::is_clean(text) }
    }
}

/// `{"href": BASE + SUFFIX}`, written straight into the output without building the URL
/// first (a list page has a dozen links per resource).
pub struct Joined<'a> {
    pub base: LinkBase<'a>,
    pub suffix: &'static str,
    pub method: Option<&'static str>,
}

impl<'a> Joined<'a> {
    pub fn link(base: LinkBase<'a>, suffix: &'static str) -> Joined<'a> {
        Joined { base, suffix, method: None }
    }

    pub fn action(base: LinkBase<'a>, suffix: &'static str) -> Joined<'a> {
        Joined { base, suffix, method: Some("POST") }
    }
}

/// BASE + SUFFIX as one JSON string: a [`json::CLEAN_STR`] when both parts need no
/// escaping.
struct Concat<'a>(&'a str, &'static str);

impl std::fmt::Display for Concat<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        f.write_str(self.1)
    }
}

impl Serialize for Concat<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Joined<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let href = Concat(self.base.text, self.suffix);
        let mut map = s.serialize_map(Some(if self.method.is_some() { 2 } else { 1 }))?;
        if self.base.clean && json::is_clean(self.suffix) {
            map.serialize_entry("href", &Newtype(json::CLEAN_STR, &href))?;
        } else {
            map.serialize_entry("href", &href)?;
        }
        if let Some(m) = self.method {
            map.serialize_entry("method", m)?;
        }
        map.end()
    }
}

/// `value` as a newtype struct called `name`.
struct Newtype<'a, T>(&'static str, &'a T);

impl<T: Serialize> Serialize for Newtype<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(self.0, self.1)
    }
}

/// `{"data": {"guid": …}}` or `{"data": null}`.
#[derive(Serialize)]
pub struct Rel<'a> {
    pub data: Option<Guid<'a>>,
}

#[derive(Serialize)]
pub struct Guid<'a> {
    pub guid: &'a str,
}

impl<'a> Rel<'a> {
    pub fn to(guid: Option<&'a str>) -> Rel<'a> {
        Rel { data: guid.map(|guid| Guid { guid }) }
    }
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

/// `{"labels": {…}, "annotations": {…}}`.
#[derive(Serialize)]
pub struct MetadataJson<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
}

impl<'a> MetadataJson<'a> {
    pub fn of(md: Option<&'a Metadata>) -> MetadataJson<'a> {
        match md {
            Some(m) => MetadataJson { labels: &m.labels, annotations: &m.annotations },
            None => MetadataJson { labels: &EMPTY, annotations: &EMPTY },
        }
    }
}
