//! What a name may hold: service names, metadata keys and prefix segments
//! share one alphabet, so no name can escape its place in the key space.
//! And what an address may hold: `host:port`.

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

/// Splits and checks `host:port`: IPv4, bracketed IPv6 or a DNS name, port 1..=65535.
/// Returns the host as it belongs in `ip` (IPv6 without brackets).
pub(crate) fn split_addr(addr: &str) -> Result<(String, u16)> {
    let bad = |reason: &str| Error::invalid("addr", format!("{addr:?} {reason}"));
    if addr.contains("://") {
        return Err(bad("must be host:port, not a URL"));
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (v6, port) = rest
            .split_once("]:")
            .ok_or_else(|| bad("must be [ipv6]:port"))?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("holds an invalid IPv6 address"))?;
        (v6.to_string(), port)
    } else {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad("must be host:port"))?;
        if host.contains(':') {
            return Err(bad("must put an IPv6 address in brackets: [::1]:port"));
        }
        if host.parse::<std::net::Ipv4Addr>().is_err() && !is_dns_name(host) {
            return Err(bad("holds neither an IPv4 address nor a DNS name"));
        }
        (host.to_string(), port)
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("must end in a port 1..=65535"))?;
    Ok((host, port))
}

fn is_dns_name(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    // A name made only of digits and dots is a malformed IPv4 address, not a name.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return false;
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
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
