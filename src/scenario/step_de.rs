//! Reading a step and `defaults:` from YAML: their common fields, plus one spec per kind key,
//! each read by the kind named in the registry. Also their JSON Schema, built from the same
//! registry, so that a new kind needs no change here.

use std::fmt;
use std::sync::OnceLock;

use indexmap::IndexMap;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::model::{Capture, Defaults, Retry, Step};
use crate::steps::{StepKind, KINDS};
use crate::units::Dur;

const STEP_COMMON: &[&str] = &["capture", "assert", "timeout", "retry"];
const DEFAULTS_COMMON: &[&str] = &["timeout", "retry"];

/// A step's keys, in the order messages list them: `name`, the kinds, the common fields.
fn step_fields() -> &'static [&'static str] {
    static FIELDS: OnceLock<Vec<&'static str>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut f = vec!["name"];
        f.extend(KINDS);
        f.extend(STEP_COMMON);
        f
    })
}

/// `defaults:` keys: `timeout`, `retry`, and the kinds that have defaults.
fn defaults_fields() -> &'static [&'static str] {
    static FIELDS: OnceLock<Vec<&'static str>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut f = DEFAULTS_COMMON.to_vec();
        f.extend(KINDS.iter().filter(|k| StepKind::has_defaults(k)));
        f
    })
}

/// Sets a field once; a second value for it is an error, as with derived impls.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a step: a map with `name` and one kind key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let mut name = None;
                let (mut capture, mut assert, mut timeout, mut retry) = (None, None, None, None);
                let mut kinds = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => once(&mut name, map.next_value::<String>()?, "name")?,
                        "capture" => once(
                            &mut capture,
                            map.next_value::<IndexMap<String, Capture>>()?,
                            "capture",
                        )?,
                        "assert" => once(&mut assert, map.next_value::<Vec<String>>()?, "assert")?,
                        "timeout" => {
                            once(&mut timeout, map.next_value::<Option<Dur>>()?, "timeout")?
                        }
                        "retry" => once(&mut retry, map.next_value::<Option<Retry>>()?, "retry")?,
                        other => match StepKind::read_value(other, &mut map)? {
                            Some(kind) => kinds.push(kind),
                            None => return Err(de::Error::unknown_field(other, step_fields())),
                        },
                    }
                }
                Ok(Step {
                    name: name.ok_or_else(|| de::Error::missing_field("name"))?,
                    kinds,
                    capture: capture.unwrap_or_default(),
                    assert: assert.unwrap_or_default(),
                    timeout: timeout.flatten(),
                    retry: retry.flatten(),
                })
            }
        }
        d.deserialize_struct("Step", step_fields(), V)
    }
}

impl<'de> Deserialize<'de> for Defaults {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Defaults;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of defaults: `timeout`, `retry` and kind settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Defaults, A::Error> {
                let (mut timeout, mut retry) = (None, None);
                let mut kinds: Vec<StepKind> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "timeout" => {
                            once(&mut timeout, map.next_value::<Option<Dur>>()?, "timeout")?
                        }
                        "retry" => once(&mut retry, map.next_value::<Option<Retry>>()?, "retry")?,
                        other if StepKind::has_defaults(other) => {
                            if let Some(kind) = StepKind::read_value(other, &mut map)? {
                                kinds.push(kind);
                            }
                        }
                        other => return Err(de::Error::unknown_field(other, defaults_fields())),
                    }
                }
                Ok(Defaults {
                    timeout: timeout.flatten(),
                    retry: retry.flatten(),
                    kinds,
                })
            }
        }
        d.deserialize_struct("Defaults", defaults_fields(), V)
    }
}

impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut properties = serde_json::Map::new();
        properties.insert(
            "name".into(),
            json_schema!({
                "description": "Unique within the scenario; the `step` label.",
                "type": "string"
            })
            .into(),
        );
        let kinds = crate::steps::registry::schemas(generator);
        for (key, about, _, schema) in &kinds {
            properties.insert((*key).into(), described(schema.clone(), about).into());
        }
        properties.insert(
            "capture".into(),
            described(
                generator.subschema_for::<IndexMap<String, Capture>>(),
                "Values taken from the result for later steps: `name: <query>`.",
            )
            .into(),
        );
        properties.insert(
            "assert".into(),
            described(
                generator.subschema_for::<Vec<String>>(),
                "Checks on the result: `<query> [not] <predicate> <value>`.",
            )
            .into(),
        );
        properties.insert(
            "timeout".into(),
            described(
                generator.subschema_for::<Dur>(),
                "Time limit of one attempt.",
            )
            .into(),
        );
        properties.insert(
            "retry".into(),
            described(
                generator.subschema_for::<Retry>(),
                "Retry policy of this step.",
            )
            .into(),
        );
        let one_kind: Vec<serde_json::Value> = kinds
            .iter()
            .map(|(key, ..)| serde_json::json!({"required": [key]}))
            .collect();
        json_schema!({
            "description": "One step: a name, exactly one kind key, and the common fields.",
            "type": "object",
            "properties": properties,
            "required": ["name"],
            "additionalProperties": false,
            "oneOf": one_kind
        })
    }
}

impl JsonSchema for Defaults {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Defaults".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut properties = serde_json::Map::new();
        properties.insert(
            "timeout".into(),
            described(
                generator.subschema_for::<Dur>(),
                "Time limit of one attempt of a step.",
            )
            .into(),
        );
        properties.insert(
            "retry".into(),
            described(
                generator.subschema_for::<Retry>(),
                "Retry policy of every step.",
            )
            .into(),
        );
        for (key, about, has_defaults, schema) in crate::steps::registry::schemas(generator) {
            if has_defaults {
                let text = format!("Defaults of {key} steps, merged under each one's own: {about}");
                properties.insert(key.into(), described(schema, &text).into());
            }
        }
        json_schema!({
            "description": "Settings every step inherits unless it sets its own.",
            "type": "object",
            "properties": properties,
            "additionalProperties": false
        })
    }
}

/// A `$ref` schema with a description beside it.
fn described(schema: Schema, description: &str) -> Schema {
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("description".into(), description.into());
    }
    Schema::try_from(value).unwrap_or_default()
}
