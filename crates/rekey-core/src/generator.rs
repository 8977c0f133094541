//! Secret generators: new secret values from the OS CSPRNG.
//!
//! [`SecretGenerator`] covers the built-in kinds (random from a charset,
//! UUID v4, hex, base64url, password with per-class minimums); anything
//! else implements [`GenerateSecret`] or wraps a closure with
//! [`generator_fn`]. Every value is a [`SecretString`], never shown by
//! `Debug`.
//!
//! Randomness comes from the operating system ([`rand::rngs::SysRng`]);
//! a failure of it is [`GeneratorError::Rng`], never a panic. Characters are
//! drawn by rejection sampling, so every character of the charset is equally
//! likely (no modulo bias), and charsets with duplicate characters are
//! rejected because a duplicate would make its character twice as likely.
//!
//! ```
//! use rekey_core::{ExposeSecret, GenerateSecret, SecretGenerator};
//! let g = SecretGenerator::random(32)?;
//! let secret = g.generate()?;
//! assert_eq!(secret.expose_secret().chars().count(), 32);
//! assert!(!format!("{g:?}").contains(secret.expose_secret()));
//! # Ok::<(), rekey_core::GeneratorError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use rand::TryRng;
use rand::rngs::SysRng;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The shortest generated secret, in characters.
pub const MIN_SECRET_LEN: usize = 8;
/// The longest generated secret, in characters.
pub const MAX_SECRET_LEN: usize = 4096;
/// The length used when a configuration gives none.
pub const DEFAULT_SECRET_LEN: usize = 32;
/// Lower-case ASCII letters.
pub const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
/// Upper-case ASCII letters.
pub const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// ASCII digits.
pub const DIGITS: &str = "0123456789";
/// The default symbols: ASCII punctuation without quotes, backslash and
/// backtick, which too often break shells, URLs and configuration files.
pub const DEFAULT_SYMBOLS: &str = "!#$%&()*+,-./:;<=>?@[]^_{|}~";
const HEX: &str = "0123456789abcdef";
const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Why a generator cannot be built, or could not generate.
///
/// No variant holds a generated value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GeneratorError {
    /// The requested length is outside [`MIN_SECRET_LEN`]`..=`[`MAX_SECRET_LEN`].
    #[error("length: {length} is out of range {min}..={max}")]
    LengthOutOfRange {
        /// The length requested.
        length: usize,
        /// The shortest accepted.
        min: usize,
        /// The longest accepted.
        max: usize,
    },
    /// The charset is empty.
    #[error("charset: the charset is empty")]
    EmptyCharset,
    /// The charset has a single character, so every output would be the same.
    #[error("charset: the charset has a single character; a secret drawn from it would be predictable")]
    CharsetTooSmall,
    /// A character appears twice in the charset (it would be twice as likely).
    #[error("charset: {ch:?} appears more than once (duplicates make a character more likely than the others)")]
    DuplicateCharInCharset {
        /// The repeated character.
        ch: char,
    },
    /// The charset has a character that is not printable, non-space ASCII.
    #[error("charset: {ch:?} is not allowed (only printable ASCII, no spaces or control characters)")]
    InvalidCharInCharset {
        /// The character.
        ch: char,
    },
    /// A password symbol is not ASCII punctuation.
    #[error("symbols: {ch:?} is not an ASCII punctuation character")]
    InvalidSymbol {
        /// The character.
        ch: char,
    },
    /// The password rules require more characters than the length.
    #[error("password rules require {required} characters but the length is {length}")]
    ImpossibleRules {
        /// The sum of the per-class minimums.
        required: usize,
        /// The length.
        length: usize,
    },
    /// `min_symbols` is above zero but the symbol set is empty.
    #[error("symbols: min_symbols is above zero but the symbol set is empty")]
    SymbolsRequiredButEmpty,
    /// The generator type in a configuration is unknown.
    #[error("type: unknown generator type {input:?}; expected random, uuid, hex, base64url or password")]
    UnknownType {
        /// The type given.
        input: String,
    },
    /// A configuration sets a field that the generator type does not use.
    #[error("{field}: not used by the {kind} generator")]
    FieldNotApplicable {
        /// The field.
        field: &'static str,
        /// The generator type.
        kind: GeneratorKind,
    },
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
    /// A custom generator failed.
    #[error("custom generator failed: {0}")]
    Custom(String),
    /// A value supplied instead of a generated one does not meet the
    /// generator's constraints. The reason never contains the value.
    #[error("the supplied value {reason}")]
    InvalidValue {
        /// What is wrong with it (length, a character outside the charset,
        /// a missing character class); never the value or a part of it.
        reason: String,
    },
}

/// Something that makes new secret values.
///
/// Implement it for custom formats (or use [`generator_fn`]). `Debug` must
/// never show a generated value.
pub trait GenerateSecret: fmt::Debug + Send + Sync + 'static {
    /// Makes a new secret value.
    fn generate(&self) -> Result<SecretString, GeneratorError>;

    /// Checks a value supplied instead of a generated one (a custom or
    /// emergency value) against the constraints this generator's own values
    /// meet, so that a supplied value is never weaker or differently shaped.
    /// [`GeneratorError::InvalidValue`] says why, never with the value.
    ///
    /// The default refuses an empty value and one with control characters;
    /// [`SecretGenerator`] also checks length, charset and character classes.
    fn check(&self, value: &SecretString) -> Result<(), GeneratorError> {
        check_basic(value.expose_secret())
    }
}

impl<T: GenerateSecret + ?Sized> GenerateSecret for Box<T> {
    fn generate(&self) -> Result<SecretString, GeneratorError> {
        (**self).generate()
    }
    fn check(&self, value: &SecretString) -> Result<(), GeneratorError> {
        (**self).check(value)
    }
}

impl<T: GenerateSecret + ?Sized> GenerateSecret for Arc<T> {
    fn generate(&self) -> Result<SecretString, GeneratorError> {
        (**self).generate()
    }
    fn check(&self, value: &SecretString) -> Result<(), GeneratorError> {
        (**self).check(value)
    }
}

fn invalid_value(reason: impl Into<String>) -> GeneratorError {
    GeneratorError::InvalidValue { reason: reason.into() }
}

/// Not empty, no control characters.
fn check_basic(value: &str) -> Result<(), GeneratorError> {
    if value.is_empty() {
        return Err(invalid_value("is empty"));
    }
    if let Some(pos) = value.chars().position(char::is_control) {
        return Err(invalid_value(format!("has a control character at position {}", pos + 1)));
    }
    Ok(())
}

/// A [`GenerateSecret`] made from a closure; see [`generator_fn`].
pub struct FnGenerator<F> {
    f: F,
}

impl<F> fmt::Debug for FnGenerator<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnGenerator { .. }")
    }
}

impl<F> GenerateSecret for FnGenerator<F>
where
    F: Fn() -> Result<SecretString, GeneratorError> + Send + Sync + 'static,
{
    fn generate(&self) -> Result<SecretString, GeneratorError> {
        (self.f)()
    }
}

/// Wraps a closure as a [`GenerateSecret`]; its `Debug` shows nothing of it.
///
/// ```
/// use rekey_core::{generator_fn, ExposeSecret, GenerateSecret, SecretGenerator, SecretString};
/// let inner = SecretGenerator::hex(16)?;
/// let g = generator_fn(move || {
///     let hex = inner.generate()?;
///     Ok(SecretString::from(format!("sk_live_{}", hex.expose_secret())))
/// });
/// assert!(g.generate()?.expose_secret().starts_with("sk_live_"));
/// assert_eq!(format!("{g:?}"), "FnGenerator { .. }");
/// # Ok::<(), rekey_core::GeneratorError>(())
/// ```
pub fn generator_fn<F>(f: F) -> FnGenerator<F>
where
    F: Fn() -> Result<SecretString, GeneratorError> + Send + Sync + 'static,
{
    FnGenerator { f }
}

/// The built-in generator kinds (the `type` of a [`GeneratorConfig`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// Random characters from a charset.
    #[default]
    Random,
    /// A UUID v4 (36 characters, hyphenated, lower case).
    Uuid,
    /// Lower-case hexadecimal characters.
    Hex,
    /// Characters of the URL-safe base64 alphabet (`A-Z a-z 0-9 - _`).
    Base64url,
    /// A password with minimum counts per character class.
    Password,
}

impl GeneratorKind {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Uuid => "uuid",
            Self::Hex => "hex",
            Self::Base64url => "base64url",
            Self::Password => "password",
        }
    }
}

impl fmt::Display for GeneratorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for GeneratorKind {
    type Err = GeneratorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        [Self::Random, Self::Uuid, Self::Hex, Self::Base64url, Self::Password]
            .into_iter()
            .find(|k| k.as_str() == t)
            .ok_or_else(|| GeneratorError::UnknownType { input: s.chars().take(40).collect() })
    }
}

/// Minimum counts per character class for [`SecretGenerator::password`].
///
/// The characters not required by a minimum are drawn from the union of
/// lower case, upper case, digits and `symbols`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordRules {
    /// At least this many lower-case letters.
    pub min_lower: usize,
    /// At least this many upper-case letters.
    pub min_upper: usize,
    /// At least this many digits.
    pub min_digits: usize,
    /// At least this many symbols.
    pub min_symbols: usize,
    /// The symbol set (ASCII punctuation, no duplicates; may be empty when
    /// `min_symbols` is 0, for passwords of letters and digits only).
    pub symbols: String,
}

impl Default for PasswordRules {
    /// At least one of each class; symbols [`DEFAULT_SYMBOLS`].
    fn default() -> Self {
        Self { min_lower: 1, min_upper: 1, min_digits: 1, min_symbols: 1, symbols: DEFAULT_SYMBOLS.to_owned() }
    }
}

/// A built-in secret generator; see the [module docs](self).
///
/// ```
/// use rekey_core::{ExposeSecret, GenerateSecret, PasswordRules, SecretGenerator};
/// let uuid = SecretGenerator::uuid().generate()?;
/// assert_eq!(uuid.expose_secret().len(), 36);
/// let pw = SecretGenerator::password(16, PasswordRules { min_digits: 4, ..Default::default() })?;
/// let v = pw.generate()?;
/// assert!(v.expose_secret().chars().filter(char::is_ascii_digit).count() >= 4);
/// assert!(SecretGenerator::hex(4).is_err()); // shorter than 8
/// # Ok::<(), rekey_core::GeneratorError>(())
/// ```
#[derive(Clone)]
pub struct SecretGenerator {
    kind: GeneratorKind,
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Charset {
        chars: Vec<u8>,
        length: usize,
    },
    Uuid,
    /// `union` is every class's characters, drawn from beyond the minimums.
    Password {
        length: usize,
        classes: [(Vec<u8>, usize); 4],
        union: Vec<u8>,
    },
}

impl fmt::Debug for SecretGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SecretGenerator");
        d.field("kind", &self.kind);
        match &self.inner {
            Inner::Charset { chars, length } => {
                d.field("length", length).field("charset_size", &chars.len());
            }
            Inner::Uuid => {}
            Inner::Password { length, classes, .. } => {
                let mins: Vec<usize> = classes.iter().map(|(_, m)| *m).collect();
                d.field("length", length).field("min_lower_upper_digits_symbols", &mins);
            }
        }
        d.finish()
    }
}

fn check_length(length: usize) -> Result<(), GeneratorError> {
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&length) {
        Ok(())
    } else {
        Err(GeneratorError::LengthOutOfRange { length, min: MIN_SECRET_LEN, max: MAX_SECRET_LEN })
    }
}

/// Checks a charset: printable non-space ASCII, no duplicates.
fn charset_bytes(charset: &str) -> Result<Vec<u8>, GeneratorError> {
    let mut seen = [false; 128];
    let mut out = Vec::with_capacity(charset.len());
    for ch in charset.chars() {
        if !ch.is_ascii_graphic() {
            return Err(GeneratorError::InvalidCharInCharset { ch });
        }
        let b = ch as u8;
        let slot = seen.get_mut(usize::from(b)).ok_or(GeneratorError::InvalidCharInCharset { ch })?;
        if *slot {
            return Err(GeneratorError::DuplicateCharInCharset { ch });
        }
        *slot = true;
        out.push(b);
    }
    Ok(out)
}

impl SecretGenerator {
    /// Random characters from the default charset (ASCII letters, digits and
    /// [`DEFAULT_SYMBOLS`]).
    pub fn random(length: usize) -> Result<Self, GeneratorError> {
        Self::with_charset(length, &format!("{LOWERCASE}{UPPERCASE}{DIGITS}{DEFAULT_SYMBOLS}"))
    }

    /// Random characters from `charset`: printable ASCII without spaces,
    /// at least two characters, no duplicates.
    pub fn with_charset(length: usize, charset: &str) -> Result<Self, GeneratorError> {
        Self::charset_kind(GeneratorKind::Random, length, charset)
    }

    fn charset_kind(kind: GeneratorKind, length: usize, charset: &str) -> Result<Self, GeneratorError> {
        check_length(length)?;
        let chars = charset_bytes(charset)?;
        match chars.len() {
            0 => Err(GeneratorError::EmptyCharset),
            1 => Err(GeneratorError::CharsetTooSmall),
            _ => Ok(Self { kind, inner: Inner::Charset { chars, length } }),
        }
    }

    /// A UUID v4, hyphenated and lower case (always 36 characters).
    pub fn uuid() -> Self {
        Self { kind: GeneratorKind::Uuid, inner: Inner::Uuid }
    }

    /// `length` lower-case hexadecimal characters.
    pub fn hex(length: usize) -> Result<Self, GeneratorError> {
        Self::charset_kind(GeneratorKind::Hex, length, HEX)
    }

    /// `length` characters of the URL-safe base64 alphabet (no padding).
    pub fn base64url(length: usize) -> Result<Self, GeneratorError> {
        Self::charset_kind(GeneratorKind::Base64url, length, BASE64URL)
    }

    /// A password of `length` characters meeting `rules`.
    pub fn password(length: usize, rules: PasswordRules) -> Result<Self, GeneratorError> {
        check_length(length)?;
        for ch in rules.symbols.chars() {
            if !ch.is_ascii_punctuation() {
                return Err(GeneratorError::InvalidSymbol { ch });
            }
        }
        let symbols = charset_bytes(&rules.symbols)?;
        if rules.min_symbols > 0 && symbols.is_empty() {
            return Err(GeneratorError::SymbolsRequiredButEmpty);
        }
        let required = [rules.min_lower, rules.min_upper, rules.min_digits, rules.min_symbols]
            .into_iter()
            .try_fold(0usize, usize::checked_add)
            .unwrap_or(usize::MAX);
        if required > length {
            return Err(GeneratorError::ImpossibleRules { required, length });
        }
        let classes = [
            (LOWERCASE.as_bytes().to_vec(), rules.min_lower),
            (UPPERCASE.as_bytes().to_vec(), rules.min_upper),
            (DIGITS.as_bytes().to_vec(), rules.min_digits),
            (symbols, rules.min_symbols),
        ];
        let union = classes.iter().flat_map(|(c, _)| c.iter().copied()).collect();
        Ok(Self { kind: GeneratorKind::Password, inner: Inner::Password { length, classes, union } })
    }

    /// Builds the generator a configuration describes.
    pub fn from_config(config: &GeneratorConfig) -> Result<Self, GeneratorError> {
        config.build()
    }

    /// The generator's kind.
    pub fn kind(&self) -> GeneratorKind {
        self.kind
    }

    /// The length of every generated value, in characters.
    pub fn length(&self) -> usize {
        match &self.inner {
            Inner::Charset { length, .. } | Inner::Password { length, .. } => *length,
            Inner::Uuid => 36,
        }
    }
}

impl GenerateSecret for SecretGenerator {
    /// A supplied value must look like one this generator makes: exactly
    /// [`length`](SecretGenerator::length) characters, all from the charset
    /// (for passwords: from the character classes, with each class's
    /// minimum), or a hyphenated UUID for the `uuid` kind.
    fn check(&self, value: &SecretString) -> Result<(), GeneratorError> {
        let v = value.expose_secret();
        check_basic(v)?;
        let chars = v.chars().count();
        if chars != self.length() {
            return Err(invalid_value(format!(
                "is {chars} characters long; the secret's {} generator makes {} characters",
                self.kind.as_str(),
                self.length()
            )));
        }
        let outside = |allowed: &dyn Fn(u8) -> bool| {
            v.chars().position(|c| !u8::try_from(u32::from(c)).is_ok_and(allowed)).map(|pos| {
                invalid_value(format!(
                    "has a character outside the {} generator's charset at position {}",
                    self.kind.as_str(),
                    pos + 1
                ))
            })
        };
        match &self.inner {
            Inner::Charset { chars, .. } => outside(&|b| chars.contains(&b)).map_or(Ok(()), Err),
            Inner::Uuid => match uuid::Uuid::try_parse(v) {
                Ok(u) if u.hyphenated().to_string() == v.to_ascii_lowercase() => Ok(()),
                _ => Err(invalid_value("is not a hyphenated UUID, which the secret's uuid generator makes")),
            },
            Inner::Password { classes, .. } => {
                if let Some(e) = outside(&|b| classes.iter().any(|(c, _)| c.contains(&b))) {
                    return Err(e);
                }
                const NAMES: [&str; 4] = ["lower-case letters", "upper-case letters", "digits", "symbols"];
                for ((set, min), name) in classes.iter().zip(NAMES) {
                    let n = v.bytes().filter(|b| set.contains(b)).count();
                    if n < *min {
                        return Err(invalid_value(format!(
                            "has {n} {name}; the secret's password generator requires at least {min}"
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    fn generate(&self) -> Result<SecretString, GeneratorError> {
        let mut out: Vec<u8> = Vec::with_capacity(self.length());
        let filled = POOL.with(|pool| {
            let mut pool = pool
                .try_borrow_mut()
                .map_err(|_| GeneratorError::Rng("internal error: the random pool is in use".into()))?;
            pool.forget_if_forked();
            match &self.inner {
                Inner::Charset { chars, length } => fill_from(&mut pool, &mut out, chars, *length),
                Inner::Uuid => fill_uuid(&mut pool, &mut out),
                Inner::Password { length, classes, union } => {
                    fill_password(&mut pool, &mut out, classes, union, *length)
                }
            }
        });
        if let Err(e) = filled {
            out.zeroize();
            return Err(e);
        }
        // Every byte pushed is printable ASCII, so this never fails.
        match String::from_utf8(out) {
            Ok(s) => Ok(SecretString::from(s)),
            Err(e) => {
                let mut bytes = e.into_bytes();
                bytes.zeroize();
                Err(GeneratorError::Rng("internal error: generated bytes are not UTF-8".into()))
            }
        }
    }
}

// Drawing characters and swap positions with no modulo bias and few random
// bytes: as many uniform digits as fit are taken from one random 64-bit
// word `x`. With `m` the product of their radices, `floor(x * m / 2^64)` is
// uniform in `0..m` once the words that would favour some results are
// redrawn ([`OsPool::word_below`]), so its mixed-radix digits are uniform and
// independent. They are read most significant first by multiplying the
// fraction `x / 2^64` by each radix in turn, keeping the low half: no
// division.

/// The most a product of radices packed into one word may reach: 2^58, so
/// a word is redrawn with probability below 2^-6.
const PACK_LIMIT: u64 = 1 << 58;

/// Appends `n` characters drawn uniformly from `chars`.
fn fill_from(pool: &mut OsPool, out: &mut Vec<u8>, chars: &[u8], n: usize) -> Result<(), GeneratorError> {
    if n == 0 {
        return Ok(());
    }
    let radix = chars.len() as u64;
    if radix == 0 || radix > PACK_LIMIT {
        return Err(GeneratorError::Rng("internal error: charset size out of range".into()));
    }
    // How many characters one word gives, and `m`, the product of their radices.
    let (mut per_word, mut m) = (1, radix);
    while let Some(p) = m.checked_mul(radix).filter(|p| *p <= PACK_LIMIT && radix > 1) {
        (per_word, m) = (per_word + 1, p);
    }
    let start = out.len();
    out.resize(start + n, 0);
    let dst = out.get_mut(start..).ok_or_else(|| GeneratorError::Rng("internal error: output bounds".into()))?;
    for chunk in dst.chunks_mut(per_word) {
        let mut x = pool.word_below(m)?;
        for slot in chunk {
            let p = u128::from(x) * u128::from(radix);
            let c = chars.get((p >> 64) as usize).copied();
            *slot = c.ok_or_else(|| GeneratorError::Rng("internal error: index out of range".into()))?;
            x = p as u64;
        }
    }
    Ok(())
}

fn fill_uuid(pool: &mut OsPool, out: &mut Vec<u8>) -> Result<(), GeneratorError> {
    let mut bytes = [0u8; 16];
    pool.take(&mut bytes)?;
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    bytes.zeroize();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(uuid.hyphenated().encode_lower(&mut buf).as_bytes());
    buf.zeroize();
    Ok(())
}

fn fill_password(
    pool: &mut OsPool,
    out: &mut Vec<u8>,
    classes: &[(Vec<u8>, usize); 4],
    union: &[u8],
    length: usize,
) -> Result<(), GeneratorError> {
    for (chars, min) in classes {
        fill_from(pool, out, chars, *min)?;
    }
    let rest = length.saturating_sub(out.len());
    fill_from(pool, out, union, rest)?;
    shuffle(pool, out)
}

/// Fisher–Yates with unbiased indices: from the last position `r` down to
/// 1, swaps `r` with a uniform one of `0..=r`.
fn shuffle(pool: &mut OsPool, out: &mut [u8]) -> Result<(), GeneratorError> {
    let mut top = out.len().saturating_sub(1);
    while top >= 1 {
        // Positions top down to low take their indices from one word.
        let (mut low, mut m) = (top, top as u64 + 1);
        while let Some(p) = m.checked_mul(low as u64).filter(|p| low > 1 && *p <= PACK_LIMIT) {
            (low, m) = (low - 1, p);
        }
        let mut x = pool.word_below(m)?;
        for r in (low..=top).rev() {
            let p = u128::from(x) * u128::from(r as u64 + 1);
            match usize::try_from(p >> 64) {
                Ok(j) if j <= r => out.swap(r, j),
                _ => return Err(GeneratorError::Rng("internal error: index out of range".into())),
            }
            x = p as u64;
        }
        top = low - 1;
    }
    Ok(())
}

/// Bytes read from the OS CSPRNG in 4 KiB blocks, one pool per thread, so a
/// generation costs a system call only every hundred-odd secrets. Every byte
/// is handed out once and wiped as it is taken; the rest is wiped when the
/// thread ends.
///
/// A forked child inherits a copy of its parent's pool: the pool remembers
/// the process that filled it and a child throws the copy away before it
/// draws anything, so parent and child never hand out the same bytes.
struct OsPool {
    buf: [u8; OS_POOL_LEN],
    pos: usize,
    filled_by: FilledBy,
}

/// How a pool tells whether the process forked since it was filled.
#[derive(Debug)]
enum FilledBy {
    /// Never filled.
    Nobody,
    /// A `pthread_atfork` child handler counts forks: the check is one
    /// atomic load (a `getpid` system call costs as much as the rest of a
    /// generation on a virtual machine).
    #[cfg(unix)]
    ForkCount(forkguard::atfork::Guard),
    /// The filling process's id, where the handler could not be
    /// registered (or on a platform without it).
    Pid(u32),
}

impl FilledBy {
    fn this_process() -> Self {
        #[cfg(unix)]
        if let Ok(guard) = forkguard::atfork::Guard::try_new() {
            return Self::ForkCount(guard);
        }
        Self::Pid(std::process::id())
    }

    /// Whether the process that filled the pool is not this one.
    fn forked(&mut self) -> bool {
        match self {
            Self::Nobody => false,
            #[cfg(unix)]
            Self::ForkCount(guard) => guard.detected_fork(),
            Self::Pid(pid) => *pid != std::process::id(),
        }
    }
}

const OS_POOL_LEN: usize = 4096;

thread_local! {
    static POOL: std::cell::RefCell<OsPool> =
        const { std::cell::RefCell::new(OsPool { buf: [0; OS_POOL_LEN], pos: OS_POOL_LEN, filled_by: FilledBy::Nobody }) };
}

impl OsPool {
    fn refill(&mut self) -> Result<(), GeneratorError> {
        SysRng.try_fill_bytes(&mut self.buf[..]).map_err(|e| GeneratorError::Rng(e.to_string()))?;
        self.pos = 0;
        self.filled_by = FilledBy::this_process();
        Ok(())
    }

    /// Drops what is left when this process did not fill the pool (a
    /// forked child's copy of its parent's bytes).
    fn forget_if_forked(&mut self) {
        if self.pos < OS_POOL_LEN && self.filled_by.forked() {
            self.buf.zeroize();
            self.pos = OS_POOL_LEN;
        }
    }

    /// The next 8 bytes, as a little-endian word.
    fn word(&mut self) -> Result<u64, GeneratorError> {
        let mut w = [0u8; 8];
        match self.buf.get_mut(self.pos..self.pos + 8) {
            Some(src) => {
                w.copy_from_slice(src);
                src.zeroize();
                self.pos += 8;
            }
            None => self.take(&mut w)?,
        }
        Ok(u64::from_le_bytes(w))
    }

    /// A random word `x` with `floor(x * m / 2^64)` uniform in `0..m`
    /// (`m >= 1`): words that would favour some results are redrawn
    /// (Lemire's method: when `x * m mod 2^64 < 2^64 mod m`).
    fn word_below(&mut self, m: u64) -> Result<u64, GeneratorError> {
        loop {
            let x = self.word()?;
            let low = (u128::from(x) * u128::from(m)) as u64;
            // 2^64 mod m is below m: compute it only when it can matter.
            if low >= m || low >= m.wrapping_neg() % m {
                return Ok(x);
            }
        }
    }

    /// Fills `dst`, wiping what it takes from the pool.
    fn take(&mut self, dst: &mut [u8]) -> Result<(), GeneratorError> {
        let mut off = 0;
        while off < dst.len() {
            if self.pos >= OS_POOL_LEN {
                self.refill()?;
            }
            let n = (OS_POOL_LEN - self.pos).min(dst.len() - off);
            let (Some(src), Some(out)) = (self.buf.get_mut(self.pos..self.pos + n), dst.get_mut(off..off + n)) else {
                return Err(GeneratorError::Rng("internal error: random pool bounds".into()));
            };
            out.copy_from_slice(src);
            src.zeroize();
            self.pos += n;
            off += n;
        }
        Ok(())
    }
}

impl Drop for OsPool {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// The configuration form of a [`SecretGenerator`].
///
/// `type` is `random` (default; `length`, `charset`), `uuid` (no other
/// field), `hex` / `base64url` (`length`), or `password` (`length`,
/// `min_lower`, `min_upper`, `min_digits`, `min_symbols`, `symbols`; each
/// minimum defaults to 1). `length` defaults to [`DEFAULT_SECRET_LEN`].
/// Unknown fields, and fields the type does not use, are errors.
///
/// ```
/// use rekey_core::{GeneratorConfig, SecretGenerator};
/// let cfg: GeneratorConfig = toml::from_str(r#"
///     type = "password"
///     length = 24
///     min_symbols = 2
/// "#).unwrap();
/// let g = SecretGenerator::from_config(&cfg)?;
/// assert_eq!(g.length(), 24);
/// let bad: GeneratorConfig = toml::from_str(r#"type = "uuid"
///     length = 12"#).unwrap();
/// assert!(SecretGenerator::from_config(&bad).is_err());
/// # Ok::<(), rekey_core::GeneratorError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// The generator kind.
    #[serde(rename = "type", default)]
    pub kind: GeneratorKind,
    /// The length in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// The charset (`random` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    /// Minimum lower-case letters (`password` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lower: Option<usize>,
    /// Minimum upper-case letters (`password` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_upper: Option<usize>,
    /// Minimum digits (`password` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_digits: Option<usize>,
    /// Minimum symbols (`password` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_symbols: Option<usize>,
    /// The symbol set (`password` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<String>,
}

impl GeneratorConfig {
    /// Validates the configuration and builds the generator.
    pub fn build(&self) -> Result<SecretGenerator, GeneratorError> {
        let kind = self.kind;
        let not_for = |field: &'static str, set: bool| {
            if set { Err(GeneratorError::FieldNotApplicable { field, kind }) } else { Ok(()) }
        };
        let password_fields = [
            ("min_lower", self.min_lower.is_some()),
            ("min_upper", self.min_upper.is_some()),
            ("min_digits", self.min_digits.is_some()),
            ("min_symbols", self.min_symbols.is_some()),
            ("symbols", self.symbols.is_some()),
        ];
        if kind != GeneratorKind::Password {
            for (field, set) in password_fields {
                not_for(field, set)?;
            }
        }
        if kind != GeneratorKind::Random {
            not_for("charset", self.charset.is_some())?;
        }
        let length = self.length.unwrap_or(DEFAULT_SECRET_LEN);
        match kind {
            GeneratorKind::Random => match &self.charset {
                Some(cs) => SecretGenerator::with_charset(length, cs),
                None => SecretGenerator::random(length),
            },
            GeneratorKind::Uuid => {
                not_for("length", self.length.is_some())?;
                Ok(SecretGenerator::uuid())
            }
            GeneratorKind::Hex => SecretGenerator::hex(length),
            GeneratorKind::Base64url => SecretGenerator::base64url(length),
            GeneratorKind::Password => {
                let d = PasswordRules::default();
                let rules = PasswordRules {
                    min_lower: self.min_lower.unwrap_or(d.min_lower),
                    min_upper: self.min_upper.unwrap_or(d.min_upper),
                    min_digits: self.min_digits.unwrap_or(d.min_digits),
                    min_symbols: self.min_symbols.unwrap_or(d.min_symbols),
                    symbols: self.symbols.clone().unwrap_or(d.symbols),
                };
                SecretGenerator::password(length, rules)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forked child's copy of its parent's pool (filled by another
    /// process) is thrown away before anything is drawn from it; the
    /// filling process's own pool is kept.
    #[test]
    fn a_pool_filled_by_another_process_is_not_used() {
        let mut pool = OsPool { buf: [0; OS_POOL_LEN], pos: OS_POOL_LEN, filled_by: FilledBy::Nobody };
        assert!(pool.refill().is_ok());
        #[cfg(unix)]
        assert!(matches!(pool.filled_by, FilledBy::ForkCount(_)), "{:?}", pool.filled_by);
        pool.forget_if_forked();
        assert_eq!(pool.pos, 0, "this process's own bytes are kept");

        // What the fork count says in a child, told by the other check.
        pool.filled_by = FilledBy::Pid(std::process::id().wrapping_add(1));
        pool.forget_if_forked();
        assert_eq!(pool.pos, OS_POOL_LEN, "another process's bytes are never handed out");
        assert!(pool.buf.iter().all(|b| *b == 0), "and they are wiped");
        let mut w = [0u8; 8];
        assert!(pool.take(&mut w).is_ok());
        assert!(!pool.filled_by.forked(), "drawing refills from the OS first, as this process");
        pool.filled_by = FilledBy::Pid(std::process::id());
        assert!(!pool.filled_by.forked());
    }
}
