//! Pieces every CF resource shape shares: links, metadata, pagination, times.

use hearth_store::{Metadata, format_cf_time};
use serde_json::{Value, json};

use crate::context::Ctx;
use crate::params::ListParams;

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

/// A list response: `pagination`, `resources` and, when asked for, `included`.
pub fn list(
    ctx: &Ctx,
    path: &str,
    params: &ListParams,
    total: u64,
    resources: Vec<Value>,
    included: Option<Value>,
) -> Value {
    let mut out = json!({"pagination": pagination(ctx, path, params, total), "resources": resources});
    if let Some(inc) = included {
        out["included"] = inc;
    }
    out
}
