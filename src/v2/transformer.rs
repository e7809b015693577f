//! XML both ways, as wechatpay-php's `Transformer`: [`to_xml`] writes APIv2 request bodies and
//! notification replies, [`to_array`] reads answers and notifications.
//!
//! Reading is deliberately small: no DTD (a `<!DOCTYPE` is refused, so no external entity is
//! ever fetched and no entity is ever expanded), only the five predefined entities and numeric
//! character references, one root element, nothing but whitespace, comments or processing
//! instructions after it, a bounded depth. Whatever else arrives is a clean
//! [`Error::Decode`], never a panic.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{Map, Value};

use crate::error::Error;

/// Deepest element nesting [`to_array`] accepts; APIv2 documents are two or three levels deep.
pub const MAX_DEPTH: usize = 32;

/// Whether `name` may be an element name, as PHP's `Transformer::isElementNameValid`: a letter
/// or `_` first, then letters, ASCII digits, `.`, `_`, `:` or `-`.
pub fn is_element_name_valid(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphabetic() || c.is_ascii_digit() || matches!(c, '.' | '_' | ':' | '-'))
}

fn needs_cdata(s: &str) -> bool {
    s.contains(['<', '>', '&', '"'])
}

fn check_chars(key: &str, s: &str) -> Result<(), Error> {
    // XML 1.0 cannot carry these at all, not even escaped.
    if let Some(c) = s.chars().find(|&c| {
        (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
    }) {
        return Err(Error::arg(format!(
            "xml field {key} contains the character U+{:04X}, which XML cannot carry",
            c as u32
        )));
    }
    Ok(())
}

fn write_text(out: &mut String, key: &str, s: &str) -> Result<(), Error> {
    check_chars(key, s)?;
    if needs_cdata(s) {
        // `]]>` cannot appear inside one CDATA section: close it and open another.
        out.push_str("<![CDATA[");
        out.push_str(&s.replace("]]>", "]]]]><![CDATA[>"));
        out.push_str("]]>");
    } else {
        for c in s.chars() {
            match c {
                // A raw CR would be normalized away by the reader; the reference keeps it.
                '\r' => out.push_str("&#13;"),
                c => out.push(c),
            }
        }
    }
    Ok(())
}

/// The text a scalar is written as (and signed as): strings as they are, numbers as JSON
/// writes them, `true`/`false`; `None` for null, objects and lists.
pub fn scalar(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn walk(out: &mut String, key: &str, v: &Value, item: &str, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::arg(format!(
            "xml field {key} is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let tag = if is_element_name_valid(key) {
        key
    } else {
        item
    };
    out.push('<');
    out.push_str(tag);
    out.push('>');
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(out, k, v, item, depth + 1)?;
            }
        }
        Value::Array(items) => {
            for v in items {
                walk(out, item, v, item, depth + 1)?;
            }
        }
        Value::Null => {}
        other => {
            if let Some(s) = scalar(other) {
                write_text(out, key, &s)?;
            }
        }
    }
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
    Ok(())
}

/// Writes `data` as `<xml>…</xml>`, as PHP's `Transformer::toXml($data)`: no declaration, no
/// indentation; a value holding `<`, `>`, `&` or `"` goes in CDATA, any other is written
/// literally; objects and lists become nested elements, list entries and keys that are not
/// valid element names become `<item>`; null becomes an empty element.
///
/// ```
/// use serde_json::json;
/// let data = json!({"appid": "wx2421b1c4370ec43b", "detail": "[{\"a\":1}]", "n": 1});
/// assert_eq!(
///     wechatpay_chain::transformer::to_xml(data.as_object().unwrap()).unwrap(),
///     "<xml><appid>wx2421b1c4370ec43b</appid><detail><![CDATA[[{\"a\":1}]]]></detail><n>1</n></xml>"
/// );
/// ```
pub fn to_xml(data: &Map<String, Value>) -> Result<String, Error> {
    to_xml_with(data, "xml", "item")
}

/// [`to_xml`] with another root element and list-entry name.
pub fn to_xml_with(data: &Map<String, Value>, root: &str, item: &str) -> Result<String, Error> {
    if !is_element_name_valid(root) || !is_element_name_valid(item) {
        return Err(Error::arg("root and item must be valid XML element names"));
    }
    let mut out = String::with_capacity(64 + data.len() * 32);
    out.push('<');
    out.push_str(root);
    out.push('>');
    for (k, v) in data {
        walk(&mut out, k, v, item, 1)?;
    }
    out.push_str("</");
    out.push_str(root);
    out.push('>');
    Ok(out)
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::decode(format!("not a well-formed APIv2 XML document: {msg}"))
}

/// [`bad`] caused by the XML reader's error (kept as the source).
fn bad_from(msg: impl std::fmt::Display, cause: impl Into<crate::error::BoxError>) -> Error {
    Error::decode_from(
        format!("not a well-formed APIv2 XML document: {msg}"),
        cause,
    )
}

/// An element being read: its name, its text so far, its children so far.
struct Open {
    name: String,
    text: String,
    children: Option<Map<String, Value>>,
    /// Names seen more than once among the children (their value is a list).
    repeated: std::collections::HashSet<String>,
}

impl Open {
    fn new(name: String) -> Open {
        Open {
            name,
            text: String::new(),
            children: None,
            repeated: Default::default(),
        }
    }

    fn into_value(self) -> Value {
        match self.children {
            // Text mixed with child elements is formatting: dropped, as SimpleXML does.
            Some(m) => Value::Object(m),
            None => Value::String(self.text),
        }
    }
}

impl Open {
    /// Adds a child, turning a repeated name into a list, as PHP's `(array)` cast does.
    fn add_child(&mut self, name: String, v: Value) {
        let map = self.children.get_or_insert_with(Map::new);
        match map.get_mut(&name) {
            Some(Value::Array(items)) if self.repeated.contains(&name) => items.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
                self.repeated.insert(name);
            }
            None => {
                map.insert(name, v);
            }
        }
    }
}

fn name_of(raw: &[u8]) -> Result<String, Error> {
    std::str::from_utf8(raw)
        .map(str::to_string)
        .map_err(|_| bad("an element name is not UTF-8"))
}

/// Reads an XML document into a map of its root's children, in document order, as PHP's
/// `Transformer::toArray`: a leaf is its text (CDATA unwrapped, entities resolved), an element
/// with children is an object, a repeated name is a list. The root's own name is not checked
/// (`<xml>` for the platform).
///
/// Refused with [`Error::Decode`]: a DTD, an unknown entity, mismatched or unclosed tags, a
/// second root or text after the root (fragment injection), nesting deeper than
/// [`MAX_DEPTH`], invalid UTF-8, an empty document.
///
/// ```
/// let m = wechatpay_chain::transformer::to_array(
///     b"<xml><return_code><![CDATA[SUCCESS]]></return_code><a>1 &lt; 2</a></xml>").unwrap();
/// assert_eq!(m["return_code"], "SUCCESS");
/// assert_eq!(m["a"], "1 < 2");
/// assert!(wechatpay_chain::transformer::to_array(
///     b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><a>&e;</a></xml>").is_err());
/// ```
pub fn to_array(xml: &[u8]) -> Result<Map<String, Value>, Error> {
    let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    let mut reader = Reader::from_reader(xml);
    {
        let cfg = reader.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.allow_unmatched_ends = false;
    }
    let mut buf = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Map<String, Value>> = None;
    let mut seen_root = false;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| bad_from(format!("at byte {}", reader.error_position()), e))?;
        match event {
            Event::Start(e) => {
                if stack.is_empty() && seen_root {
                    return Err(bad("a second root element follows the first"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(bad(format!("elements nest deeper than {MAX_DEPTH}")));
                }
                seen_root = true;
                stack.push(Open::new(name_of(e.name().as_ref())?));
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(bad("an end tag closes nothing"));
                };
                match stack.last_mut() {
                    Some(parent) => {
                        let name = done.name.clone();
                        parent.add_child(name, done.into_value());
                    }
                    None => {
                        root = Some(match done.into_value() {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        });
                    }
                }
            }
            // Text comes as it is written (no end-of-line normalization), its references apart.
            Event::Text(t) => {
                let s = t.decode().map_err(|e| bad_from("text is not UTF-8", e))?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(bad("text outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let Some(open) = stack.last_mut() else {
                    return Err(bad("text outside the root element"));
                };
                let c = r
                    .resolve_char_ref()
                    .map_err(|e| bad_from("a character reference names no character", e))?;
                match c {
                    Some(c) => open.text.push(c),
                    None => {
                        let name = r
                            .decode()
                            .map_err(|e| bad_from("an entity name is not UTF-8", e))?;
                        // only the five predefined entities, whatever features quick-xml has
                        let Some(text) = quick_xml::escape::resolve_xml_entity(&name) else {
                            return Err(bad(format!(
                                "the entity &{}; is refused: only the predefined entities are read",
                                crate::error::one_line(&name)
                            )));
                        };
                        open.text.push_str(text);
                    }
                }
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(c.as_ref())
                    .map_err(|_| bad("a CDATA section is not UTF-8"))?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(s),
                    None => return Err(bad("CDATA outside the root element")),
                }
            }
            Event::DocType(_) => {
                return Err(bad(
                    "a DTD (<!DOCTYPE …>) is refused: entities are never declared or expanded",
                ))
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Empty(_) => return Err(bad("unexpected empty element")),
            Event::Eof => break,
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(bad(format!(
            "<{}> is never closed",
            stack[stack.len() - 1].name
        )));
    }
    root.ok_or_else(|| bad("no root element"))
}

/// The root's children as flat text fields, for [`Response::xml_map`](crate::Response::xml_map)
/// and for signing: a leaf is its text, an element with children is written as compact JSON.
/// A name repeated at the top level is refused: a signed APIv2 document never repeats one,
/// and a repeat would make "the" value of a field ambiguous.
pub fn fields(map: &Map<String, Value>) -> Result<Vec<(String, String)>, Error> {
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Array(_) => Err(Error::decode(format!(
                "the APIv2 document repeats the field {}",
                crate::error::one_line(k)
            ))),
            other => Ok((k.clone(), other.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn to_xml_writes_flat_fields_in_order_with_cdata_only_when_needed() {
        let xml = to_xml(&obj(json!({
            "b": "plain 'text' 中文",
            "a": "x<y",
            "c": "say \"hi\"",
            "d": "a&b",
            "e": "",
            "f": null,
            "g": 100,
            "h": true,
        })))
        .unwrap();
        assert_eq!(
            xml,
            "<xml><b>plain 'text' 中文</b><a><![CDATA[x<y]]></a><c><![CDATA[say \"hi\"]]></c>\
             <d><![CDATA[a&b]]></d><e></e><f></f><g>100</g><h>true</h></xml>"
        );
    }

    #[test]
    fn to_xml_nests_objects_and_lists_with_item() {
        let xml = to_xml(&obj(json!({
            "detail": [{"goods": "手机", "url": "https://x/?a=1&b=2"}, {"goods": "壳"}],
            "1bad": "v",
            "with space": {"k": "v"},
        })))
        .unwrap();
        assert_eq!(
            xml,
            "<xml><detail><item><goods>手机</goods><url><![CDATA[https://x/?a=1&b=2]]></url></item>\
             <item><goods>壳</goods></item></detail><item>v</item><item><k>v</k></item></xml>"
        );
    }

    #[test]
    fn to_xml_splits_cdata_terminator_and_refuses_control_chars() {
        let xml = to_xml(&obj(json!({"a": "x]]>y<"}))).unwrap();
        assert_eq!(xml, "<xml><a><![CDATA[x]]]]><![CDATA[>y<]]></a></xml>");
        assert_eq!(to_array(xml.as_bytes()).unwrap()["a"], "x]]>y<");
        assert!(matches!(
            to_xml(&obj(json!({"a": "bell\u{7}"}))),
            Err(Error::InvalidArgument(_))
        ));
        let cr = to_xml(&obj(json!({"a": "1\r\n2"}))).unwrap();
        assert_eq!(to_array(cr.as_bytes()).unwrap()["a"], "1\r\n2");
    }

    #[test]
    fn round_trip() {
        let data = obj(json!({
            "return_code": "SUCCESS",
            "msg": "<b>&amp;\"'",
            "empty": "",
            "nested": {"x": "1", "y": {"z": "2"}},
            "list": ["a", "b"],
        }));
        let back = to_array(to_xml(&data).unwrap().as_bytes()).unwrap();
        assert_eq!(back["return_code"], "SUCCESS");
        assert_eq!(back["msg"], "<b>&amp;\"'");
        assert_eq!(back["empty"], "");
        assert_eq!(back["nested"], json!({"x": "1", "y": {"z": "2"}}));
        assert_eq!(back["list"], json!({"item": ["a", "b"]}));
        let keys: Vec<&String> = back.keys().collect();
        assert_eq!(keys, ["return_code", "msg", "empty", "nested", "list"]);
    }

    #[test]
    fn to_array_reads_the_platform_shapes() {
        let m = to_array(
            "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n  <a><![CDATA[x]]></a>\n  <b>1 &lt; 2 &#20013;</b>\n  <c/>\n  <!-- note -->\n  <d attr=\"1\">  padded  </d>\n</xml>\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m["a"], "x");
        assert_eq!(m["b"], "1 < 2 中");
        assert_eq!(m["c"], "");
        assert_eq!(m["d"], "  padded  ");
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn fields_flatten_and_refuse_top_level_repeats() {
        let m = to_array(b"<xml><a>1</a><n><x>2</x></n></xml>").unwrap();
        assert_eq!(
            fields(&m).unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("n".into(), "{\"x\":\"2\"}".into())
            ]
        );
        let m = to_array(b"<xml><a>1</a><a>2</a></xml>").unwrap();
        assert_eq!(m["a"], json!(["1", "2"]));
        assert!(matches!(fields(&m), Err(Error::Decode { .. })));
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/v2/", $name)).as_slice()
        };
    }

    /// The refusal with its cause (the XML reader's words), on one line.
    fn refused(xml: &[u8]) -> String {
        match to_array(xml) {
            Err(e @ Error::Decode { .. }) => e.chain_text(),
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    #[test]
    fn hostile_documents_are_refused_cleanly() {
        for (name, xml, why) in [
            ("xxe", fixture!("xxe_injection.xml"), "DTD"),
            (
                "parameter entity",
                fixture!("xxe_parameter_entity.xml"),
                "DTD",
            ),
            ("billion laughs", fixture!("billion_laughs.xml"), "DTD"),
            (
                "undeclared entity",
                fixture!("undeclared_entity.xml"),
                "entit",
            ),
            ("bad entity", fixture!("bad_entity.xml"), "titles"),
            (
                "fragment",
                fixture!("fragment_injection.xml"),
                "second root",
            ),
            (
                "trailing junk",
                fixture!("trailing_junk.xml"),
                "outside the root",
            ),
            ("html 404", fixture!("html_404.html"), "DTD"),
            ("unclosed", fixture!("unclosed.xml"), "never closed"),
        ] {
            let m = refused(xml);
            assert!(m.contains(why), "{name}: {m}");
            assert!(!m.contains("root:x:0:0"), "{name} read a file: {m}");
        }
        assert!(refused(b"").contains("no root"));
        assert!(refused(b"   \n").contains("no root"));
        assert!(refused(b"<xml><a>\xff\xfe</a></xml>").len() > 10);
        assert!(refused(b"<xml><a>1</b></xml>").len() > 10);
        assert!(refused(b"</xml>").len() > 10);
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(100), "</a>".repeat(100));
        assert!(refused(deep.as_bytes()).contains("deeper"));
        // a deep document is refused before its depth costs anything
        let very_deep = "<a>".repeat(1_000_000);
        assert!(refused(very_deep.as_bytes()).contains("deeper"));
    }

    #[test]
    fn well_formed_foreign_documents_give_harmless_maps() {
        // The PHP fixture: repeated elements become a list, nothing is merged or dropped.
        let m = to_array(fixture!("batchjob.xml")).unwrap();
        let payments = m["payment"].as_array().unwrap();
        assert_eq!(payments.len(), 2);
        assert_eq!(payments[0]["account"], "5678-attacker");
        assert_eq!(payments[1]["comment"], "Hacked");
        assert!(fields(&m).is_err());
        // A well-formed HTML page: a map with no return_code.
        let m = to_array(fixture!("html_404_plain.html")).unwrap();
        assert_eq!(m["head"]["title"], "404 Not Found");
        assert!(!m.contains_key("return_code"));
    }

    #[test]
    fn references_resolve_to_their_text_and_nothing_else() {
        // character references and the five predefined entities, each once (no double unescape)
        let m = to_array(b"<xml><a>&#20013;&#x4e2d; &lt;&gt;&amp;&apos;&quot; &amp;lt;</a></xml>")
            .unwrap();
        assert_eq!(m["a"], "中中 <>&'\" &lt;");
        // text is kept as written, a raw CR too
        assert_eq!(
            to_array(b"<xml><a>1\r\n2</a></xml>").unwrap()["a"],
            "1\r\n2"
        );
        for (xml, why) in [
            (&b"<xml><a>&xxe;</a></xml>"[..], "&xxe; is refused"),
            (b"<xml><a>&;</a></xml>", "predefined entities"),
            (b"<xml><a>&#0;</a></xml>", "character reference"),
            (b"<xml><a>&#xD800;</a></xml>", "character reference"),
            (b"<xml><a>&#x;</a></xml>", "character reference"),
            (b"<xml><a>a & b</a></xml>", "not closed"),
            (b"<xml></xml>&amp;", "outside the root"),
        ] {
            let m = refused(xml);
            assert!(m.contains(why), "{}: {m}", String::from_utf8_lossy(xml));
        }
    }

    #[test]
    fn names() {
        for ok in ["xml", "_a", "a.b-c:d_1", "中文"] {
            assert!(is_element_name_valid(ok), "{ok}");
        }
        for bad in ["", "1a", "a b", "-a", "a/b", "a<"] {
            assert!(!is_element_name_valid(bad), "{bad}");
        }
    }
}
