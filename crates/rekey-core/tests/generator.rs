//! Secret generator: every validation rule, output shape, uniqueness,
//! uniformity (chi-square) and no secret in `Debug`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};

use rekey_core::{
    DEFAULT_SYMBOLS, ExposeSecret, GenerateSecret, GeneratorConfig, GeneratorError, GeneratorKind, PasswordRules,
    SecretGenerator, SecretString, generator_fn,
};

const ALNUM_SYMBOLS: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@[]^_{|}~";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn gen_str(g: &impl GenerateSecret) -> String {
    g.generate().unwrap().expose_secret().to_owned()
}

fn cfg(text: &str) -> GeneratorConfig {
    toml::from_str(text).unwrap()
}

// ---- validation ----------------------------------------------------------------

#[test]
fn length_out_of_range() {
    let out = |length| GeneratorError::LengthOutOfRange { length, min: 8, max: 4096 };
    for len in [0, 1, 7, 4097, usize::MAX] {
        assert_eq!(SecretGenerator::random(len).unwrap_err(), out(len));
        assert_eq!(SecretGenerator::with_charset(len, "ab").unwrap_err(), out(len));
        assert_eq!(SecretGenerator::hex(len).unwrap_err(), out(len));
        assert_eq!(SecretGenerator::base64url(len).unwrap_err(), out(len));
        assert_eq!(SecretGenerator::password(len, PasswordRules::default()).unwrap_err(), out(len));
    }
    for len in [8, 4096] {
        assert_eq!(gen_str(&SecretGenerator::random(len).unwrap()).len(), len);
    }
}

#[test]
fn empty_charset() {
    assert_eq!(SecretGenerator::with_charset(16, "").unwrap_err(), GeneratorError::EmptyCharset);
}

#[test]
fn single_char_charset() {
    assert_eq!(SecretGenerator::with_charset(16, "a").unwrap_err(), GeneratorError::CharsetTooSmall);
}

#[test]
fn duplicate_char_in_charset() {
    assert_eq!(
        SecretGenerator::with_charset(16, "abcb").unwrap_err(),
        GeneratorError::DuplicateCharInCharset { ch: 'b' }
    );
}

#[test]
fn invalid_char_in_charset() {
    for (cs, ch) in [("ab\n", '\n'), ("a b", ' '), ("ab\u{0}", '\u{0}'), ("abé", 'é'), ("ab\u{7f}", '\u{7f}')] {
        assert_eq!(SecretGenerator::with_charset(16, cs).unwrap_err(), GeneratorError::InvalidCharInCharset { ch });
    }
}

#[test]
fn invalid_password_symbol() {
    let rules = PasswordRules { symbols: "!@a".into(), ..Default::default() };
    assert_eq!(SecretGenerator::password(16, rules).unwrap_err(), GeneratorError::InvalidSymbol { ch: 'a' });
    let rules = PasswordRules { symbols: "!@!".into(), ..Default::default() };
    assert_eq!(SecretGenerator::password(16, rules).unwrap_err(), GeneratorError::DuplicateCharInCharset { ch: '!' });
}

#[test]
fn impossible_password_rules() {
    let rules = PasswordRules { min_lower: 4, min_upper: 4, min_digits: 4, min_symbols: 5, ..Default::default() };
    assert_eq!(
        SecretGenerator::password(16, rules).unwrap_err(),
        GeneratorError::ImpossibleRules { required: 17, length: 16 }
    );
    let huge = PasswordRules { min_lower: usize::MAX, min_upper: usize::MAX, ..Default::default() };
    assert!(matches!(SecretGenerator::password(16, huge).unwrap_err(), GeneratorError::ImpossibleRules { .. }));
}

#[test]
fn symbols_required_but_empty() {
    let rules = PasswordRules { symbols: String::new(), ..Default::default() };
    assert_eq!(SecretGenerator::password(16, rules).unwrap_err(), GeneratorError::SymbolsRequiredButEmpty);
    let ok = PasswordRules { symbols: String::new(), min_symbols: 0, ..Default::default() };
    let v = gen_str(&SecretGenerator::password(16, ok).unwrap());
    assert!(v.chars().all(|c| c.is_ascii_alphanumeric()), "{v}");
}

#[test]
fn config_unknown_type_and_fields() {
    assert!(toml::from_str::<GeneratorConfig>(r#"type = "emoji""#).is_err());
    assert!(toml::from_str::<GeneratorConfig>("length = 12\ncolour = \"red\"").is_err());
    assert_eq!("emoji".parse::<GeneratorKind>().unwrap_err(), GeneratorError::UnknownType { input: "emoji".into() });
}

#[test]
fn config_field_not_applicable() {
    let cases = [
        ("type = \"uuid\"\nlength = 40", "length", GeneratorKind::Uuid),
        ("type = \"uuid\"\ncharset = \"ab\"", "charset", GeneratorKind::Uuid),
        ("type = \"hex\"\ncharset = \"ab\"", "charset", GeneratorKind::Hex),
        ("type = \"base64url\"\nmin_digits = 1", "min_digits", GeneratorKind::Base64url),
        ("type = \"random\"\nsymbols = \"!\"", "symbols", GeneratorKind::Random),
        ("type = \"password\"\ncharset = \"ab\"", "charset", GeneratorKind::Password),
    ];
    for (text, field, kind) in cases {
        assert_eq!(
            SecretGenerator::from_config(&cfg(text)).unwrap_err(),
            GeneratorError::FieldNotApplicable { field, kind },
            "{text}"
        );
    }
}

#[test]
fn config_builds_each_kind() {
    let g = SecretGenerator::from_config(&cfg("")).unwrap();
    assert_eq!((g.kind(), g.length()), (GeneratorKind::Random, 32));
    let g = SecretGenerator::from_config(&cfg("type = \"random\"\nlength = 12\ncharset = \"xyz\"")).unwrap();
    assert!(gen_str(&g).chars().all(|c| "xyz".contains(c)));
    let g = SecretGenerator::from_config(&cfg("type = \"uuid\"")).unwrap();
    assert_eq!(g.length(), 36);
    let g = SecretGenerator::from_config(&cfg("type = \"hex\"\nlength = 64")).unwrap();
    assert_eq!(gen_str(&g).len(), 64);
    let g = SecretGenerator::from_config(&cfg("type = \"base64url\"\nlength = 43")).unwrap();
    assert_eq!(gen_str(&g).len(), 43);
    let g = SecretGenerator::from_config(&cfg("type = \"password\"\nmin_symbols = 3\nsymbols = \"!?\"")).unwrap();
    let v = gen_str(&g);
    assert!(v.chars().filter(|c| "!?".contains(*c)).count() >= 3, "{v}");
    let json: GeneratorConfig = serde_json::from_str(r#"{"type":"hex","length":16}"#).unwrap();
    assert_eq!(serde_json::from_str::<GeneratorConfig>(&serde_json::to_string(&json).unwrap()).unwrap(), json);
    // Validation errors surface from the config too.
    assert_eq!(
        SecretGenerator::from_config(&cfg("type = \"hex\"\nlength = 4")).unwrap_err(),
        GeneratorError::LengthOutOfRange { length: 4, min: 8, max: 4096 }
    );
}

// ---- output --------------------------------------------------------------------

#[test]
fn outputs_match_charset_and_length() {
    let cases: [(SecretGenerator, &str, usize); 5] = [
        (SecretGenerator::random(40).unwrap(), ALNUM_SYMBOLS, 40),
        (SecretGenerator::with_charset(9, "01").unwrap(), "01", 9),
        (SecretGenerator::hex(64).unwrap(), "0123456789abcdef", 64),
        (SecretGenerator::base64url(43).unwrap(), B64URL, 43),
        (SecretGenerator::password(20, PasswordRules::default()).unwrap(), ALNUM_SYMBOLS, 20),
    ];
    for (g, charset, len) in &cases {
        for _ in 0..50 {
            let v = gen_str(g);
            assert_eq!(v.len(), *len, "{g:?}");
            assert!(v.chars().all(|c| charset.contains(c)), "{g:?}");
        }
    }
    assert!(!ALNUM_SYMBOLS.contains(['"', '\'', '`', '\\', ' ']));
    assert_eq!(ALNUM_SYMBOLS.len(), 62 + DEFAULT_SYMBOLS.len());
}

#[test]
fn uuid_is_v4() {
    let g = SecretGenerator::uuid();
    for _ in 0..50 {
        let v = gen_str(&g);
        let u = uuid::Uuid::parse_str(&v).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(v, u.hyphenated().to_string());
    }
}

#[test]
fn values_are_unique() {
    for g in [SecretGenerator::random(16).unwrap(), SecretGenerator::hex(16).unwrap(), SecretGenerator::uuid()] {
        let set: HashSet<String> = (0..2000).map(|_| gen_str(&g)).collect();
        assert_eq!(set.len(), 2000, "{g:?}");
    }
}

#[test]
fn password_rules_always_hold() {
    let rules = PasswordRules { min_lower: 3, min_upper: 2, min_digits: 4, min_symbols: 3, symbols: "#%+".into() };
    let g = SecretGenerator::password(12, rules).unwrap();
    for _ in 0..500 {
        let v = gen_str(&g);
        assert_eq!(v.len(), 12);
        assert!(v.chars().filter(char::is_ascii_lowercase).count() >= 3, "{v}");
        assert!(v.chars().filter(char::is_ascii_uppercase).count() >= 2, "{v}");
        assert!(v.chars().filter(char::is_ascii_digit).count() >= 4, "{v}");
        assert!(v.chars().filter(|c| "#%+".contains(*c)).count() >= 3, "{v}");
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || "#%+".contains(c)), "{v}");
    }
    // Exactly the minimums: the required characters are shuffled, not in class order.
    let exact = PasswordRules { min_lower: 4, min_upper: 4, min_digits: 0, min_symbols: 0, symbols: String::new() };
    let g = SecretGenerator::password(8, exact).unwrap();
    let first_is_lower = (0..200).filter(|_| gen_str(&g).starts_with(|c: char| c.is_ascii_lowercase())).count();
    assert!((50..150).contains(&first_is_lower), "{first_is_lower}/200 start lower case");
}

// ---- uniformity ----------------------------------------------------------------

/// Chi-square statistic of `counts` against a uniform distribution over `k` cells.
fn chi_square(counts: &BTreeMap<char, u64>, k: usize, n: u64) -> f64 {
    let expected = n as f64 / k as f64;
    let seen: f64 = counts.values().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
    let unseen = (k - counts.len()) as f64 * expected;
    seen + unseen
}

/// The chi-square critical value for `df` degrees of freedom at p = 1e-6
/// (Wilson–Hilferty approximation; z = 4.753).
fn critical(df: f64) -> f64 {
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + 4.753 * a.sqrt()).powi(3)
}

fn counts_of(g: &SecretGenerator, n: u64) -> BTreeMap<char, u64> {
    let mut counts = BTreeMap::new();
    let mut drawn = 0;
    while drawn < n {
        let v = g.generate().unwrap();
        for c in v.expose_secret().chars() {
            *counts.entry(c).or_insert(0) += 1;
        }
        drawn += g.length() as u64;
    }
    counts
}

#[test]
fn chi_square_uniform_over_64_chars() {
    let g = SecretGenerator::base64url(4000).unwrap();
    let n = 200_000;
    let counts = counts_of(&g, n);
    let chi = chi_square(&counts, 64, n);
    let limit = critical(63.0);
    assert!((125.0..140.0).contains(&limit), "critical value sanity: {limit}");
    assert!(chi < limit, "chi-square {chi:.1} >= {limit:.1}: not uniform");
}

#[test]
fn chi_square_uniform_over_default_charset() {
    // 90 characters: 2^32 is not a multiple of 90, so naive `x % 90` would be biased.
    let g = SecretGenerator::random(4000).unwrap();
    let n = 200_000;
    let counts = counts_of(&g, n);
    assert_eq!(counts.len(), 90);
    let chi = chi_square(&counts, 90, n);
    assert!(chi < critical(89.0), "chi-square {chi:.1} >= {:.1}", critical(89.0));
}

#[test]
fn chi_square_detects_modulo_bias() {
    // The test has power: a byte-modulo generator over 90 chars fails it.
    let mut counts = BTreeMap::new();
    let n = 200_000u64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let byte = (x >> 56) as u8;
        let idx = usize::from(byte) % 90;
        *counts.entry(ALNUM_SYMBOLS.as_bytes()[idx] as char).or_insert(0) += 1;
    }
    assert!(chi_square(&counts, 90, n) > critical(89.0));
}

#[test]
fn every_position_is_uniform_and_neighbours_independent() {
    // Several characters come from one random word: each position must be
    // uniform on its own, and positions inside one word (0, 1) and across
    // words (7, 8) independent of each other.
    let g = SecretGenerator::random(32).unwrap();
    let n = 60_000u64;
    let mut at = vec![BTreeMap::<char, u64>::new(); 32];
    // Joint counts of (index / 10) at two positions: 9 x 9 equally likely cells.
    let (mut inside, mut across) = (BTreeMap::<char, u64>::new(), BTreeMap::<char, u64>::new());
    let tenth = |c: char| ALNUM_SYMBOLS.find(c).unwrap() / 10;
    let cell = |a: char, b: char| char::from(b'A' + (tenth(a) * 9 + tenth(b)) as u8);
    for _ in 0..n {
        let v: Vec<char> = gen_str(&g).chars().collect();
        for (i, c) in v.iter().enumerate() {
            *at[i].entry(*c).or_insert(0) += 1;
        }
        *inside.entry(cell(v[0], v[1])).or_insert(0) += 1;
        *across.entry(cell(v[7], v[8])).or_insert(0) += 1;
    }
    for (i, counts) in at.iter().enumerate() {
        let chi = chi_square(counts, 90, n);
        assert!(chi < critical(89.0), "position {i}: chi-square {chi:.1} >= {:.1}", critical(89.0));
    }
    for (name, counts) in [("positions 0 and 1", &inside), ("positions 7 and 8", &across)] {
        let chi = chi_square(counts, 81, n);
        assert!(chi < critical(80.0), "{name}: chi-square {chi:.1} >= {:.1}", critical(80.0));
    }
}

#[test]
fn password_shuffle_is_uniform() {
    // The one required symbol is placed first, then shuffled: every
    // position must be as likely to hold a symbol (a biased shuffle, such
    // as one that never leaves a character in place, is not).
    let rules = PasswordRules { min_lower: 0, min_upper: 0, min_digits: 0, min_symbols: 1, symbols: "!".into() };
    let g = SecretGenerator::password(16, rules).unwrap();
    let mut counts = BTreeMap::<char, u64>::new();
    let mut total = 0;
    for _ in 0..40_000 {
        for (i, c) in gen_str(&g).chars().enumerate() {
            if c == '!' {
                *counts.entry(char::from(b'a' + i as u8)).or_insert(0) += 1;
                total += 1;
            }
        }
    }
    let chi = chi_square(&counts, 16, total);
    assert!(chi < critical(15.0), "chi-square {chi:.1} >= {:.1}", critical(15.0));
}

// ---- no secret in Debug ----------------------------------------------------------

#[test]
fn debug_never_shows_a_value() {
    let g = SecretGenerator::random(32).unwrap();
    let v = g.generate().unwrap();
    let dbg = format!("{g:?} {v:?}");
    assert!(!dbg.contains(v.expose_secret()), "{dbg}");
    assert!(dbg.contains("SecretGenerator") && dbg.contains("length: 32"), "{dbg}");

    let fixed = "hunter2-hunter2-hunter2";
    let f = generator_fn(move || Ok(SecretString::from(fixed.to_owned())));
    assert_eq!(f.generate().unwrap().expose_secret(), fixed);
    assert!(!format!("{f:?}").contains("hunter2"));

    let boxed: Box<dyn GenerateSecret> = Box::new(f);
    assert_eq!(boxed.generate().unwrap().expose_secret(), fixed);
    assert!(!format!("{boxed:?}").contains("hunter2"));

    let c = cfg("type = \"password\"\nlength = 20");
    let pw = SecretGenerator::from_config(&c).unwrap().generate().unwrap();
    assert!(!format!("{c:?}").contains(pw.expose_secret()));
}

#[test]
fn custom_generator_errors_are_typed() {
    let f = generator_fn(|| Err(GeneratorError::Custom("vendor API said no".into())));
    assert_eq!(f.generate().unwrap_err().to_string(), "custom generator failed: vendor API said no");
}

#[test]
fn kinds_round_trip_and_trait_objects_work() {
    for k in [
        GeneratorKind::Random,
        GeneratorKind::Uuid,
        GeneratorKind::Hex,
        GeneratorKind::Base64url,
        GeneratorKind::Password,
    ] {
        assert_eq!(k.to_string().parse::<GeneratorKind>().unwrap(), k);
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
    }
    let shared: std::sync::Arc<dyn GenerateSecret> = std::sync::Arc::new(SecretGenerator::hex(12).unwrap());
    assert_eq!(shared.generate().unwrap().expose_secret().len(), 12);
    let g = SecretGenerator::base64url(10).unwrap();
    assert_eq!((g.kind(), g.length()), (GeneratorKind::Base64url, 10));
}
