//! Sequences, mappings and enums as serde sees them, with the recovery that lets one file
//! report every error: a struct field whose value fails is recorded and retried as null (an
//! `Option` becomes `None`, and the struct goes on); when that fails too, the struct is read
//! again with the field hidden, so the fields after it are checked as well; a failed element of
//! a sequence or entry of a map is recorded and skipped.

use std::marker::PhantomData;

use serde::de::{
    self, Deserialize, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

use super::de::{key_text, De};
use super::error::{DeError, Problem, Sink};
use super::path::Path;
use super::tree::Node;

/// Reads a `T` at `node`, recording its errors. A struct inside that gave up on a field is
/// read again with that field hidden, until no new field is hidden; `Err(Reported)` then.
pub(super) fn read<'de, T: Deserialize<'de>>(
    node: &Node,
    path: &Path,
    sink: &Sink,
) -> Result<T, DeError> {
    loop {
        let hidden = sink.hidden_count();
        match T::deserialize(De::new(node, path, sink)) {
            Ok(v) => return Ok(v),
            Err(e) => sink.record(e, node, path),
        }
        if sink.hidden_count() == hidden {
            return Err(DeError::Reported);
        }
    }
}

/// The elements of a sequence.
pub(super) struct Items<'a> {
    de: De<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    total: usize,
    /// Record a failed element and give the next one (`Vec`), or stop (tuples).
    skip: bool,
}

impl<'a> Items<'a> {
    pub(super) fn new(de: De<'a>, items: &'a [Node], skip: bool) -> Self {
        Items {
            de,
            items: items.iter().enumerate(),
            total: items.len(),
            skip,
        }
    }

    /// An error when the visitor left elements unread.
    pub(super) fn end(&self) -> Result<(), DeError> {
        if self.items.len() == 0 {
            Ok(())
        } else {
            Err(de::Error::invalid_length(self.total, &"fewer elements"))
        }
    }
}

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, item)) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Index(self.de.path, i);
        seed.deserialize(De::new(item, &path, self.de.sink))
            .map(Some)
    }

    fn next_element<T: Deserialize<'de>>(&mut self) -> Result<Option<T>, DeError> {
        if !self.skip {
            return self.next_element_seed(PhantomData);
        }
        for (i, item) in self.items.by_ref() {
            let path = Path::Index(self.de.path, i);
            if let Ok(value) = read(item, &path, self.de.sink) {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of a mapping: a struct's known fields, or a map's entries.
pub(super) struct Entries<'a> {
    de: De<'a>,
    entries: std::vec::IntoIter<&'a (Node, Node)>,
    /// The entry whose key was given, waiting for its value to be asked for.
    pending: Option<&'a (Node, Node)>,
    /// A struct's fields (retried as null when they fail) rather than a map's entries.
    fields: bool,
    /// Fields hidden because their value cannot be read.
    hidden: Vec<&'a str>,
}

impl<'a> Entries<'a> {
    pub(super) fn map(de: De<'a>, entries: &'a [(Node, Node)]) -> Self {
        Entries::new(de, entries.iter().collect(), false, Vec::new())
    }

    pub(super) fn fields(de: De<'a>, known: Vec<&'a (Node, Node)>, hidden: Vec<&'a str>) -> Self {
        Entries::new(de, known, true, hidden)
    }

    fn new(de: De<'a>, entries: Vec<&'a (Node, Node)>, fields: bool, hidden: Vec<&'a str>) -> Self {
        Entries {
            de,
            entries: entries.into_iter(),
            pending: None,
            fields,
            hidden,
        }
    }

    fn take(&mut self) -> Result<&'a (Node, Node), DeError> {
        self.pending
            .take()
            .ok_or_else(|| de::Error::custom("a value was asked for before its key"))
    }

    /// A "missing field" for a field whose value already failed says nothing new.
    pub(super) fn settle<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        match result {
            Err(DeError::Unlocated(Problem::MissingField(f))) if self.hidden.contains(&f) => {
                Err(DeError::Reported)
            }
            other => other,
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(entry);
        seed.deserialize(De::new(&entry.0, self.de.path, self.de.sink))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = self.take()?;
        let path = Path::Key(self.de.path, key_text(key));
        seed.deserialize(De::new(value, &path, self.de.sink))
    }

    fn next_value<V: Deserialize<'de>>(&mut self) -> Result<V, DeError> {
        let (key, value) = self.take()?;
        let path = Path::Key(self.de.path, key_text(key));
        let sink = self.de.sink;
        if let Ok(v) = read(value, &path, sink) {
            return Ok(v);
        }
        let null = Node::null(value.mark);
        sink.muted(|| V::deserialize(De::new(&null, &path, sink)))
            .map_err(|_| {
                if self.fields {
                    sink.hide(key);
                }
                DeError::Reported
            })
    }

    fn next_entry<K: Deserialize<'de>, V: Deserialize<'de>>(
        &mut self,
    ) -> Result<Option<(K, V)>, DeError> {
        if self.fields {
            return match self.next_key()? {
                Some(k) => Ok(Some((k, self.next_value()?))),
                None => Ok(None),
            };
        }
        let sink = self.de.sink;
        for (key, value) in self.entries.by_ref() {
            let Ok(k) = read(key, self.de.path, sink) else {
                continue;
            };
            let path = Path::Key(self.de.path, key_text(key));
            if let Ok(v) = read(value, &path, sink) {
                return Ok(Some((k, v)));
            }
        }
        Ok(None)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum: a scalar names a unit variant; `{Variant: value}` names a variant and its value.
pub(super) struct Variant<'a> {
    de: De<'a>,
    key: &'a Node,
    value: Option<&'a Node>,
}

impl<'a> Variant<'a> {
    pub(super) fn new(de: De<'a>, key: &'a Node, value: Option<&'a Node>) -> Self {
        Variant { de, key, value }
    }

    /// The variant's value, or "invalid type: unit variant, expected `what`".
    fn value(&self, what: &'static str) -> Result<&'a Node, DeError> {
        self.value
            .ok_or_else(|| de::Error::invalid_type(Unexpected::UnitVariant, &what))
    }
}

impl<'de, 'a> EnumAccess<'de> for Variant<'a> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), DeError> {
        let v = seed.deserialize(De::new(self.key, self.de.path, self.de.sink))?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        let Some(value) = self.value else {
            return Ok(());
        };
        let path = Path::Key(self.de.path, key_text(self.key));
        let de = De::new(value, &path, self.de.sink);
        if de.is_null() {
            Ok(())
        } else {
            de.located(Err(de::Error::custom("this variant takes no value")))
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let value = self.value("newtype variant")?;
        let path = Path::Key(self.de.path, key_text(self.key));
        seed.deserialize(De::new(value, &path, self.de.sink))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, DeError> {
        let value = self.value("tuple variant")?;
        let path = Path::Key(self.de.path, key_text(self.key));
        de::Deserializer::deserialize_tuple(De::new(value, &path, self.de.sink), len, v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let value = self.value("struct variant")?;
        let path = Path::Key(self.de.path, key_text(self.key));
        de::Deserializer::deserialize_struct(De::new(value, &path, self.de.sink), "", fields, v)
    }
}
