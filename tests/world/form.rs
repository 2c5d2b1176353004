//! `application/x-www-form-urlencoded` text, as query strings and the AWS query protocol's
//! bodies carry it: the one decoder the world's servers share.

/// Percent-decodes `s` (`+` is a space); a `%` not followed by two hex digits stays as it is.
pub(crate) fn decode(s: &str) -> String {
    percent_decode(s, true)
}

/// Percent-decodes a URL path (where `+` is itself).
pub(crate) fn decode_path(s: &str) -> String {
    percent_decode(s, false)
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
