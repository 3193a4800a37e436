//! The few places where the stack file's YAML shape is friendlier than the
//! derived serde shape: `target` as a one-key mapping, `console: false`,
//! `local:` / `kubeconfig:` written with nothing under them, and a
//! Kubernetes version that must be quoted. What is serialized parses back
//! unchanged.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, value::MapAccessDeserializer, Deserialize, Deserializer, MapAccess, Visitor,
};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::types::{AwsTarget, Console, KubeconfigTarget, Proxy, Target};

/// The keys `target` accepts, in the order `howdah init` lists them.
pub const TARGETS: &[&str] = &["kubeconfig", "aws"];

/// Targets that are planned but not built yet; naming one gets a clearer
/// message than "unknown key".
pub(crate) const PLANNED_TARGETS: &[&str] = &["gcp", "azure"];

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
            Target::Aws(aws) => map.serialize_entry("aws", aws)?,
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
                TargetKind::Aws => Target::Aws(
                    map.next_value_seed(RequiredBlock::<AwsTarget>(PhantomData, "region"))?,
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
    Aws,
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
                    "aws" => Ok(TargetKind::Aws),
                    _ => Err(E::unknown_field(v, TARGETS)),
                }
            }
        }
        deserializer.deserialize_identifier(KindVisitor)
    }
}

/// A block with a required key, written with nothing under it: reported as
/// that key missing (at the block), not as "expected a mapping".
struct RequiredBlock<T>(PhantomData<T>, &'static str);

impl<'de, T: Deserialize<'de>> de::DeserializeSeed<'de> for RequiredBlock<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        // `deserialize_any`, not `deserialize_option`: serde_norway puts the
        // block's own path and position only on errors from the former.
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for RequiredBlock<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Err(E::missing_field(self.1))
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Err(E::missing_field(self.1))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// What [`kubernetes_version`] expects; `structural` keys its help on it.
pub(crate) const QUOTED_VERSION: &str = "a Kubernetes version in quotes";

/// `cluster.version`: text only. Unquoted, `1.30` is the number 1.3 to
/// every other YAML reader (and to the JSON Schema), so a number is refused
/// rather than read back as text.
pub(crate) fn kubernetes_version<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    struct VersionVisitor;
    impl Visitor<'_> for VersionVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{QUOTED_VERSION}, e.g. \"1.31\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(VersionVisitor)
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

/// `proxy: true` / `proxy: false` as shorthand for `proxy: {enabled: …}`;
/// `proxy:` with nothing under it means the defaults (on with the console).
pub(crate) fn proxy<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Proxy, D::Error> {
    struct ProxyVisitor;
    impl<'de> Visitor<'de> for ProxyVisitor {
        type Value = Proxy;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true, false or a mapping")
        }
        fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<Proxy, E> {
            Ok(Proxy {
                enabled: Some(enabled),
                ..Proxy::default()
            })
        }
        fn visit_unit<E: de::Error>(self) -> Result<Proxy, E> {
            Ok(Proxy::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<Proxy, E> {
            Ok(Proxy::default())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Proxy, A::Error> {
            Proxy::deserialize(MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_any(ProxyVisitor)
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
            "name: a\ntarget: {gcp: {}}\n",
            "name: a\ntarget: {aws: {}}\n",
            "name: a\ntarget: {aws: }\n",
            "name: a\ntarget: {kubeconfig: {}, aws: {region: us-east-1}}\n",
        ] {
            assert!(stack(yaml).is_err(), "{yaml}");
        }
    }

    #[test]
    fn the_proxy_follows_the_console_unless_written() {
        let enabled = |yaml: &str| {
            let parsed = stack(&format!("name: a\ntarget: {{kubeconfig: {{}}}}\n{yaml}"));
            parsed.map(|s| s.pachyderm.proxy_enabled()).ok()
        };
        assert_eq!(enabled(""), Some(true));
        assert_eq!(enabled("pachyderm: {console: false}\n"), Some(false));
        // On alone, without the console.
        assert_eq!(
            enabled("pachyderm: {console: false, proxy: true}\n"),
            Some(true)
        );
        assert_eq!(
            enabled("pachyderm:\n  console: false\n  proxy: {serviceType: NodePort}\n"),
            Some(false)
        );
        assert_eq!(
            enabled("pachyderm:\n  console: false\n  proxy: {enabled: true}\n"),
            Some(true)
        );
        assert_eq!(enabled("pachyderm: {proxy: false}\n"), Some(false));
        assert_eq!(enabled("pachyderm: {proxy: }\n"), Some(true));
        let typo = stack("name: a\ntarget: {kubeconfig: {}}\npachyderm: {proxy: {enabld: true}}\n");
        assert!(typo.is_err());
    }

    #[test]
    fn the_console_without_its_proxy_is_allowed_with_a_warning() {
        let warnings = |yaml: &str| {
            stack(&format!("name: a\ntarget: {{kubeconfig: {{}}}}\n{yaml}"))
                .map(|s| s.pachyderm.warnings())
                .unwrap_or_default()
        };
        let off = warnings("pachyderm: {proxy: false}\n");
        assert_eq!(off.len(), 1);
        assert!(off[0].contains("cannot preview"), "{off:?}");
        assert!(warnings("").is_empty());
        assert!(warnings("pachyderm: {console: false, proxy: false}\n").is_empty());
        assert!(warnings("pachyderm: {console: false, proxy: true}\n").is_empty());
    }

    #[test]
    fn the_aws_target_needs_a_region_and_round_trips() {
        let parsed = stack("name: a\ntarget:\n  aws:\n    region: eu-west-1\n    profile: sso\n");
        let Ok(parsed) = parsed else {
            panic!("{parsed:?}");
        };
        let expected = super::Target::Aws(super::AwsTarget {
            region: "eu-west-1".into(),
            profile: Some("sso".into()),
        });
        assert_eq!(parsed.target, expected);
        let yaml = serde_norway::to_string(&parsed).unwrap();
        assert_eq!(stack(&yaml).map(|s| s.target).ok(), Some(expected));
        let empty = stack("name: a\ntarget:\n  aws:\n").unwrap_err().to_string();
        assert!(
            empty.contains("target.aws: missing field `region`"),
            "{empty}"
        );
    }

    #[test]
    fn a_kubernetes_version_must_be_text() {
        let quoted = stack("name: a\ntarget: {aws: {region: x}}\ncluster: {version: \"1.30\"}\n");
        assert_eq!(
            quoted.map(|s| s.cluster.map(|c| c.version)).ok(),
            Some(Some("1.30".to_string()))
        );
        let number = stack("name: a\ntarget: {aws: {region: x}}\ncluster: {version: 1.30}\n");
        let message = number.unwrap_err().to_string();
        assert!(message.contains("floating point `1.3`"), "{message}");
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
