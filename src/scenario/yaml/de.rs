//! A serde `Deserializer` over a node: plain scalars typed by the YAML 1.2 core schema (but a
//! string field takes any scalar as written), quoted scalars always strings, `!!str`-style core
//! tags honoured and other tags rejected; every error placed at its node.

use serde::de::{self, Deserializer, Expected, Unexpected, Visitor};

use super::access::{Entries, Items, Variant};
use super::error::{locate, DeError, Problem, Sink, UnknownField, YamlError};
use super::path::Path;
use super::scalar::{self, Resolved};
use super::tree::{Node, Style, Value};

/// What a node holds, its tag applied.
pub(super) enum Shape<'a> {
    Scalar(Resolved<'a>),
    Seq(&'a [Node]),
    Map(&'a [(Node, Node)]),
}

/// A node being deserialized, its path, and where errors go.
#[derive(Clone, Copy)]
pub(super) struct De<'a> {
    pub(super) node: &'a Node,
    pub(super) path: &'a Path<'a>,
    pub(super) sink: &'a Sink,
}

/// The text of a key for paths (`?` for a key that is not a scalar).
pub(super) fn key_text(key: &Node) -> &str {
    key.scalar().unwrap_or("?")
}

fn unsupported_tag(tag: &str) -> DeError {
    DeError::Unlocated(Problem::Custom(format!(
        "the YAML tag `{tag}` is not supported: write the value without it \
         (understood: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)"
    )))
}

/// A scalar with a core tag.
fn tagged<'a>(tag: &str, text: &'a str) -> Result<Resolved<'a>, DeError> {
    let invalid = |what: &str| de::Error::invalid_value(Unexpected::Str(text), &what);
    match tag {
        "!!str" => Ok(Resolved::Str(text)),
        "!!null" if scalar::is_null(text) => Ok(Resolved::Null),
        "!!null" => Err(invalid("null")),
        "!!bool" => scalar::parse_bool(text)
            .map(Resolved::Bool)
            .ok_or_else(|| invalid("a boolean")),
        "!!int" => match scalar::resolve(text) {
            r @ (Resolved::U64(_) | Resolved::I64(_) | Resolved::U128(_) | Resolved::I128(_)) => {
                Ok(r)
            }
            _ => Err(invalid("an integer")),
        },
        "!!float" => match scalar::resolve(text) {
            Resolved::F64(f) => Ok(Resolved::F64(f)),
            Resolved::U64(n) => Ok(Resolved::F64(n as f64)),
            Resolved::I64(n) => Ok(Resolved::F64(n as f64)),
            _ => Err(invalid("a float")),
        },
        other => Err(unsupported_tag(other)),
    }
}

impl<'a> De<'a> {
    pub(super) fn new(node: &'a Node, path: &'a Path<'a>, sink: &'a Sink) -> Self {
        De { node, path, sink }
    }

    /// Gives an error raised by a visitor the place of this node.
    pub(super) fn located<T>(self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| match e {
            DeError::Unlocated(p) => DeError::Located(Box::new(locate(p, self.node, self.path))),
            other => other,
        })
    }

    /// The node's content, its tag checked and applied.
    pub(super) fn shape(self) -> Result<Shape<'a>, DeError> {
        let tag = self.node.tag.as_deref();
        match (&self.node.value, tag) {
            (Value::Scalar { text, .. }, Some(t)) => tagged(t, text).map(Shape::Scalar),
            (Value::Scalar { text, style, .. }, None) if *style == Style::Plain => {
                Ok(Shape::Scalar(scalar::resolve(text)))
            }
            (Value::Scalar { text, .. }, None) => Ok(Shape::Scalar(Resolved::Str(text))),
            (Value::Seq(items), None | Some("!!seq")) => Ok(Shape::Seq(items)),
            (Value::Map(entries), None | Some("!!map")) => Ok(Shape::Map(entries)),
            (_, Some(t)) => Err(unsupported_tag(t)),
        }
    }

    /// Null: an empty plain scalar, `~`, `null`, or `!!null`.
    pub(super) fn is_null(self) -> bool {
        match (&self.node.value, self.node.tag.as_deref()) {
            (Value::Scalar { text, style, .. }, None) => {
                *style == Style::Plain && scalar::is_null(text)
            }
            (Value::Scalar { text, .. }, Some("!!null")) => scalar::is_null(text),
            _ => false,
        }
    }

    /// "invalid type: <what the node is>, expected <exp>".
    fn invalid_type<T>(self, exp: &dyn Expected) -> Result<T, DeError> {
        let other;
        let unexpected = match self.shape()? {
            Shape::Seq(_) => Unexpected::Seq,
            Shape::Map(_) => Unexpected::Map,
            Shape::Scalar(r) => match r {
                Resolved::Null => Unexpected::Unit,
                Resolved::Bool(b) => Unexpected::Bool(b),
                Resolved::U64(n) => Unexpected::Unsigned(n),
                Resolved::I64(n) => Unexpected::Signed(n),
                Resolved::U128(n) => {
                    other = format!("integer `{n}` as u128");
                    Unexpected::Other(&other)
                }
                Resolved::I128(n) => {
                    other = format!("integer `{n}` as i128");
                    Unexpected::Other(&other)
                }
                Resolved::F64(f) => Unexpected::Float(f),
                Resolved::Str(s) => Unexpected::Str(s),
            },
        };
        Err(de::Error::invalid_type(unexpected, exp))
    }

    /// The scalar's value, or an "invalid type" error for a collection.
    fn resolved(self, exp: &dyn Expected) -> Result<Resolved<'a>, DeError> {
        match self.shape()? {
            Shape::Scalar(r) => Ok(r),
            _ => self.invalid_type(exp),
        }
    }

    fn any<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.shape()? {
            Shape::Scalar(r) => match r {
                Resolved::Null => v.visit_unit(),
                Resolved::Bool(b) => v.visit_bool(b),
                Resolved::U64(n) => v.visit_u64(n),
                Resolved::I64(n) => v.visit_i64(n),
                Resolved::U128(n) => v.visit_u128(n),
                Resolved::I128(n) => v.visit_i128(n),
                Resolved::F64(f) => v.visit_f64(f),
                Resolved::Str(s) => v.visit_str(s),
            },
            Shape::Seq(items) => self.seq(items, v, true),
            Shape::Map(entries) => v.visit_map(Entries::map(self, entries)),
        }
    }

    /// A sequence; with `skip`, a failed element is recorded and the next one given instead.
    fn seq<'de, V: Visitor<'de>>(
        self,
        items: &'a [Node],
        v: V,
        skip: bool,
    ) -> Result<V::Value, DeError> {
        let mut access = Items::new(self, items, skip);
        let value = v.visit_seq(&mut access)?;
        access.end()?;
        Ok(value)
    }

    fn sequence<'de, V: Visitor<'de>>(self, v: V, skip: bool) -> Result<V::Value, DeError> {
        match self.shape()? {
            Shape::Seq(items) => self.seq(items, v, skip),
            Shape::Scalar(Resolved::Null) => self.seq(&[], v, skip),
            _ => self.invalid_type(&v),
        }
    }

    fn mapping<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.shape()? {
            Shape::Map(entries) => v.visit_map(Entries::map(self, entries)),
            Shape::Scalar(Resolved::Null) => v.visit_map(Entries::map(self, &[])),
            _ => self.invalid_type(&v),
        }
    }

    /// A struct: every key that is not one of `fields` is reported (at the key) and hidden
    /// from the visitor; a field whose value fails is retried as null.
    fn structure<'de, V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let entries = match self.shape()? {
            Shape::Map(entries) => entries,
            Shape::Scalar(Resolved::Null) => &[],
            _ => return self.invalid_type(&v),
        };
        let mut known = Vec::with_capacity(entries.len());
        let mut hidden = Vec::new();
        for entry in entries {
            match entry.0.scalar() {
                Some(k) if fields.contains(&k) && self.sink.is_hidden(&entry.0) => hidden.push(k),
                Some(k) if fields.contains(&k) => known.push(entry),
                _ => self.sink.push(self.unknown_key(&entry.0, fields)),
            }
        }
        let mut access = Entries::fields(self, known, hidden);
        let result = v.visit_map(&mut access);
        access.settle(result)
    }

    fn unknown_key(self, key: &Node, fields: &'static [&'static str]) -> YamlError {
        let problem = match key.scalar() {
            Some(k) => Problem::UnknownField(UnknownField {
                field: k.to_string(),
                expected: fields,
            }),
            None => Problem::Custom("a field name is a string, not a mapping or a sequence".into()),
        };
        locate(problem, key, self.path)
    }

    fn enumeration<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.shape()? {
            Shape::Scalar(_) => v.visit_enum(Variant::new(self, self.node, None)),
            Shape::Map([(key, value)]) => v.visit_enum(Variant::new(self, key, Some(value))),
            _ => self.invalid_type(&v),
        }
    }

    fn string<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar { text, .. } => {
                if let Some(t) = self.node.tag.as_deref() {
                    tagged(t, text)?;
                }
                v.visit_str(text)
            }
            _ => self.invalid_type(&v),
        }
    }

    fn unsigned<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.resolved(&v)? {
            Resolved::U64(n) => v.visit_u64(n),
            _ => self.invalid_type(&v),
        }
    }

    fn signed<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.resolved(&v)? {
            Resolved::I64(n) => v.visit_i64(n),
            Resolved::U64(n) if i64::try_from(n).is_ok() => v.visit_i64(n as i64),
            _ => self.invalid_type(&v),
        }
    }

    fn unsigned128<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.resolved(&v)? {
            Resolved::U64(n) => v.visit_u128(u128::from(n)),
            Resolved::U128(n) => v.visit_u128(n),
            _ => self.invalid_type(&v),
        }
    }

    fn signed128<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.resolved(&v)? {
            Resolved::I64(n) => v.visit_i128(i128::from(n)),
            Resolved::U64(n) => v.visit_i128(i128::from(n)),
            Resolved::I128(n) => v.visit_i128(n),
            Resolved::U128(n) if i128::try_from(n).is_ok() => v.visit_i128(n as i128),
            _ => self.invalid_type(&v),
        }
    }

    fn float<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.resolved(&v)? {
            Resolved::F64(f) => v.visit_f64(f),
            Resolved::U64(n) => v.visit_f64(n as f64),
            Resolved::I64(n) => v.visit_f64(n as f64),
            Resolved::U128(n) => v.visit_f64(n as f64),
            Resolved::I128(n) => v.visit_f64(n as f64),
            _ => self.invalid_type(&v),
        }
    }

    fn boolean<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.resolved(&v)? {
            Resolved::Bool(b) => v.visit_bool(b),
            _ => self.invalid_type(&v),
        }
    }

    fn unit<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.is_null() {
            v.visit_unit()
        } else {
            self.invalid_type(&v)
        }
    }
}

/// Forwards deserializer methods to the `De` method that reads the node, placing its errors.
macro_rules! forward {
    ($($method:ident => $inner:ident,)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
                self.located(self.$inner(v))
            }
        )*
    };
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = DeError;

    forward! {
        deserialize_any => any,
        deserialize_bool => boolean,
        deserialize_i8 => signed,
        deserialize_i16 => signed,
        deserialize_i32 => signed,
        deserialize_i64 => signed,
        deserialize_i128 => signed128,
        deserialize_u8 => unsigned,
        deserialize_u16 => unsigned,
        deserialize_u32 => unsigned,
        deserialize_u64 => unsigned,
        deserialize_u128 => unsigned128,
        deserialize_f32 => float,
        deserialize_f64 => float,
        deserialize_char => string,
        deserialize_str => string,
        deserialize_string => string,
        deserialize_identifier => string,
        deserialize_unit => unit,
        deserialize_map => mapping,
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, DeError> {
        self.located(Err(de::Error::custom("binary data is not supported")))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.located(self.sequence(v, true))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.located(self.sequence(v, false))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.located(self.sequence(v, false))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.located(self.structure(fields, v))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.located(self.enumeration(v))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}
