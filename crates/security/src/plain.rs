//! SASL/PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`.

/// Longest token accepted (RFC 4616 bounds each field at 255 octets; this is
/// looser, as Kafka is, but still bounds the work on a hostile client).
pub const TOKEN_MAX_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlainError {
    #[error("malformed PLAIN token: {0}")]
    Malformed(&'static str),
    #[error("authorization id differs from the user name")]
    AuthzidMismatch,
}

#[derive(Debug)]
pub struct PlainToken {
    pub username: String,
    pub password: Vec<u8>,
}

/// Parses a PLAIN token; an authzid must be empty or the username (as Kafka's
/// PlainSaslServer requires).
pub fn parse(token: &[u8]) -> Result<PlainToken, PlainError> {
    if token.len() > TOKEN_MAX_BYTES {
        return Err(PlainError::Malformed("token too long"));
    }
    let mut fields = token.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(PlainError::Malformed("expected exactly two NUL separators"));
    };
    let username = std::str::from_utf8(authcid)
        .map_err(|_| PlainError::Malformed("user name is not UTF-8"))?;
    if username.is_empty() {
        return Err(PlainError::Malformed("empty user name"));
    }
    // The password stays bytes: it is only ever hashed.
    if password.is_empty() {
        return Err(PlainError::Malformed("empty password"));
    }
    if !authzid.is_empty() && authzid != authcid {
        return Err(PlainError::AuthzidMismatch);
    }
    Ok(PlainToken {
        username: username.to_string(),
        password: password.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_accepts_empty_or_equal_authzid() {
        let t = parse(b"\0alice\0secret").unwrap();
        assert_eq!(t.username, "alice");
        assert_eq!(t.password, b"secret");
        let t = parse(b"alice\0alice\0secret").unwrap();
        assert_eq!(t.username, "alice");
        // UTF-8 user names and non-UTF-8 passwords.
        let t = parse(b"\0j\xc3\xb6rg\0\xff\xfe").unwrap();
        assert_eq!(t.username, "j\u{f6}rg");
        assert_eq!(t.password, b"\xff\xfe");
    }

    #[test]
    fn plain_refuses_other_authzid() {
        assert_eq!(
            parse(b"admin\0alice\0secret").unwrap_err(),
            PlainError::AuthzidMismatch
        );
    }

    #[test]
    fn plain_refuses_malformed_tokens() {
        let bad: &[&[u8]] = &[
            b"",
            b"alice",
            b"\0alice",
            b"\0alice\0",
            b"\0\0secret",
            b"\0alice\0secret\0",
            b"\0alice\0sec\0ret",
            b"\0\xff\xfe\0secret",
            b"\0\0",
            b"\0\0\0",
        ];
        for token in bad {
            assert!(
                matches!(parse(token), Err(PlainError::Malformed(_))),
                "{token:?}"
            );
        }
    }

    #[test]
    fn plain_bounds_token_length() {
        let mut token = b"\0alice\0".to_vec();
        token.resize(TOKEN_MAX_BYTES, b'x');
        assert!(parse(&token).is_ok());
        token.push(b'x');
        assert_eq!(
            parse(&token).unwrap_err(),
            PlainError::Malformed("token too long")
        );
    }
}
