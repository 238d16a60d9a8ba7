//! Names people give things: an app's [`DisplayName`] and a token's [`TokenName`]. Both are
//! trimmed, non-empty, printable and bounded, so a stored name never holds a control
//! character that would garble a terminal or a log line, nor a bidirectional control that
//! would make it read as something else (`admin\u{202e}nimda`), and never consists only of
//! invisible characters (zero-width spaces, joiners, format characters).

use std::sync::Arc;

use crate::error::{ParseError, What};

/// The longest app display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 200;
/// The longest token name, in characters.
pub const MAX_TOKEN_NAME: usize = 100;

/// Trims `s` and checks it is 1 to `max` printable characters, without bidirectional
/// controls, and with at least one visible character.
fn label(what: What, s: &str, max: usize) -> Result<Arc<str>, ParseError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(ParseError::new(what, s, format!("must be 1 to {max} printable characters")));
    }
    if let Some(c) = t.chars().find(|&c| is_bidi_control(c)) {
        return Err(ParseError::new(
            what,
            s,
            format!("must not contain the bidirectional control U+{:04X}, which reorders how text reads", c as u32),
        ));
    }
    if t.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(ParseError::new(what, s, "must have a visible character, not only invisible or format characters"));
    }
    Ok(Arc::from(t))
}

/// The bidirectional controls: embeddings and overrides (U+202A–U+202E), isolates
/// (U+2066–U+2069) and the directional marks (U+200E, U+200F, U+061C). They change the order
/// in which the text around them is displayed, so a name holding one can show as another.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that show nothing on their own: Unicode's format characters (general category
/// `Cf`, as of Unicode 15.1: zero-width spaces and joiners, word joiners, the byte order mark,
/// soft hyphens, tags, ...) and the blank letters and selectors that render as nothing (Hangul
/// fillers, the Braille blank, variation selectors, the combining grapheme joiner). A name made
/// only of these and whitespace looks empty.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        // General category Cf.
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
            // Blank letters and invisible marks outside Cf.
            | '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180D}'
            | '\u{180F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// An app's name as people read it, e.g. `Notes`: 1 to [`MAX_DISPLAY_NAME`] printable
/// characters, surrounding whitespace trimmed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DisplayName(Arc<str>);

impl DisplayName {
    /// Parses a display name (trimming it).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        label(What::DisplayName, s, MAX_DISPLAY_NAME).map(DisplayName)
    }
}

/// A token's name, e.g. `ci-notes`: what the audit log shows as the actor. 1 to
/// [`MAX_TOKEN_NAME`] printable characters, surrounding whitespace trimmed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenName(Arc<str>);

impl TokenName {
    /// Parses a token name (trimming it).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        label(What::TokenName, s, MAX_TOKEN_NAME).map(TokenName)
    }
}

crate::error::string_newtype!(DisplayName);
crate::error::string_newtype!(TokenName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_printable_and_bounded() {
        assert_eq!(DisplayName::parse("  Notes ").unwrap().as_str(), "Notes");
        assert_eq!(DisplayName::parse(&"n".repeat(200)).unwrap().as_str().len(), 200);
        assert_eq!(DisplayName::parse("笔记").unwrap().as_str(), "笔记");
        for bad in ["", "   ", "a\nb", "tab\there", "\u{7}"] {
            let e = DisplayName::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid display name") && e.contains("1 to 200 printable"), "{bad:?}: {e}");
        }
        assert!(DisplayName::parse(&"n".repeat(201)).is_err());
        assert_eq!(TokenName::parse(&"t".repeat(100)).unwrap().as_str().len(), 100);
        let e = TokenName::parse(&"t".repeat(101)).unwrap_err().to_string();
        assert!(e.starts_with("invalid token name") && e.contains("1 to 100 printable"), "{e}");
        for fine in ["Notes\u{200D}Pro", "👩\u{200D}💻 dev", "ناتس", "שלום", "a\u{00AD}b"] {
            assert_eq!(
                DisplayName::parse(fine).unwrap().as_str(),
                fine,
                "joiners and RTL scripts inside a name are fine"
            );
        }
        let parsed: DisplayName = serde_json::from_str("\" Notes\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"Notes\"");
        assert!(serde_json::from_str::<TokenName>("\"\"").is_err());
    }

    #[test]
    fn bidi_controls_are_refused_and_invisible_only_names_too() {
        for bidi in ["admin\u{202E}nimda", "\u{202A}x", "a\u{202B}", "b\u{202C}", "c\u{202D}", "\u{2066}ci\u{2069}"] {
            let e = TokenName::parse(bidi).unwrap_err().to_string();
            assert!(e.contains("bidirectional control U+"), "{bidi:?}: {e}");
        }
        for mark in ['\u{200E}', '\u{200F}', '\u{061C}', '\u{2067}', '\u{2068}'] {
            assert!(DisplayName::parse(&format!("Notes{mark}")).is_err(), "{mark:?}");
        }
        for blank in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            " \u{2060} ",
            "\u{FEFF}",
            "\u{3164}",
            "\u{2800}\u{00A0}",
            "\u{E0041}",
        ] {
            let e = DisplayName::parse(blank).unwrap_err().to_string();
            assert!(e.contains("printable") || e.contains("visible character"), "{blank:?}: {e}");
        }
        // The echo in the error escapes what it refuses, so the detail cannot reorder either.
        let e = TokenName::parse("ci\u{202E}gnp.exe").unwrap_err().to_string();
        assert!(!e.contains('\u{202E}'), "{e}");
    }

    proptest::proptest! {
        /// Whatever a name holds, a parsed one has a visible character and no bidi control.
        #[test]
        fn parsed_names_are_visible_and_direction_free(s in "[a \u{200B}-\u{200F}\u{202A}-\u{202E}\u{2060}-\u{2069}\u{FEFF}\u{3164}é]{0,12}") {
            if let Ok(name) = DisplayName::parse(&s) {
                proptest::prop_assert!(!name.as_str().chars().any(is_bidi_control));
                proptest::prop_assert!(name.as_str().chars().any(|c| !c.is_whitespace() && !is_invisible(c)));
            } else {
                let visible = s.chars().any(|c| !c.is_whitespace() && !is_invisible(c));
                proptest::prop_assert!(!visible || s.chars().any(is_bidi_control) || s.chars().any(char::is_control));
            }
        }
    }
}
