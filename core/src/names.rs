//! What a name may hold: service names, metadata keys and prefix segments
//! share one alphabet, so no name can escape its place in the key space.

use crate::error::{Error, Result};

/// Longest service name.
pub const MAX_NAME_LEN: usize = 128;

/// Bytes allowed in names, metadata keys and prefix segments.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Checks a service name: 1..=128 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            "name",
            format!("{name:?} must be 1..={MAX_NAME_LEN} characters"),
        ));
    }
    if !name.bytes().all(is_name_byte) {
        return Err(Error::invalid(
            "name",
            format!("{name:?} may only hold [A-Za-z0-9._-]"),
        ));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid("name", format!("{name:?} is not a name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_key_escape_and_spaces() {
        for bad in ["", "a/b", "..", "a b", "ä", &"x".repeat(129)] {
            let err = validate_name(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { ref field, .. } if field == "name"),
                "{bad}"
            );
        }
        for good in ["micro", "a.b-c_d", &"x".repeat(128)] {
            validate_name(good).unwrap();
        }
    }
}
