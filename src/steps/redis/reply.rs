//! Redis replies as JSON (what `reply N` and `steps.NAME.replies.N` read), and which keys a
//! command creates (so the step can delete them afterwards).

use redis::Value;
use serde_json::{json, Value as Json};

/// A reply as JSON: strings for bulk/simple strings (lossy UTF-8), numbers, arrays, objects
/// for maps, `null` for nil.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Int(n) => json!(n),
        Value::BulkString(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::Array(items) | Value::Set(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::SimpleString(s) => Json::String(s.clone()),
        Value::Okay => Json::String("OK".into()),
        Value::Map(pairs) => {
            let mut m = serde_json::Map::new();
            for (k, v) in pairs {
                let key = match to_json(k) {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(key, to_json(v));
            }
            Json::Object(m)
        }
        Value::Attribute { data, .. } => to_json(data),
        Value::Double(d) => json!(d),
        Value::Boolean(b) => Json::Bool(*b),
        Value::VerbatimString { text, .. } => Json::String(text.clone()),
        Value::BigNumber(n) => Json::String(n.to_string()),
        Value::Push { data, .. } => Json::Array(data.iter().map(to_json).collect()),
        Value::ServerError(e) => {
            Json::String(format!("{} {}", e.code(), e.details().unwrap_or_default()))
        }
    }
}

/// Commands that create their first argument as a key when it is missing.
const CREATES_FIRST_KEY: &[&str] = &[
    "SET",
    "SETEX",
    "PSETEX",
    "SETNX",
    "GETSET",
    "APPEND",
    "INCR",
    "INCRBY",
    "INCRBYFLOAT",
    "DECR",
    "DECRBY",
    "SETRANGE",
    "SETBIT",
    "HSET",
    "HSETNX",
    "HMSET",
    "HINCRBY",
    "HINCRBYFLOAT",
    "LPUSH",
    "RPUSH",
    "SADD",
    "ZADD",
    "ZINCRBY",
    "PFADD",
    "XADD",
    "GEOADD",
    "RESTORE",
];

/// Keys `cmd` (upper-case) with arguments `args` may create.
pub fn created_keys<'a>(cmd: &str, args: &'a [String]) -> Vec<&'a str> {
    match cmd {
        // MSET k1 v1 k2 v2 ...
        "MSET" | "MSETNX" => args.iter().step_by(2).map(String::as_str).collect(),
        // COPY source destination, RENAME key newkey, LMOVE source destination ...
        "COPY" | "RENAME" | "RENAMENX" | "LMOVE" | "RPOPLPUSH" | "SMOVE" => {
            args.get(1).map(|k| vec![k.as_str()]).unwrap_or_default()
        }
        c if CREATES_FIRST_KEY.contains(&c) => {
            args.first().map(|k| vec![k.as_str()]).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_json() {
        assert_eq!(to_json(&Value::Okay), json!("OK"));
        assert_eq!(to_json(&Value::Nil), Json::Null);
        assert_eq!(to_json(&Value::BulkString(b"v1".to_vec())), json!("v1"));
        assert_eq!(
            to_json(&Value::Array(vec![
                Value::Int(3),
                Value::BulkString(b"a".to_vec())
            ])),
            json!([3, "a"])
        );
        assert_eq!(
            to_json(&Value::Map(vec![(
                Value::SimpleString("f".into()),
                Value::Int(1)
            )])),
            json!({"f": 1})
        );
    }

    #[test]
    fn knows_which_keys_a_command_creates() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(created_keys("SET", &args(&["k", "v", "EX", "60"])), ["k"]);
        assert_eq!(
            created_keys("MSET", &args(&["a", "1", "b", "2"])),
            ["a", "b"]
        );
        assert_eq!(created_keys("RENAME", &args(&["old", "new"])), ["new"]);
        assert!(created_keys("GET", &args(&["k"])).is_empty());
        assert!(created_keys("DEL", &args(&["k"])).is_empty());
    }
}
