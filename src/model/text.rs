//! Which characters in typed text cannot be seen: the one rule that `EmailAddress` and
//! `Interests` refuse them by, each with its own words.
//!
//! Not for: whitespace handling (each type decides what a space means to it) or anything
//! about what the text says.

/// A kind of character that changes or hides text without showing itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unseen {
    /// Bidirectional embeddings, overrides, isolates and marks: they reorder what is shown.
    Bidi,
    /// Zero-width space and joiners, the word joiner, the byte order mark.
    ZeroWidth,
    /// Other default-ignorable code points that render as nothing: fillers, variation
    /// selectors, the combining grapheme joiner.
    Invisible,
    /// A control character (general category Cc), ASCII ones included.
    Control,
    /// Any other format character (general category Cf): soft hyphens, tags…
    Format,
    /// A space, line or paragraph separator (Zs, Zl, Zp) other than the ASCII space.
    Space,
}

impl Unseen {
    /// The character's kind in words, for an error message.
    pub fn what(self) -> &'static str {
        match self {
            Unseen::Bidi => "a bidirectional text control",
            Unseen::ZeroWidth => "a zero-width character",
            Unseen::Invisible => "an invisible character",
            Unseen::Control | Unseen::Format => "an invisible formatting character",
            Unseen::Space => "a non-ASCII space",
        }
    }
}

/// What kind of unseen character `c` is, if it is one.
pub fn unseen(c: char) -> Option<Unseen> {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    if c.is_ascii() {
        return c.is_ascii_control().then_some(Unseen::Control);
    }
    match c {
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => {
            return Some(Unseen::Bidi);
        }
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}' => {
            return Some(Unseen::ZeroWidth);
        }
        '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{180B}'..='\u{180D}'
        | '\u{180F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FFA0}'
        | '\u{E0100}'..='\u{E01EF}' => return Some(Unseen::Invisible),
        _ => {}
    }
    match c.general_category() {
        G::Control => Some(Unseen::Control),
        G::Format => Some(Unseen::Format),
        G::SpaceSeparator | G::LineSeparator | G::ParagraphSeparator => Some(Unseen::Space),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_and_text_is_not() {
        for (c, kind) in [
            ('\u{202E}', Unseen::Bidi),
            ('\u{061C}', Unseen::Bidi),
            ('\u{200B}', Unseen::ZeroWidth),
            ('\u{FEFF}', Unseen::ZeroWidth),
            ('\u{FE0F}', Unseen::Invisible),
            ('\u{7}', Unseen::Control),
            ('\u{9F}', Unseen::Control),
            ('\u{AD}', Unseen::Format),
            ('\u{E0041}', Unseen::Format),
            ('\u{A0}', Unseen::Space),
            ('\u{2028}', Unseen::Space),
        ] {
            assert_eq!(unseen(c), Some(kind), "U+{:04X}", c as u32);
        }
        for c in "ab Z9-@.ö量é".chars() {
            assert_eq!(unseen(c), None, "{c}");
        }
    }
}
