//! MySQL 8 partial JSON updates (`binlog_row_value_options=PARTIAL_JSON`): the after image of
//! a JSON column holds a list of edits (replace, insert, remove at a path) instead of the whole
//! document. We apply them to the before image so the event always carries the full document;
//! dropping them (as Debezium and Maxwell do) would lose the change.

use rowferry_shared::event::Value;
use serde_json::Value as Json;

use super::row_image::{Cursor, jsonb_to_text, push_json_string};

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Applies a partial-update diff list to the before image of the column.
pub fn apply(before: Option<&Value>, diff: &[u8]) -> Result<Value, String> {
    let before = match before {
        Some(Value::Json(text)) => text.as_str(),
        Some(Value::Null) | None => return Err("partial JSON update of a NULL document".into()),
        Some(_) => return Err("partial JSON update of a non-JSON value".into()),
    };
    let mut doc: Json =
        serde_json::from_str(before).map_err(|e| format!("before image is not JSON: {e}"))?;
    let mut cursor = Cursor::new(diff);
    while !cursor.is_empty() {
        let operation = cursor.take(1).map_err(|e| e.to_string())?[0];
        let path_len = cursor.lenenc().map_err(|e| e.to_string())?;
        let path = cursor
            .take(usize::try_from(path_len).map_err(|_| "path length overflows")?)
            .map_err(|e| e.to_string())?;
        let path = std::str::from_utf8(path).map_err(|_| "path is not UTF-8")?;
        let steps = parse_path(path)?;
        let value = if operation == 2 {
            None
        } else {
            let len = cursor.lenenc().map_err(|e| e.to_string())?;
            let bytes = cursor
                .take(usize::try_from(len).map_err(|_| "value length overflows")?)
                .map_err(|e| e.to_string())?;
            let text = jsonb_to_text(bytes).map_err(|e| e.to_string())?;
            Some(serde_json::from_str(&text).map_err(|e| format!("diff value: {e}"))?)
        };
        match (operation, value) {
            (0, Some(value)) => replace(&mut doc, &steps, value, path)?,
            (1, Some(value)) => insert(&mut doc, &steps, value, path)?,
            (2, None) => remove(&mut doc, &steps, path)?,
            (other, _) => return Err(format!("unknown partial JSON operation {other}")),
        }
    }
    let mut out = String::new();
    write_mysql_order(&doc, &mut out);
    Ok(Value::Json(out))
}

/// Parses `$`, `.key`, `."quoted key"` and `[n]` steps.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("JSON path {path:?} does not start with $"))?;
    let mut steps = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut key = String::new();
                if chars.peek() == Some(&'"') {
                    chars.next();
                    loop {
                        match chars.next() {
                            Some('\\') => key.extend(chars.next()),
                            Some('"') => break,
                            Some(c) => key.push(c),
                            None => return Err(format!("unterminated key in JSON path {path:?}")),
                        }
                    }
                } else {
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                }
                steps.push(Step::Key(key));
            }
            '[' => {
                let mut digits = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    digits.push(c);
                }
                let index = digits
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad array index in JSON path {path:?}"))?;
                steps.push(Step::Index(index));
            }
            c if c.is_whitespace() => {}
            other => return Err(format!("unexpected {other:?} in JSON path {path:?}")),
        }
    }
    Ok(steps)
}

fn navigate<'a>(doc: &'a mut Json, steps: &[Step], path: &str) -> Result<&'a mut Json, String> {
    let mut node = doc;
    for step in steps {
        node = match (step, node) {
            (Step::Key(key), Json::Object(map)) => map.get_mut(key),
            (Step::Index(i), Json::Array(items)) => items.get_mut(*i),
            _ => None,
        }
        .ok_or_else(|| format!("JSON path {path:?} does not exist in the before image"))?;
    }
    Ok(node)
}

fn replace(doc: &mut Json, steps: &[Step], value: Json, path: &str) -> Result<(), String> {
    *navigate(doc, steps, path)? = value;
    Ok(())
}

fn insert(doc: &mut Json, steps: &[Step], value: Json, path: &str) -> Result<(), String> {
    let (last, parent) = steps
        .split_last()
        .ok_or_else(|| format!("cannot insert at the root ({path:?})"))?;
    match (last, navigate(doc, parent, path)?) {
        (Step::Key(key), Json::Object(map)) => {
            map.insert(key.clone(), value);
        }
        (Step::Index(i), Json::Array(items)) => {
            let at = (*i).min(items.len());
            items.insert(at, value);
        }
        _ => return Err(format!("JSON path {path:?} does not fit the before image")),
    }
    Ok(())
}

fn remove(doc: &mut Json, steps: &[Step], path: &str) -> Result<(), String> {
    let (last, parent) = steps
        .split_last()
        .ok_or_else(|| format!("cannot remove the root ({path:?})"))?;
    match (last, navigate(doc, parent, path)?) {
        (Step::Key(key), Json::Object(map)) => {
            map.remove(key);
        }
        (Step::Index(i), Json::Array(items)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {
            return Err(format!(
                "JSON path {path:?} does not exist in the before image"
            ));
        }
    }
    Ok(())
}

/// Compact JSON with object keys in MySQL's storage order (shorter keys first, then bytewise),
/// the order the full after image would have had.
fn write_mysql_order(value: &Json, out: &mut String) {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(b.0)));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push(':');
                write_mysql_order(value, out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_mysql_order(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path(r#"$.a."b c"[2]"#),
            Ok(vec![
                Step::Key("a".into()),
                Step::Key("b c".into()),
                Step::Index(2)
            ])
        );
        assert!(parse_path("a.b").is_err());
    }

    #[test]
    fn keys_come_out_in_mysql_storage_order() {
        let doc: Json = serde_json::from_str(r#"{"bb":1,"a":[1,{"zz":0,"y":true}],"c":null}"#)
            .unwrap_or(Json::Null);
        let mut out = String::new();
        write_mysql_order(&doc, &mut out);
        assert_eq!(out, r#"{"a":[1,{"y":true,"zz":0}],"c":null,"bb":1}"#);
    }
}
