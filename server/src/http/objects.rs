//! [`ObjectsOnly`]: a deserializer that reads a struct only from a JSON object, at every depth.
//!
//! serde's derived structs also accept an array, the fields by position: `[2500]` is a
//! `RolloutSpec` with 25%, `{"channel": "beta", "rollout": [2500]}` a promotion. No client means
//! that, and it skips the names that make a body readable. Wrapping the JSON deserializer, this
//! asks for a map wherever a struct is expected (serde_json then refuses an array with `invalid
//! type: sequence, expected struct RolloutSpec`), and wraps every nested value the same way.
//! Everything else is passed through unchanged; the wrapping is generic, so it costs the
//! check-in nothing measurable.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// A deserializer whose structs (and its nested values' structs) must be maps.
pub struct ObjectsOnly<D>(pub D);

/// The same wrapping, for the visitors, seeds and accessors `D` hands out.
struct Wrap<T>(T);

macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(v))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(v))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(v))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(v))
    }

    /// The point of the wrapper: a struct is read as a map, never as a sequence.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrap(v))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(v))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
        visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str) visit_borrowed_str(&'de str)
        visit_string(String) visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(ObjectsOnly(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(ObjectsOnly(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(ObjectsOnly(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Wrap(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Wrap(seed))?;
        Ok((value, Wrap(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Wrap(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(v))
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], v: V) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(v))
    }
}

#[cfg(test)]
mod tests {
    use halftone_channels::wire::{
        AppSpec, CheckRequest, ExplainRequest, PromoteRequest, PublishRequest, RolloutPatch,
    };
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    fn strict<T: DeserializeOwned>(v: &serde_json::Value) -> Result<T, String> {
        let bytes = serde_json::to_vec(v).unwrap();
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let t = T::deserialize(ObjectsOnly(&mut de)).map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(t)
    }

    #[test]
    fn nested_structs_must_be_objects_and_everything_else_reads_as_before() {
        let e = strict::<PromoteRequest>(&json!({"channel": "beta", "rollout": [2500]})).unwrap_err();
        assert!(e.contains("invalid type: sequence, expected struct"), "{e}");
        let e = strict::<RolloutPatch>(&json!([2500])).unwrap_err();
        assert!(e.contains("invalid type: sequence"), "{e}");
        // Bodies as clients send them read exactly as serde_json reads them.
        let check = json!({"device_id": "d1", "current_version": "1.0.0", "channel": "stable", "os": "linux",
                           "arch": "x86_64", "traits": {"tier": "gold", "ram": 8, "beta": true}, "locale": null});
        assert_eq!(
            strict::<CheckRequest>(&check).unwrap(),
            serde_json::from_value::<CheckRequest>(check.clone()).unwrap()
        );
        let mut explain = check.clone();
        explain["ip"] = json!("10.1.2.3");
        let parsed = strict::<ExplainRequest>(&explain).unwrap();
        assert_eq!(parsed, serde_json::from_value::<ExplainRequest>(explain).unwrap());
        let app = json!({"display_name": "Notes", "keys": [], "channels": [{"name": "nightly", "rank": 300}]});
        assert_eq!(strict::<AppSpec>(&app).unwrap(), serde_json::from_value::<AppSpec>(app).unwrap());
        let rollout = json!({"basis_points": 100, "rules": [{"kind": "os_in", "values": ["linux"]}],
                             "schedule": {"preset": "apple_phased"}, "allow": ["qa-1"]});
        let publish = json!({"channel": "beta", "rollout": rollout, "release": {
            "version": "1.0.0", "notes": "n", "artifacts": [{"os": "linux", "arch": "x86_64",
            "sha256": "ab".repeat(32), "size": 3, "signature": "cd".repeat(64), "key_id": "k"}]}});
        assert_eq!(
            strict::<PublishRequest>(&publish).unwrap(),
            serde_json::from_value::<PublishRequest>(publish).unwrap()
        );
        let e = strict::<PublishRequest>(&json!({"channel": "beta", "rollout": {"basis_points": 1},
                                                 "release": ["1.0.0", "n", []]}))
        .unwrap_err();
        assert!(e.contains("invalid type: sequence, expected struct"), "{e}");
    }
}
