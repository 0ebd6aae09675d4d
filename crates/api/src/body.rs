//! Request bodies: JSON objects checked field by field so that errors say what CF says
//! (`Unknown field(s): 'x'`, `Name must be a string`), and nothing is stored on a bad one.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// A parsed JSON object body.
pub struct Body {
    obj: Map<String, Value>,
}

fn title(field: &str) -> String {
    let mut s = field.replace('_', " ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

impl Body {
    /// Parses `bytes` as a JSON object whose keys are all in `allowed`.
    pub fn parse(bytes: &[u8], allowed: &[&str]) -> ApiResult<Body> {
        let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(bytes).map_err(|e| ApiError::MessageParse(e.to_string()))?
        };
        let Value::Object(obj) = value else {
            return Err(ApiError::MessageParse("the body must be a JSON object".into()));
        };
        Body::from_map(obj, allowed)
    }

    pub fn from_map(obj: Map<String, Value>, allowed: &[&str]) -> ApiResult<Body> {
        let unknown: Vec<String> =
            obj.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("'{k}'")).collect();
        if !unknown.is_empty() {
            return Err(ApiError::Unprocessable(format!("Unknown field(s): {}", unknown.join(", "))));
        }
        Ok(Body { obj })
    }

    /// The raw JSON value of a field.
    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.obj.get(key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    /// A string field; absent is `None`, null is an error unless `nullable`.
    pub fn opt_str(&self, key: &str) -> ApiResult<Option<String>> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::Unprocessable(format!("{} must be a string", title(key)))),
        }
    }

    pub fn req_str(&self, key: &str) -> ApiResult<String> {
        match self.obj.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(ApiError::Unprocessable(format!("{} can't be blank", title(key)))),
            Some(_) => Err(ApiError::Unprocessable(format!("{} must be a string", title(key)))),
        }
    }

    pub fn opt_bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::Unprocessable(format!("{} must be a boolean", title(key)))),
        }
    }

    /// An integer field; `Some(None)` when explicitly null.
    pub fn opt_int(&self, key: &str) -> ApiResult<Option<Option<i64>>> {
        match self.obj.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(Some(i))),
                None => Err(ApiError::Unprocessable(format!("{} must be an integer", title(key)))),
            },
            Some(_) => Err(ApiError::Unprocessable(format!("{} must be an integer", title(key)))),
        }
    }

    pub fn opt_object(&self, key: &str) -> ApiResult<Option<Map<String, Value>>> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o.clone())),
            Some(_) => Err(ApiError::Unprocessable(format!("{} must be an object", title(key)))),
        }
    }

    /// A nested object checked against its own allowed keys.
    pub fn sub(&self, key: &str, allowed: &[&str]) -> ApiResult<Option<Body>> {
        self.opt_object(key)?.map(|o| Body::from_map(o, allowed)).transpose()
    }

    /// `relationships.<name>.data.guid`, required.
    pub fn relationship_guid(&self, name: &str) -> ApiResult<String> {
        let missing = || ApiError::Unprocessable(format!("Relationships {name} must be a relationship with data.guid"));
        let rels = self
            .obj
            .get("relationships")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::Unprocessable(format!("Relationships '{name}' is required")))?;
        let rel =
            rels.get(name).ok_or_else(|| ApiError::Unprocessable(format!("Relationships '{name}' is required")))?;
        rel.get("data").and_then(|d| d.get("guid")).and_then(Value::as_str).map(str::to_string).ok_or_else(missing)
    }

    /// The keys of `relationships` must be among `allowed`.
    pub fn check_relationships(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.obj.get("relationships") {
            None => Ok(()),
            Some(Value::Object(o)) => {
                let unknown: Vec<String> =
                    o.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("'{k}'")).collect();
                if unknown.is_empty() {
                    Ok(())
                } else {
                    Err(ApiError::Unprocessable(format!("Relationships Unknown field(s): {}", unknown.join(", "))))
                }
            }
            Some(_) => Err(ApiError::Unprocessable("Relationships must be an object".into())),
        }
    }

    /// The `metadata` patch (labels and annotations; null values delete keys).
    pub fn metadata(&self) -> ApiResult<MetadataPatch> {
        let Some(md) = self.sub("metadata", &["labels", "annotations"])? else {
            return Ok(MetadataPatch::default());
        };
        let mut patch = MetadataPatch::default();
        for (kind, out) in [("labels", &mut patch.labels), ("annotations", &mut patch.annotations)] {
            let Some(map) = md.opt_object(kind)? else { continue };
            for (k, v) in map {
                let v = match v {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    _ => return Err(ApiError::Unprocessable(format!("Metadata {kind} values must be strings"))),
                };
                validate_metadata(kind, &k, v.as_deref())?;
                out.insert(k, v);
            }
        }
        Ok(patch)
    }
}

/// Requested label and annotation changes.
#[derive(Default, Debug)]
pub struct MetadataPatch {
    pub labels: BTreeMap<String, Option<String>>,
    pub annotations: BTreeMap<String, Option<String>>,
}

impl MetadataPatch {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

fn name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && s.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn validate_metadata(kind: &str, key: &str, value: Option<&str>) -> ApiResult<()> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let kind_title = if kind == "labels" { "label" } else { "annotation" };
    if let Some(p) = prefix {
        let ok = p.len() <= 253 && p.split('.').all(|part| name_ok(part) && !part.contains('_'));
        if !ok {
            return Err(ApiError::Unprocessable(format!(
                "Metadata {kind_title} key error: prefix '{p}' must be in valid DNS format"
            )));
        }
        if p == "cloudfoundry.org" || p.ends_with(".cloudfoundry.org") {
            return Err(ApiError::Unprocessable(format!(
                "Metadata {kind_title} key error: prefix 'cloudfoundry.org' is reserved"
            )));
        }
    }
    if !name_ok(name) {
        return Err(ApiError::Unprocessable(format!(
            "Metadata {kind_title} key error: '{key}' must be at most 63 characters, begin and end with an alphanumeric character, and contain only alphanumerics, '-', '_' or '.'"
        )));
    }
    if let Some(v) = value {
        if kind == "labels" && !v.is_empty() && !name_ok(v) {
            return Err(ApiError::Unprocessable(format!(
                "Metadata label value error: '{v}' must be at most 63 characters, begin and end with an alphanumeric character, and contain only alphanumerics, '-', '_' or '.'"
            )));
        }
        if kind == "annotations" && v.len() > 5000 {
            return Err(ApiError::Unprocessable(
                "Metadata annotations value error: it must be at most 5000 characters".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_wrongly_typed_fields_are_named() {
        let err = Body::parse(br#"{"name":"a","colour":1}"#, &["name"]).err().unwrap();
        assert_eq!(err.to_string(), "Unknown field(s): 'colour'");
        let b = Body::parse(br#"{"name":5}"#, &["name"]).ok().unwrap();
        assert_eq!(b.req_str("name").unwrap_err().to_string(), "Name must be a string");
        assert!(matches!(Body::parse(b"{not json", &["name"]), Err(ApiError::MessageParse(_))));
        assert!(matches!(Body::parse(b"[1]", &["name"]), Err(ApiError::MessageParse(_))));
    }

    #[test]
    fn metadata_keys_and_values_are_validated() {
        let ok = Body::parse(br#"{"metadata":{"labels":{"example.com/env":"prod","gone":null},"annotations":{"note":"any text at all"}}}"#, &["metadata"]).ok().unwrap();
        let patch = ok.metadata().unwrap();
        assert_eq!(patch.labels.get("gone"), Some(&None));
        for bad in [
            r#"{"metadata":{"labels":{"-bad":"x"}}}"#,
            r#"{"metadata":{"labels":{"k":"has space"}}}"#,
            r#"{"metadata":{"labels":{"cloudfoundry.org/x":"y"}}}"#,
            r#"{"metadata":{"labels":{"k":5}}}"#,
            r#"{"metadata":{"colors":{}}}"#,
        ] {
            let b = Body::parse(bad.as_bytes(), &["metadata"]).ok().unwrap();
            assert!(b.metadata().is_err(), "{bad}");
        }
    }
}
