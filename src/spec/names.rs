//! Kubernetes naming rules (k8s.io/apimachinery/pkg/util/validation), so a
//! bad name fails before any API call. Each check returns what is wrong in
//! words a user can act on, or `None` when the text is fine.

/// Labels and annotations howdah puts on everything; users may not set them.
pub(crate) const RESERVED_PREFIX: &str = "howdah.io/";

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A DNS-1123 label: namespaces, and the base of most object names.
pub(crate) fn dns1123_label(text: &str, max: usize) -> Option<String> {
    if text.is_empty() {
        return Some("must not be empty".into());
    }
    if text.chars().count() > max {
        return Some(format!(
            "is {} characters long; at most {max} are allowed",
            text.chars().count()
        ));
    }
    if let Some(bad) = text.chars().find(|&c| !(is_lower_alnum(c) || c == '-')) {
        let hint = if bad.is_ascii_uppercase() {
            " (use lower case)"
        } else {
            ""
        };
        return Some(format!(
            "contains {bad:?}: only lower-case letters, digits and '-' are allowed{hint}"
        ));
    }
    if text.starts_with('-') || text.ends_with('-') {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// A DNS-1123 subdomain: Secret and StorageClass names.
pub(crate) fn dns1123_subdomain(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("must not be empty".into());
    }
    if text.len() > 253 {
        return Some(format!(
            "is {} characters long; at most 253 are allowed",
            text.len()
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|&c| !(is_lower_alnum(c) || c == '-' || c == '.'))
    {
        let hint = if bad.is_ascii_uppercase() {
            " (use lower case)"
        } else {
            ""
        };
        return Some(format!(
            "contains {bad:?}: only lower-case letters, digits, '-' and '.' are allowed{hint}"
        ));
    }
    let parts_ok = text.split('.').all(|part| {
        part.chars().next().is_some_and(is_lower_alnum)
            && part.chars().last().is_some_and(is_lower_alnum)
    });
    if !parts_ok {
        return Some("each '.'-separated part must start and end with a letter or digit".into());
    }
    None
}

/// The name part of a label key, or a label value: up to 63 of
/// `[A-Za-z0-9_.-]`, beginning and ending with a letter or digit.
fn label_name(text: &str) -> Option<String> {
    if text.len() > 63 {
        return Some(format!(
            "is {} characters long; at most 63 are allowed",
            text.len()
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "contains {bad:?}: only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    let edges_ok = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !edges_ok {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain.
pub(crate) fn qualified_key(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("must not be empty".into());
    }
    let (prefix, name) = match text.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    if let Some(prefix) = prefix {
        if let Some(problem) = dns1123_subdomain(prefix) {
            return Some(format!("prefix {prefix:?} {problem}"));
        }
    }
    if name.is_empty() {
        return Some("has an empty name after '/'".into());
    }
    let problem = label_name(name)?;
    Some(match prefix {
        Some(_) => format!("name {name:?} {problem}"),
        None => problem,
    })
}

/// A label value: empty, or a label name.
pub(crate) fn label_value(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    label_name(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert_eq!(dns1123_label("demo-1", 40), None);
        assert!(dns1123_label("Demo", 40).is_some_and(|m| m.contains("lower case")));
        assert!(dns1123_label("-demo", 40).is_some());
        assert!(dns1123_label(&"a".repeat(41), 40).is_some());
        assert_eq!(dns1123_subdomain("pull.secret-1"), None);
        assert!(dns1123_subdomain("pull..secret").is_some());
        assert!(dns1123_subdomain("Pull").is_some());
        assert!(dns1123_subdomain("").is_some());
    }

    #[test]
    fn label_keys_and_values() {
        assert_eq!(qualified_key("app.kubernetes.io/name"), None);
        assert_eq!(qualified_key("team"), None);
        assert_eq!(qualified_key("Team_A.b"), None);
        assert!(qualified_key("a/b/c").is_some());
        assert!(qualified_key("Corp.io/x").is_some());
        assert!(qualified_key("team name").is_some());
        assert!(qualified_key("x/").is_some());
        assert!(qualified_key(&"k".repeat(64)).is_some());
        assert_eq!(label_value(""), None);
        assert_eq!(label_value("v1.2_3-a"), None);
        assert!(label_value("a b").is_some());
        assert!(label_value("-a").is_some());
        assert!(label_value(&"v".repeat(64)).is_some());
    }
}
