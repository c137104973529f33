//! Values that remember where in the YAML file they were written, and node
//! bodies keyed by their type (`file: {...}`), parsed in one pass so every
//! error keeps an exact line and column.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, VariantAccess,
};
use serde::Deserialize;

/// A 1-based line and column in the pipeline file (0 when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl From<serde_saphyr::Location> for Pos {
    fn from(l: serde_saphyr::Location) -> Self {
        Pos {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// A value with the position where it was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Located<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        Self { value, pos }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Located {
            value: spanned.value,
            pos: spanned.referenced.into(),
        })
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// The type keys a node section accepts, e.g. `file` and `synthetic` for
/// sources. Implemented by externally tagged enums of parameters.
pub trait NodeKinds: for<'de> Deserialize<'de> + JsonSchema {
    /// Section name used in messages: "source", "operator", "sink".
    const ROLE: &'static str;
    /// Whether nodes of this section read from `inputs`.
    const HAS_INPUTS: bool;
    /// The type keys, for "unknown type" messages.
    fn names() -> &'static [&'static str];
}

/// A problem found while reading the YAML that did not stop the parse.
#[derive(Clone, Debug, PartialEq)]
pub struct Deferred {
    pub pos: Pos,
    pub message: String,
}

/// One named node: `name: { inputs: [...], <type>: {params} }`.
#[derive(Debug)]
pub struct NodeSpec<K> {
    pub name: Located<String>,
    pub inputs: Vec<Located<String>>,
    /// The parameters, or why they are missing (reported with the graph
    /// errors so that all mistakes come out together).
    pub kind: Result<Located<K>, Deferred>,
}

/// An ordered map of nodes.
#[derive(Debug)]
pub struct NodeMap<K>(pub Vec<NodeSpec<K>>);

impl<K> Default for NodeMap<K> {
    fn default() -> Self {
        NodeMap(Vec::new())
    }
}

impl<'de, K: NodeKinds> Deserialize<'de> for NodeMap<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(NodeMapVisitor(PhantomData))
    }
}

struct NodeMapVisitor<K>(PhantomData<K>);

impl<'de, K: NodeKinds> de::Visitor<'de> for NodeMapVisitor<K> {
    type Value = NodeMap<K>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a map from {} names to their settings", K::ROLE)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut nodes = Vec::new();
        while let Some(name) = map.next_key::<Located<String>>()? {
            let body = map.next_value_seed(NodeBodySeed::<K>(name.pos, PhantomData))?;
            nodes.push(NodeSpec {
                name,
                inputs: body.inputs,
                kind: body.kind,
            });
        }
        Ok(NodeMap(nodes))
    }
}

struct NodeBody<K> {
    inputs: Vec<Located<String>>,
    kind: Result<Located<K>, Deferred>,
}

struct NodeBodySeed<K>(Pos, PhantomData<K>);

impl<'de, K: NodeKinds> DeserializeSeed<'de> for NodeBodySeed<K> {
    type Value = NodeBody<K>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, K: NodeKinds> de::Visitor<'de> for NodeBodySeed<K> {
    type Value = NodeBody<K>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a map with one {} type key ({})",
            K::ROLE,
            K::names().join(", ")
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut inputs = Vec::new();
        let mut kind: Option<Result<Located<K>, Deferred>> = None;
        while let Some(key) = map.next_key::<Located<String>>()? {
            if key.value == "inputs" && K::HAS_INPUTS {
                inputs = map.next_value()?;
            } else if !K::names().contains(&key.value.as_str()) {
                map.next_value::<de::IgnoredAny>()?;
                let message = unknown_key_message::<K>(&key.value);
                kind.get_or_insert(Err(Deferred {
                    pos: key.pos,
                    message,
                }));
            } else if kind.as_ref().is_some_and(|k| k.is_ok()) {
                map.next_value::<de::IgnoredAny>()?;
                kind = Some(Err(Deferred {
                    pos: key.pos,
                    message: format!(
                        "a {} has exactly one type, but '{}' is a second one",
                        K::ROLE,
                        key.value
                    ),
                }));
            } else {
                let params = map.next_value_seed(KeyedVariant::<K>(&key.value, PhantomData))?;
                kind = Some(Ok(Located::new(params, key.pos)));
            }
        }
        let kind = kind.unwrap_or_else(|| {
            Err(Deferred {
                pos: self.0,
                message: format!(
                    "this {} has no type: add one of {}",
                    K::ROLE,
                    K::names().join(", ")
                ),
            })
        });
        Ok(NodeBody { inputs, kind })
    }
}

fn unknown_key_message<K: NodeKinds>(key: &str) -> String {
    let mut message = format!("unknown {} type '{key}'", K::ROLE);
    if let Some(close) = super::closest(key, K::names().iter().copied()) {
        message.push_str(&format!(" (did you mean '{close}'?)"));
    }
    message.push_str(&format!("; known types: {}", K::names().join(", ")));
    if K::HAS_INPUTS {
        message.push_str(", plus 'inputs'");
    }
    message
}

/// Deserializes the value of a `<type>: {params}` entry as the variant of
/// `K` named by the key, without buffering, so errors inside the parameters
/// keep their exact position.
struct KeyedVariant<'k, K>(&'k str, PhantomData<K>);

impl<'de, K: NodeKinds> DeserializeSeed<'de> for KeyedVariant<'_, K> {
    type Value = K;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<K, D::Error> {
        K::deserialize(VariantDeserializer {
            variant: self.0,
            value: deserializer,
        })
    }
}

struct VariantDeserializer<'k, D> {
    variant: &'k str,
    value: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for VariantDeserializer<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, D: Deserializer<'de>> EnumAccess<'de> for VariantDeserializer<'_, D> {
    type Error = D::Error;
    type Variant = ValueVariant<D>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), D::Error> {
        let name: de::value::StrDeserializer<'_, D::Error> = self.variant.into_deserializer();
        Ok((seed.deserialize(name)?, ValueVariant(self.value)))
    }
}

/// The parameter value's deserializer, acting as the variant's content.
struct ValueVariant<D>(D);

impl<'de, D: Deserializer<'de>> VariantAccess<'de> for ValueVariant<D> {
    type Error = D::Error;

    fn unit_variant(self) -> Result<(), D::Error> {
        de::IgnoredAny::deserialize(self.0).map(|_| ())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, D::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: de::Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct("", fields, visitor)
    }
}
