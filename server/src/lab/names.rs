//! A lab's code as a class's learner on a shared Kafka cluster must run it: with the broker's
//! names (the learner's prefix before each of the lab's topic and group names) in place of the
//! lab's, wherever a name stands on its own.

use grouplab_protocol::{CodeBlock, LabContent, LabSetup, Solution};

/// Whether `c` can be part of a Kafka topic or group name.
fn in_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// `code` with each of `names` that stands on its own (not inside a longer name) prefixed.
pub fn prefixed(code: &str, names: &[&str], prefix: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    'scan: while !rest.is_empty() {
        let before = out.chars().last();
        if before.is_none_or(|c| !in_name(c)) {
            // The longest name first, so that `user-clicks.dead` is not read as `user-clicks`.
            for name in names {
                if let Some(after) = rest.strip_prefix(name)
                    && after.chars().next().is_none_or(|c| !in_name(c))
                {
                    out.push_str(prefix);
                    out.push_str(name);
                    rest = after;
                    continue 'scan;
                }
            }
        }
        let next = rest.chars().next().expect("the rest is not empty");
        out.push(next);
        rest = &rest[next.len_utf8()..];
    }
    out
}

/// The lab's topic and group names, longest first.
fn lab_names(setup: &LabSetup) -> Vec<&str> {
    let mut names: Vec<&str> = setup
        .topics()
        .chain(setup.groups())
        .map(String::as_str)
        .collect();
    if let Some(dead) = &setup.consumer.dead_letter_topic {
        names.push(dead);
    }
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    names.dedup();
    names
}

fn block(code: &CodeBlock, names: &[&str], prefix: &str) -> CodeBlock {
    let text = prefixed(&code.code, names, prefix);
    CodeBlock {
        html: super::highlight::to_html(&text, &code.file_name, &code.language).unwrap_or_default(),
        code: text,
        ..code.clone()
    }
}

/// The lab's code blocks with the broker's names (nothing changes without a prefix).
pub fn content_with_prefix(content: &LabContent, prefix: &str) -> LabContent {
    if prefix.is_empty() {
        return content.clone();
    }
    let names = lab_names(&content.setup);
    let mut content = content.clone();
    content.starter = content
        .starter
        .map(|starter| block(&starter, &names, prefix));
    for snippet in &mut content.consumers {
        snippet.code = block(&snippet.code, &names, prefix);
    }
    content
}

/// The solution with the broker's names.
pub fn solution_with_prefix(solution: &Solution, setup: &LabSetup, prefix: &str) -> Solution {
    if prefix.is_empty() {
        return solution.clone();
    }
    Solution {
        code: block(&solution.code, &lab_names(setup), prefix),
        notes_html: solution.notes_html.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::prefixed;

    #[test]
    fn only_names_standing_alone_are_prefixed() {
        let names = ["user-clicks.dead", "click-processors", "user-clicks"];
        let code = r#"TOPIC = "user-clicks"
DEAD = 'user-clicks.dead'
consumer.subscribe(["user-clicks"]) # user-clicks-old and my.user-clicks stay
group = "click-processors""#;
        assert_eq!(
            prefixed(code, &names, "k.l1."),
            r#"TOPIC = "k.l1.user-clicks"
DEAD = 'k.l1.user-clicks.dead'
consumer.subscribe(["k.l1.user-clicks"]) # user-clicks-old and my.user-clicks stay
group = "k.l1.click-processors""#
        );
        assert_eq!(prefixed("", &names, "k."), "");
        assert_eq!(prefixed("«user-clicks»", &names, "k."), "«k.user-clicks»");
    }
}
