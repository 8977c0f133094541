//! Removing secret values — and what is derived from them — from text that
//! leaves rekey (verifier and target messages, errors, audit events, logs).
//!
//! A verifier's output (an HTTP body, a program's stderr, a database error)
//! can echo the candidate it was given, and rarely verbatim: an
//! `Authorization` header carries it base64-encoded, a URL percent-encoded, a
//! debug dump in hex, an error message truncated. [`redact`] removes, for
//! every secret it is given:
//!
//! * the secret itself, and any run of at least [`MIN_FRAGMENT`] characters
//!   of it (a truncated or partly quoted value);
//! * its base64 (standard and URL-safe alphabet, with and without padding),
//!   hex (lower and upper case) and percent-encoded forms, and runs of at
//!   least [`MIN_FRAGMENT`] characters of those;
//! * any base64, hex or percent-encoded token whose decoded bytes contain the
//!   secret or a [`MIN_FRAGMENT`]-character run of it (`Basic
//!   base64(user:password)`, `?password=...`).
//!
//! Each removal is replaced by [`REDACTED`].
//!
//! ```
//! use rekey_core::redact::{redact, REDACTED};
//! let secret = "correct-horse-battery-staple";
//! let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
//! let message = format!("login refused for {secret}; header was Basic Y2FuZGlkYXRlOmNvcnJlY3QtaG9yc2UtYmF0dGVyeS1zdGFwbGU=, dump {hex}, echo correct-horse-batt");
//! let clean = redact(&message, &[secret]);
//! assert!(!clean.contains("correct-horse"));
//! assert!(!clean.contains("Y2FuZGlkYXRl"));
//! assert!(!clean.contains(&hex[..24]));
//! assert!(clean.starts_with(&format!("login refused for {REDACTED}")));
//! ```

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// What a removed value is replaced by.
pub const REDACTED: &str = "[REDACTED]";

/// The shortest run of a secret (or of one of its encodings) that is
/// removed on its own. Secrets shorter than this are removed only whole.
pub const MIN_FRAGMENT: usize = 12;

/// The shortest encoded token that is decoded to look for a secret inside.
const MIN_TOKEN: usize = 16;

/// `message` with every secret in `secrets`, their encodings and fragments
/// replaced by [`REDACTED`] (see the [module docs](self)). Empty secrets are
/// ignored.
pub fn redact(message: &str, secrets: &[&str]) -> String {
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).filter(|s| !s.is_empty()).collect();
    if secrets.is_empty() || message.is_empty() {
        return message.to_owned();
    }
    let bytes = message.as_bytes();
    let mut hide = vec![false; bytes.len()];
    for secret in &secrets {
        for form in encodings(secret) {
            mark_fragments(bytes, &form, &mut hide);
        }
    }
    mark_encoded_tokens(bytes, &secrets, &mut hide);
    render(message, &hide)
}

/// Whether `message` contains a secret, an encoding or a fragment of one
/// (what [`redact`] would remove).
pub fn contains_secret(message: &str, secrets: &[&str]) -> bool {
    redact(message, secrets) != message
}

/// The secret and the encodings of it that are searched for verbatim.
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![secret.to_vec()];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(secret).into_bytes());
    }
    forms.push(hex(secret, b"0123456789abcdef"));
    forms.push(hex(secret, b"0123456789ABCDEF"));
    let pct_upper = percent(secret, b"0123456789ABCDEF");
    if pct_upper != secret {
        forms.push(percent(secret, b"0123456789abcdef"));
        forms.push(pct_upper);
    }
    forms.sort();
    forms.dedup();
    forms
}

fn hex(bytes: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0xf)]);
    }
    out
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn percent(bytes: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', digits[usize::from(b >> 4)], digits[usize::from(b & 0xf)]]);
        }
    }
    out
}

/// Marks every place in `text` where `form` occurs whole, or where a run of
/// at least [`MIN_FRAGMENT`] bytes of it occurs.
fn mark_fragments(text: &[u8], form: &[u8], hide: &mut [bool]) {
    let min = MIN_FRAGMENT.min(form.len());
    if min == 0 || text.len() < min {
        return;
    }
    // Longest common substring table, one row at a time: run[j] is the
    // length of the common run ending at text[i] and form[j].
    let mut prev = vec![0usize; form.len() + 1];
    let mut run = vec![0usize; form.len() + 1];
    for (i, &t) in text.iter().enumerate() {
        for (j, &f) in form.iter().enumerate() {
            run[j + 1] = if t == f { prev[j] + 1 } else { 0 };
            let len = run[j + 1];
            if len >= min {
                hide[i + 1 - len..=i].iter_mut().for_each(|h| *h = true);
            }
        }
        std::mem::swap(&mut prev, &mut run);
    }
}

/// Whether `decoded` holds a secret or a [`MIN_FRAGMENT`]-byte run of one.
fn holds_secret(decoded: &[u8], secrets: &[&[u8]]) -> bool {
    secrets.iter().any(|s| {
        let mut hide = vec![false; decoded.len()];
        mark_fragments(decoded, s, &mut hide);
        hide.contains(&true)
    })
}

/// Marks base64, hex and percent-encoded tokens whose decoded bytes hold a
/// secret.
fn mark_encoded_tokens(text: &[u8], secrets: &[&[u8]], hide: &mut [bool]) {
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || b"+/-_=".contains(&b);
    let is_pct = |b: u8| b.is_ascii_graphic() && !b" \"'<>`,;()[]{}".contains(&b);
    for (start, end) in runs(text, is_b64) {
        let token = &text[start..end];
        let trimmed = trim_b64(token);
        let mut decoded: Vec<Vec<u8>> = Vec::new();
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            // Unaligned tokens (a prefix glued on): try each start offset.
            for skip in 0..4.min(trimmed.len()) {
                if let Ok(d) = engine.decode(&trimmed[skip..]) {
                    decoded.push(d);
                }
            }
        }
        if token.iter().all(u8::is_ascii_hexdigit) && token.len().is_multiple_of(2) {
            decoded.push(unhex(token));
        }
        if decoded.iter().any(|d| holds_secret(d, secrets)) {
            hide[start..end].iter_mut().for_each(|h| *h = true);
        }
    }
    for (start, end) in runs(text, is_pct) {
        let token = &text[start..end];
        if token.contains(&b'%') || token.contains(&b'+') {
            let decoded = unpercent(token);
            if holds_secret(&decoded, secrets) {
                hide[start..end].iter_mut().for_each(|h| *h = true);
            }
        }
    }
}

/// Maximal runs of bytes matching `keep`, at least [`MIN_TOKEN`] long.
fn runs(text: &[u8], keep: impl Fn(u8) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &b) in text.iter().enumerate() {
        match (keep(b), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= MIN_TOKEN {
                    out.push((s, i));
                }
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start
        && text.len() - s >= MIN_TOKEN
    {
        out.push((s, text.len()));
    }
    out
}

/// A base64 token without the characters of the other alphabet's padding
/// mistakes (`=` only at the end).
fn trim_b64(token: &[u8]) -> &[u8] {
    let end = token.iter().position(|&b| b == b'=').map_or(token.len(), |p| {
        let pad = token[p..].iter().take_while(|&&b| b == b'=').count();
        p + pad
    });
    &token[..end]
}

fn unhex(token: &[u8]) -> Vec<u8> {
    let val = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    };
    token.chunks_exact(2).map(|p| (val(p[0]) << 4) | val(p[1])).collect()
}

fn unpercent(token: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    let mut i = 0;
    while i < token.len() {
        match token[i] {
            b'%' if i + 2 < token.len() && token[i + 1].is_ascii_hexdigit() && token[i + 2].is_ascii_hexdigit() => {
                out.extend(unhex(&token[i + 1..i + 3]));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `message` with each hidden byte range (widened to whole characters)
/// replaced by one [`REDACTED`].
fn render(message: &str, hide: &[bool]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut hiding = false;
    for (i, c) in message.char_indices() {
        let hidden = hide[i..i + c.len_utf8()].contains(&true);
        if hidden {
            if !hiding {
                out.push_str(REDACTED);
            }
        } else {
            out.push(c);
        }
        hiding = hidden;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-Candidate/Value+42";

    fn hidden(message: &str) -> bool {
        let out = redact(message, &[SECRET]);
        !out.contains("s3cr3t") && !out.contains("Candidate") && out.contains(REDACTED)
    }

    #[test]
    fn exact_and_fragments() {
        assert!(hidden(&format!("bad password {SECRET} for user app")));
        assert!(hidden("truncated: s3cr3t-Candid"));
        assert!(hidden("suffix only: Candidate/Value+42"));
        assert_eq!(redact("nothing here", &[SECRET]), "nothing here");
        // A short secret is removed whole, not by fragments.
        assert_eq!(redact("pw is abc, abcd", &["abcd"]), format!("pw is abc, {REDACTED}"));
        assert_eq!(redact("keep", &[""]), "keep");
    }

    #[test]
    fn encodings_are_removed() {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            let b64 = engine.encode(SECRET);
            let out = redact(&format!("token={b64}!"), &[SECRET]);
            assert!(!out.contains(&b64[..16]), "{out}");
        }
        let hex_lower: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
        let out = redact(&format!("dump: {hex_lower}"), &[SECRET]);
        assert!(!out.contains(&hex_lower[..12]), "{out}");
        let out = redact(&format!("dump: {}", hex_lower.to_uppercase()), &[SECRET]);
        assert!(!out.contains(&hex_lower.to_uppercase()[..12]), "{out}");
        let pct = "s3cr3t-Candidate%2FValue%2B42";
        let out = redact(&format!("GET /login?pw={pct}&x=1"), &[SECRET]);
        assert!(!out.contains("Value%2B42") && !out.contains("s3cr3t"), "{out}");
    }

    #[test]
    fn values_inside_encoded_tokens_are_found() {
        let basic = STANDARD.encode(format!("app:{SECRET}"));
        let out = redact(&format!("Authorization: Basic {basic}"), &[SECRET]);
        assert!(!out.contains(&basic[4..20]), "{out}");
        let form = format!("user=app&password={}", "s3cr3t-Candidate%2FValue%2B42");
        assert!(hidden(&form));
    }

    #[test]
    fn multibyte_text_is_cut_at_character_boundaries() {
        let secret = "pässwörd-ünïcode-ŝecret";
        let out = redact(&format!("é {secret} ü"), &[secret]);
        assert_eq!(out, format!("é {REDACTED} ü"));
        let out = redact(&format!("…{}…", &secret[..14]), &[secret]);
        assert!(!out.contains("pässwörd"), "{out}");
    }

    #[test]
    fn unrelated_encoded_text_is_kept() {
        let other = STANDARD.encode("a perfectly ordinary log line");
        assert_eq!(redact(&other, &[SECRET]), other);
        assert!(!contains_secret("status 401 unauthorized", &[SECRET]));
        assert!(contains_secret(SECRET, &[SECRET]));
    }
}
