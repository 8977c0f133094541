//! Taking the TLS parameters rekey handles itself (`sslmode`, whose
//! `verify-ca` / `verify-full` values tokio-postgres does not know, and
//! `sslrootcert`, which it does not accept) out of a connection URL or a
//! `key=value` connection string, leaving the rest for tokio-postgres.

use percent_encoding::percent_decode_str;

/// A connection string without its TLS parameters, and their values.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// The connection string for tokio-postgres.
    pub rest: String,
    /// The value of `sslmode`, if given.
    pub sslmode: Option<String>,
    /// The value of `sslrootcert`, if given.
    pub sslrootcert: Option<String>,
}

/// Splits `conn` (`postgres://...` / `postgresql://...` or `key=value ...`).
/// The error says what is malformed, never repeating the input (it holds the
/// password).
pub(crate) fn take_tls_params(conn: &str) -> Result<TlsParams, &'static str> {
    for prefix in ["postgres://", "postgresql://"] {
        if let Some(body) = conn.strip_prefix(prefix) {
            return from_url(prefix, body);
        }
    }
    from_key_values(conn)
}

fn decode(s: &str) -> Result<String, &'static str> {
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| "a parameter is not valid UTF-8")
}

fn from_url(prefix: &str, body: &str) -> Result<TlsParams, &'static str> {
    // As tokio-postgres reads it: user info up to the first `@`, then host
    // and path up to the first `?`, then `&`-separated parameters.
    let after_userinfo = body.find('@').map_or(0, |i| i + 1);
    let Some(q) = body[after_userinfo..].find('?').map(|i| after_userinfo + i) else {
        return Ok(TlsParams { rest: format!("{prefix}{body}"), ..TlsParams::default() });
    };
    let mut out = TlsParams::default();
    let mut kept = Vec::new();
    for pair in body[q + 1..].split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key)?.as_str() {
            "sslmode" => out.sslmode = Some(decode(value)?),
            "sslrootcert" => out.sslrootcert = Some(decode(value)?),
            _ => kept.push(pair),
        }
    }
    out.rest = format!("{prefix}{}", &body[..q]);
    if !kept.is_empty() {
        out.rest.push('?');
        out.rest.push_str(&kept.join("&"));
    }
    Ok(out)
}

/// `key = value` pairs separated by spaces; a value is a word or a quoted
/// string (`'...'`), with `\` escaping the next character in both.
fn from_key_values(conn: &str) -> Result<TlsParams, &'static str> {
    let mut out = TlsParams::default();
    let mut kept: Vec<&str> = Vec::new();
    let mut it = conn.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else { break };
        while it.next_if(|(_, c)| !c.is_whitespace() && *c != '=').is_some() {}
        let key_end = it.peek().map_or(conn.len(), |(i, _)| *i);
        let key = &conn[start..key_end];
        if key.is_empty() {
            return Err("a parameter has no name");
        }
        skip_ws(&mut it);
        if it.next_if(|(_, c)| *c == '=').is_none() {
            return Err("a parameter has no `=`");
        }
        skip_ws(&mut it);
        let mut value = String::new();
        if it.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match it.next() {
                    None => return Err("a quoted value is not terminated"),
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(it.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err("a parameter has no value");
            }
        }
        let end = it.peek().map_or(conn.len(), |(i, _)| *i);
        match key {
            "sslmode" => out.sslmode = Some(value),
            "sslrootcert" => out.sslrootcert = Some(value),
            _ => kept.push(&conn[start..end]),
        }
    }
    out.rest = kept.join(" ");
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, Option<String>, Option<String>) {
        let p = take_tls_params(s).unwrap();
        (p.rest, p.sslmode, p.sslrootcert)
    }

    #[test]
    fn urls_lose_only_their_tls_parameters() {
        assert_eq!(split("postgres://u:p@h/db"), ("postgres://u:p@h/db".into(), None, None));
        assert_eq!(
            split(
                "postgresql://u:p@h:1/db?connect_timeout=3&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x"
            ),
            (
                "postgresql://u:p@h:1/db?connect_timeout=3&application_name=x".into(),
                Some("verify-full".into()),
                Some("/etc/ca.pem".into())
            )
        );
        assert_eq!(
            split("postgres://u:p@h/db?sslmode=disable"),
            ("postgres://u:p@h/db".into(), Some("disable".into()), None)
        );
        // A `?` or `&` in the password is not a parameter.
        assert_eq!(
            split("postgres://u:a?sslmode=b&c@h/db?sslrootcert=/ca.pem"),
            ("postgres://u:a?sslmode=b&c@h/db".into(), None, Some("/ca.pem".into()))
        );
        assert!(take_tls_params("postgres://u:p@h/db?sslrootcert=%FF").is_err());
    }

    #[test]
    fn key_value_strings_lose_only_their_tls_parameters() {
        assert_eq!(
            split("host=h  sslmode = verify-ca port=1 sslrootcert='/my ca\\'s.pem' password=a\\ b"),
            ("host=h port=1 password=a\\ b".into(), Some("verify-ca".into()), Some("/my ca's.pem".into()))
        );
        assert_eq!(split("host=h user=u"), ("host=h user=u".into(), None, None));
        assert_eq!(split(""), (String::new(), None, None));
        for bad in ["host", "host=", "=h", "host='h", "sslmode"] {
            assert!(take_tls_params(bad).is_err(), "{bad}");
        }
    }
}
