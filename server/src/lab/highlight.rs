//! Syntax highlighting of the code a lab shows (starter, solution, the learner's-own-consumer
//! snippets), done once when the lab is read, with syntect's grammars: the page gets spans with
//! `hl-` classes, coloured by the style sheet, and needs no highlighter of its own.

use std::path::Path;
use std::sync::OnceLock;

use syntect::html::{ClassStyle, ClassedHTMLGenerator};
use syntect::parsing::{SyntaxReference, SyntaxSet};
use syntect::util::LinesWithEndings;

fn syntaxes() -> &'static SyntaxSet {
    static SYNTAXES: OnceLock<SyntaxSet> = OnceLock::new();
    SYNTAXES.get_or_init(SyntaxSet::load_defaults_newlines)
}

/// The grammar for a file: by its extension, then by the language the lab names.
fn syntax_for<'a>(
    set: &'a SyntaxSet,
    file_name: &str,
    language: &str,
) -> Option<&'a SyntaxReference> {
    Path::new(file_name)
        .extension()
        .and_then(|e| e.to_str())
        .and_then(|e| set.find_syntax_by_extension(e))
        .or_else(|| set.find_syntax_by_token(language))
}

/// `code` as HTML: escaped, with `hl-` classed spans where a grammar is known; `None` when no
/// grammar fits or the code cannot be parsed (the page then shows it as plain text).
pub fn to_html(code: &str, file_name: &str, language: &str) -> Option<String> {
    let set = syntaxes();
    let syntax = syntax_for(set, file_name, language)?;
    let mut html = ClassedHTMLGenerator::new_with_class_style(
        syntax,
        set,
        ClassStyle::SpacedPrefixed { prefix: "hl-" },
    );
    for line in LinesWithEndings::from(code) {
        html.parse_html_for_line_which_includes_newline(line).ok()?;
    }
    Some(html.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_gets_classed_spans_and_stays_escaped() {
        let html = to_html("import sys\nprint(\"<b>\")  # done\n", "x.py", "python")
            .expect("python is known");
        assert!(html.contains("hl-keyword"), "{html}");
        assert!(html.contains("hl-comment"), "{html}");
        assert!(html.contains("&lt;b&gt;"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }

    #[test]
    fn every_language_of_the_labs_is_known() {
        for (file, language) in [
            ("a.py", "python"),
            ("a.js", "javascript"),
            ("a.rs", "rust"),
            ("a.sh", "shell"),
        ] {
            assert!(to_html("x\n", file, language).is_some(), "{language}");
        }
        assert_eq!(to_html("x", "notes.unknownext", "klingon"), None);
    }
}
