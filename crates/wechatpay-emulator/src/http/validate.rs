//! The documented request fields of each operation as small static tables, and the check that
//! answers `PARAM_ERROR` naming the first field that is missing or of the wrong type (as a JSON
//! pointer, `/objectives/0/count`).

use serde_json::{Map, Value};

use crate::http::answer::Answer;

/// A field's documented type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Str,
    Int,
    Bool,
    Obj(&'static [Field]),
    /// An array of objects.
    List(&'static [Field]),
    /// Anything (passed through).
    Any,
}

/// One documented field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// A required field.
pub(crate) const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

/// An optional field.
pub(crate) const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

/// Parses a JSON body into an object, or answers `PARAM_ERROR`.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, Answer> {
    object_at(body, "")
}

/// [`object`] for the JSON at pointer `at` of the body (`/meta` of an upload).
pub(crate) fn object_at(body: &[u8], at: &str) -> Result<Map<String, Value>, Answer> {
    let (field, what) = match at {
        "" => ("/".to_string(), "the body".to_string()),
        at => (
            at.to_string(),
            format!("{} of the body", at.trim_start_matches('/')),
        ),
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Answer::param_error(
            &field,
            "body",
            format!("{what} must be a JSON object"),
            Value::Null,
        )),
        Err(e) => Err(Answer::param_error(
            &field,
            "body",
            format!("{what} is not valid JSON ({e})"),
            Value::Null,
        )),
    }
}

/// Checks `obj` against `spec`; unknown fields are let through, as the platform does.
pub(crate) fn check(obj: &Map<String, Value>, spec: &[Field]) -> Result<(), Answer> {
    check_at(obj, spec, "")
}

/// [`check`] for the object at pointer `at` of the body (`/meta` of an upload): the fields at
/// fault are named from the body's root (`/meta/sha256`).
pub(crate) fn check_under(
    obj: &Map<String, Value>,
    spec: &[Field],
    at: &str,
) -> Result<(), Answer> {
    check_at(obj, spec, at)
}

fn check_at(obj: &Map<String, Value>, spec: &[Field], prefix: &str) -> Result<(), Answer> {
    for f in spec {
        let path = format!("{prefix}/{}", f.name);
        let v = match obj.get(f.name) {
            None | Some(Value::Null) => {
                if f.required {
                    return Err(Answer::missing(&path, "body"));
                }
                continue;
            }
            Some(v) => v,
        };
        if f.required && v.as_str() == Some("") {
            return Err(Answer::param_error(
                &path,
                "body",
                format!("required field {} is empty", f.name),
                v.clone(),
            ));
        }
        let wrong = |what: &str| {
            Answer::param_error(
                &path,
                "body",
                format!("field {} must be {what}", f.name),
                v.clone(),
            )
        };
        match f.kind {
            Kind::Str if !v.is_string() => return Err(wrong("a string")),
            Kind::Int if !(v.is_i64() || v.is_u64()) => return Err(wrong("an integer")),
            Kind::Bool if !v.is_boolean() => return Err(wrong("true or false")),
            Kind::Obj(inner) => match v {
                Value::Object(m) => check_at(m, inner, &path)?,
                _ => return Err(wrong("an object")),
            },
            Kind::List(inner) => match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let ipath = format!("{path}/{i}");
                        match item {
                            Value::Object(m) => check_at(m, inner, &ipath)?,
                            _ => {
                                return Err(Answer::param_error(
                                    &ipath,
                                    "body",
                                    format!("items of {} must be objects", f.name),
                                    item.clone(),
                                ))
                            }
                        }
                    }
                }
                _ => return Err(wrong("an array")),
            },
            _ => {}
        }
    }
    Ok(())
}

/// A string field known to be present after [`check`].
pub(crate) fn text<'a>(obj: &'a Map<String, Value>, name: &str) -> &'a str {
    obj.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// An integer field known to be present after [`check`].
pub(crate) fn int(obj: &Map<String, Value>, name: &str) -> i64 {
    obj.get(name).and_then(Value::as_i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ITEM: &[Field] = &[req("serial_no", Kind::Str), req("count", Kind::Int)];
    const SPEC: &[Field] = &[
        req("id", Kind::Str),
        opt("items", Kind::List(ITEM)),
        opt("amount", Kind::Obj(&[req("total", Kind::Int)])),
    ];

    fn field_of(a: Answer) -> String {
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["code"], "PARAM_ERROR");
        v["detail"]["field"].as_str().unwrap().to_string()
    }

    #[test]
    fn names_the_field_at_fault() {
        let ok = json!({"id": "1", "items": [{"serial_no": "a", "count": 1}], "x": 1});
        check(ok.as_object().unwrap(), SPEC).unwrap();
        for (bad, field) in [
            (json!({}), "/id"),
            (json!({"id": ""}), "/id"),
            (json!({"id": 1}), "/id"),
            (
                json!({"id": "1", "items": [{"serial_no": "a"}]}),
                "/items/0/count",
            ),
            (
                json!({"id": "1", "items": [{"serial_no": "a", "count": 1.5}]}),
                "/items/0/count",
            ),
            (json!({"id": "1", "items": [1]}), "/items/0"),
            (json!({"id": "1", "items": {}}), "/items"),
            (json!({"id": "1", "amount": {}}), "/amount/total"),
        ] {
            assert_eq!(
                field_of(check(bad.as_object().unwrap(), SPEC).unwrap_err()),
                field
            );
        }
        assert!(object(b"[1]").is_err());
        assert!(object(b"{").is_err());
        assert!(object(b"").is_err());
    }
}
