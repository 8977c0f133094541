//! The keys and type names the library's own configuration types accept,
//! read from their `Deserialize` implementations, so the CLI's key lists
//! come from one place and cannot drift from the library.
//!
//! A struct's derived `Deserialize` hands its field names to
//! `Deserializer::deserialize_struct`; an internally tagged enum reports
//! its variant names through `Error::unknown_variant` when given a tag it
//! does not know. [`fields`] and [`variants`] ask with a probe that
//! records those lists and deserializes nothing.
//!
//! The CLI adds what the library cannot know: the expected TOML type of
//! each key (for `expected a string, found an integer` at the value's
//! line:column). A key the library accepts and the CLI has no type for is
//! still accepted (checked by the library's own deserializer); the test
//! `every_library_key_has_a_type_in_the_cli` fails when that happens.

use std::fmt;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, Visitor, value::MapDeserializer};

use super::walker::Kind;

/// The error of the probe: the names it found, if any.
#[derive(Debug)]
struct Probe(Option<&'static [&'static str]>);

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for Probe {}

impl de::Error for Probe {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Self(None)
    }
    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Self(Some(expected))
    }
    fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
        Self(Some(expected))
    }
}

/// A deserializer that answers every request with the field list it was
/// given (structs), or nothing.
struct Fields;

impl<'de> Deserializer<'de> for Fields {
    type Error = Probe;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probe> {
        Err(Probe(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probe> {
        Err(Probe(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The keys a struct's derived `Deserialize` accepts (after renames).
pub(super) fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(Fields) {
        Err(Probe(Some(f))) => f,
        _ => &[],
    }
}

/// The variant names of an enum tagged by `tag` (`#[serde(tag = "...")]`),
/// as written in the file. Only the variants compiled into this build.
pub(super) fn variants<T: DeserializeOwned>(tag: &str) -> &'static [&'static str] {
    let probe = MapDeserializer::<_, Probe>::new(std::iter::once((tag, "\u{0}")));
    match T::deserialize(probe) {
        Err(Probe(Some(v))) => v,
        _ => &[],
    }
}

/// The keys of a table: every key of the library's `lib` list (typed by
/// `kinds`, or [`Kind::Any`] when the CLI does not type it) except those in
/// `skip`, then the CLI's own `extra` keys.
pub(super) fn allowed(
    lib: &[&'static str],
    kinds: &[(&'static str, Kind)],
    skip: &[&str],
    extra: &[(&'static str, Kind)],
) -> Vec<(&'static str, Kind)> {
    lib.iter()
        .filter(|k| !skip.contains(k))
        .map(|k| (*k, kinds.iter().find(|(n, _)| n == k).map_or(Kind::Any, |(_, kind)| *kind)))
        .chain(extra.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_reads_struct_fields_and_enum_variants() {
        let g = fields::<rekey::GeneratorConfig>();
        assert!(g.contains(&"type") && g.contains(&"length") && !g.contains(&"kind"), "{g:?}");
        let v = variants::<rekey_integrations::AuditSinkConfig>("type");
        assert_eq!(v, ["tracing", "json_lines", "webhook"]);
    }
}
