//! The few places where the stack file's YAML shape is friendlier than the
//! derived serde shape: `target` as a one-key mapping, `console: false`, and
//! `local:` / `kubeconfig:` written with nothing under them. What is
//! serialized parses back unchanged.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, value::MapAccessDeserializer, Deserialize, Deserializer, MapAccess, Visitor,
};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::types::{Console, KubeconfigTarget, Target};

/// The keys `target` accepts, in the order `howdah init` lists them.
pub const TARGETS: &[&str] = &["kubeconfig"];

/// Targets that are planned but not built yet; naming one gets a clearer
/// message than "unknown key".
pub(crate) const PLANNED_TARGETS: &[&str] = &["aws", "gcp", "azure"];

/// `target` is a mapping with exactly one key naming the target. (serde's
/// derived enum shape in YAML is a `!kubeconfig` tag, which nobody writes.)
impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TargetVisitor)
    }
}

/// The same one-key mapping, so a serialized stack parses back.
impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Target::Kubeconfig(kubeconfig) => map.serialize_entry("kubeconfig", kubeconfig)?,
        }
        map.end()
    }
}

struct TargetVisitor;

impl<'de> Visitor<'de> for TargetVisitor {
    type Value = Target;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with exactly one target, e.g. `kubeconfig: {}`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Target, A::Error> {
        let mut target: Option<Target> = None;
        while let Some(kind) = map.next_key::<TargetKind>()? {
            let next = match kind {
                TargetKind::Kubeconfig => Target::Kubeconfig(
                    map.next_value::<Option<KubeconfigTarget>>()?
                        .unwrap_or_default(),
                ),
            };
            if target.is_some() {
                return Err(de::Error::custom(format!(
                    "`target` names more than one target; keep exactly one of: {}",
                    TARGETS.join(", ")
                )));
            }
            target = Some(next);
        }
        target.ok_or_else(|| {
            de::Error::custom(format!(
                "`target` is empty: name exactly one target, one of: {}",
                TARGETS.join(", ")
            ))
        })
    }
}

/// A key of `target`. Unknown keys fail while the key is read, so the error
/// points at the key itself.
enum TargetKind {
    Kubeconfig,
}

impl<'de> Deserialize<'de> for TargetKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl Visitor<'_> for KindVisitor {
            type Value = TargetKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TargetKind, E> {
                match v {
                    "kubeconfig" => Ok(TargetKind::Kubeconfig),
                    _ => Err(E::unknown_field(v, TARGETS)),
                }
            }
        }
        deserializer.deserialize_identifier(KindVisitor)
    }
}

/// `console: false` / `console: true` as shorthand for `console: {enabled: …}`;
/// `console:` with nothing under it means the defaults.
pub(crate) fn console<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Console, D::Error> {
    struct ConsoleVisitor;
    impl<'de> Visitor<'de> for ConsoleVisitor {
        type Value = Console;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true, false or a mapping")
        }
        fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<Console, E> {
            Ok(Console {
                enabled,
                ..Console::default()
            })
        }
        fn visit_unit<E: de::Error>(self) -> Result<Console, E> {
            Ok(Console::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<Console, E> {
            Ok(Console::default())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Console, A::Error> {
            Console::deserialize(MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_any(ConsoleVisitor)
}

/// For optional blocks whose presence means something (`storage.local`):
/// written with nothing under it, the block is present with its defaults
/// rather than absent.
pub(crate) fn present_or_default<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    struct PresentVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for PresentVisitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(Some(T::default()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(Some(T::default()))
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Option<T>, D2::Error> {
            T::deserialize(d).map(Some)
        }
    }
    deserializer.deserialize_option(PresentVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::super::types::{LocalStorage, Stack};

    fn stack(yaml: &str) -> Result<Stack, serde_norway::Error> {
        serde_norway::from_str(yaml)
    }

    #[test]
    fn target_is_a_one_key_mapping_and_may_be_empty() {
        for yaml in [
            "name: a\ntarget:\n  kubeconfig:\n",
            "name: a\ntarget: {kubeconfig: {}}\n",
        ] {
            let parsed = stack(yaml).map(|s| s.target);
            assert!(matches!(parsed, Ok(super::Target::Kubeconfig(_))), "{yaml}");
        }
        let with_context = stack("name: a\ntarget:\n  kubeconfig:\n    context: kind\n");
        assert!(matches!(
            with_context.map(|s| s.target),
            Ok(super::Target::Kubeconfig(k)) if k.context.as_deref() == Some("kind")
        ));
        for yaml in [
            "name: a\ntarget: {}\n",
            "name: a\ntarget: kubeconfig\n",
            "name: a\ntarget: {aws: {}}\n",
        ] {
            assert!(stack(yaml).is_err(), "{yaml}");
        }
    }

    #[test]
    fn console_accepts_a_bool_or_a_mapping() {
        let off = stack("name: a\ntarget: {kubeconfig: {}}\npachyderm: {console: false}\n");
        assert_eq!(off.map(|s| s.pachyderm.console.enabled).ok(), Some(false));
        let map =
            stack("name: a\ntarget: {kubeconfig: {}}\npachyderm:\n  console: {enabled: false}\n");
        assert_eq!(map.map(|s| s.pachyderm.console.enabled).ok(), Some(false));
        let typo =
            stack("name: a\ntarget: {kubeconfig: {}}\npachyderm:\n  console: {enabld: false}\n");
        assert!(typo.is_err());
    }

    #[test]
    fn an_empty_local_block_means_local_with_defaults() {
        let parsed = stack("name: a\ntarget: {kubeconfig: {}}\nstorage:\n  local:\n");
        assert_eq!(
            parsed.map(|s| s.storage.local).ok(),
            Some(Some(LocalStorage::default()))
        );
    }
}
