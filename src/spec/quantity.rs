//! Kubernetes resource quantities (`10Gi`, `500m`, `1.5`, `2e3`), checked the
//! way the API server would, so a bad size fails here instead of half way
//! through `up`.
//!
//! Grammar (k8s.io/apimachinery `resource.Quantity`):
//! `[+|-]number [Ki|Mi|Gi|Ti|Pi|Ei | m|k|M|G|T|P|E | (e|E)[+|-]digits]`
//! where number is `digits`, `digits.`, `digits.digits` or `.digits`.

/// Why a quantity was refused, with what to write instead when we can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuantityError {
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

/// What a quantity is used for: changes which values make sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuantityUse {
    /// A volume size: must be more than zero.
    VolumeSize,
    /// A memory request or limit.
    Memory,
    /// A CPU request or limit.
    Cpu,
}

/// 2^63, the first value an int64 cannot hold.
const MAX_API_VALUE: f64 = 9_223_372_036_854_775_808.0;

/// The smallest volume howdah asks for: 1Gi.
const MIN_VOLUME_BYTES: f64 = 1_073_741_824.0;

const BINARY: &[&str] = &["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
const DECIMAL: &[&str] = &["m", "k", "M", "G", "T", "P", "E"];

/// Parses a quantity into its (approximate) value in base units.
pub(crate) fn parse_quantity(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let negative = text.starts_with('-');
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    if !is_number(number) {
        return None;
    }
    let mantissa: f64 = number.parse().ok()?;
    let scale = suffix_scale(suffix)?;
    let value = mantissa * scale;
    Some(if negative { -value } else { value })
}

/// `digits`, `digits.`, `digits.digits` or `.digits`.
fn is_number(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    all_digits(whole) && all_digits(fraction) && !(whole.is_empty() && fraction.is_empty())
}

fn suffix_scale(suffix: &str) -> Option<f64> {
    if suffix.is_empty() {
        return Some(1.0);
    }
    if let Some(power) = BINARY.iter().position(|s| *s == suffix) {
        return Some(1024f64.powi(i32::try_from(power).ok()? + 1));
    }
    match suffix {
        "m" => return Some(1e-3),
        "k" => return Some(1e3),
        "M" => return Some(1e6),
        "G" => return Some(1e9),
        "T" => return Some(1e12),
        "P" => return Some(1e15),
        "E" => return Some(1e18),
        _ => {}
    }
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let power: i32 = exponent.parse().ok()?;
    Some(10f64.powi(power))
}

/// Checks a quantity for one use; the message names the value.
pub(crate) fn check_quantity(text: &str, usage: QuantityUse) -> Result<(), QuantityError> {
    let example = match usage {
        QuantityUse::VolumeSize | QuantityUse::Memory => "10Gi",
        QuantityUse::Cpu => "500m or 1.5",
    };
    let invalid = |help: Option<String>| QuantityError {
        message: format!(
            "invalid quantity {text:?}: expected a Kubernetes quantity like {example}"
        ),
        help,
    };
    if text.trim().is_empty() {
        return Err(QuantityError {
            message: format!("empty quantity: expected a Kubernetes quantity like {example}"),
            help: None,
        });
    }
    let Some(value) = parse_quantity(text) else {
        return Err(invalid(suggest(text)));
    };
    if value < 0.0 {
        return Err(QuantityError {
            message: format!("invalid quantity {text:?}: must not be negative"),
            help: text.strip_prefix('-').map(|t| format!("write {t}")),
        });
    }
    // The API server keeps a quantity as an int64 of its smallest unit
    // (milli for CPU) and refuses what does not fit.
    let smallest = if usage == QuantityUse::Cpu { 1e3 } else { 1.0 };
    if value * smallest >= MAX_API_VALUE {
        return Err(QuantityError {
            message: format!(
                "quantity {text:?} is too large: Kubernetes takes at most 2^63-1 {}",
                if usage == QuantityUse::Cpu {
                    "millicores"
                } else {
                    "bytes (about 8Ei)"
                }
            ),
            help: None,
        });
    }
    if usage == QuantityUse::VolumeSize && value < MIN_VOLUME_BYTES {
        return Err(QuantityError {
            message: format!(
                "volume size {text:?} is below 1Gi: too small to hold etcd's or PostgreSQL's \
                 data, and cloud disks come in whole GiB (a plain number is bytes)"
            ),
            help: Some("e.g. 10Gi, the chart's default".into()),
        });
    }
    if usage == QuantityUse::Memory && text.ends_with('m') {
        let number = text.trim_end_matches('m');
        return Err(QuantityError {
            message: format!(
                "memory quantity {text:?} is in thousandths of a byte (`m` means milli)"
            ),
            help: Some(format!("for mebibytes write {number}Mi")),
        });
    }
    Ok(())
}

/// A likely intended spelling for common mistakes: `10GB`, `10gi`, `10 Gi`,
/// `512K`.
fn suggest(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact != text && parse_quantity(&compact).is_some() {
        return Some(format!("no spaces: write {compact}"));
    }
    let number_len = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, suffix) = compact.split_at(number_len);
    if !is_number(number) {
        return None;
    }
    let unit = suffix
        .strip_suffix(['B', 'b'])
        .unwrap_or(suffix)
        .to_ascii_lowercase();
    let first = unit.chars().next()?;
    let letter = if first == 'k' {
        "K".to_string()
    } else {
        first.to_ascii_uppercase().to_string()
    };
    let binary = format!("{letter}i");
    if !BINARY.contains(&binary.as_str()) || unit.len() > 2 {
        return None;
    }
    let decimal = if letter == "K" {
        "k".to_string()
    } else {
        letter
    };
    debug_assert!(DECIMAL.contains(&decimal.as_str()));
    Some(format!(
        "write {number}{binary} (powers of 1024) or {number}{decimal} (powers of 1000)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_quantities() {
        for (text, value) in [
            ("10Gi", 10.0 * 1024f64.powi(3)),
            ("500m", 0.5),
            ("1.5", 1.5),
            ("2e3", 2000.0),
            ("1E", 1e18),
            ("1E3", 1000.0),
            ("+1k", 1000.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("0", 0.0),
            ("12e-3", 0.012),
        ] {
            let parsed = parse_quantity(text).unwrap_or(f64::NAN);
            assert!(
                (parsed - value).abs() < 1e-6 * value.max(1.0),
                "{text}: {parsed}"
            );
        }
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        for text in [
            "", "10GB", "10gi", "Gi", "1.2.3", "10 Gi", "1e", "1e+", "ten", "1K", "0x10", "1Gi ",
        ] {
            assert_eq!(parse_quantity(text), None, "{text}");
        }
    }

    #[test]
    fn checks_per_use_with_helpful_hints() {
        assert!(check_quantity("10Gi", QuantityUse::VolumeSize).is_ok());
        assert!(check_quantity("1.5", QuantityUse::Cpu).is_ok());
        assert!(check_quantity("0", QuantityUse::Cpu).is_ok());
        let gb = check_quantity("10GB", QuantityUse::VolumeSize).unwrap_err();
        assert_eq!(
            gb.message,
            "invalid quantity \"10GB\": expected a Kubernetes quantity like 10Gi"
        );
        assert_eq!(
            gb.help.as_deref(),
            Some("write 10Gi (powers of 1024) or 10G (powers of 1000)")
        );
        let kb = check_quantity("512kb", QuantityUse::Memory).unwrap_err();
        assert_eq!(
            kb.help.as_deref(),
            Some("write 512Ki (powers of 1024) or 512k (powers of 1000)")
        );
        let negative = check_quantity("-1Gi", QuantityUse::VolumeSize).unwrap_err();
        assert!(negative.message.contains("negative"));
        assert!(check_quantity("0Gi", QuantityUse::VolumeSize).is_err());
        for tiny in ["1", "1e3", "512Mi", "1G"] {
            let small = check_quantity(tiny, QuantityUse::VolumeSize).unwrap_err();
            assert!(small.message.contains("below 1Gi"), "{tiny}: {small:?}");
        }
        assert!(check_quantity("1Gi", QuantityUse::VolumeSize).is_ok());
        for huge in ["99999999999999999999999Gi", "8Ei", "1e19"] {
            let big = check_quantity(huge, QuantityUse::VolumeSize).unwrap_err();
            assert!(big.message.contains("too large"), "{huge}: {big:?}");
        }
        assert!(check_quantity("7Ei", QuantityUse::Memory).is_ok());
        assert!(check_quantity("9999999999999999", QuantityUse::Cpu)
            .unwrap_err()
            .message
            .contains("millicores"));
        assert!(check_quantity("", QuantityUse::Cpu)
            .unwrap_err()
            .message
            .starts_with("empty quantity"));
        let milli = check_quantity("512m", QuantityUse::Memory).unwrap_err();
        assert_eq!(milli.help.as_deref(), Some("for mebibytes write 512Mi"));
        let spaced = check_quantity("10 Gi", QuantityUse::VolumeSize).unwrap_err();
        assert_eq!(spaced.help.as_deref(), Some("no spaces: write 10Gi"));
    }
}
