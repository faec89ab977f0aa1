//! YAML read into JSON values within a bound. Aliases expand as they are
//! read, and a few kilobytes of aliases of aliases expand to gigabytes (a
//! "billion laughs"): past [`MAX_VALUES`] values the read stops with an
//! error, before the memory is taken. Keys that are not strings (`200:`)
//! become strings, tags are dropped.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The most values one document may hold once its aliases are expanded:
/// Armor's largest documents hold a few tens of thousands.
pub(super) const MAX_VALUES: u64 = 2_000_000;

/// `text` as JSON's values.
pub(super) fn from_str(text: &str) -> Result<Value, serde_norway::Error> {
    let left = Cell::new(MAX_VALUES);
    Bounded { left: &left }.deserialize(serde_norway::Deserializer::from_str(text))
}

#[derive(Clone, Copy)]
struct Bounded<'a> {
    left: &'a Cell<u64>,
}

impl Bounded<'_> {
    fn spend<E: de::Error>(self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the document expands past {MAX_VALUES} values (aliases of aliases?)"
            ))),
        }
    }

    fn leaf<E: de::Error>(self, value: Value) -> Result<Value, E> {
        self.spend()?;
        Ok(value)
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        self.leaf(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        self.leaf(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        self.leaf(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        self.leaf(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        self.leaf(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        self.leaf(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.leaf(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.leaf(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(Key(self))? {
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    /// A tagged value (`!Ref x`): the value, its tag dropped.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (_, variant) = data.variant::<de::IgnoredAny>()?;
        variant.newtype_variant_seed(self)
    }
}

/// A mapping's key, as a string whatever its YAML type.
struct Key<'a>(Bounded<'a>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        Ok(match self.0.deserialize(deserializer)? {
            Value::String(text) => text,
            other => other.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_reads_as_json_with_keys_as_strings() {
        let value = from_str("a: 1\n200: {x: [true, ~, 1.5]}\nb: &x [1]\nc: *x\n").unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": 1, "200": {"x": [true, null, 1.5]}, "b": [1], "c": [1]})
        );
    }

    /// A list of a thousand, then five levels of ten aliases each: 10^8
    /// values from 2 KB, and too few aliases for the YAML parser's own
    /// limit (a hundred jumps per event). Refused with an error naming the
    /// bound, before the memory is taken; the classic nine by nine the
    /// parser's limit refuses.
    #[test]
    fn a_billion_laughs_is_refused_within_its_bound() {
        let mut text = format!("l0: &l0 [{}]\n", vec!["x"; 1_000].join(", "));
        for level in 1..6 {
            let previous = format!("*l{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{items}]\n"));
        }
        let error = from_str(&text).expect_err("a bomb");
        assert!(error.to_string().contains("expands past"), "{error}");

        let mut classic = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let previous = format!("*l{}", level - 1);
            let items = [previous.as_str(); 9].join(", ");
            classic.push_str(&format!("l{level}: &l{level} [{items}]\n"));
        }
        assert!(from_str(&classic).is_err(), "the classic bomb");
    }
}
