//! Three-way merge of a document: base (the version the client started from), server (current)
//! and client. Line-based (`diffy`, the algorithm of `git merge-file`): edits to different
//! paragraphs merge cleanly; the same lines changed on both sides are a conflict.

/// The result of merging one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    Clean(String),
    Conflict,
}

/// Merges `client` into `server`, both descended from `base`.
pub fn merge_text(base: &str, server: &str, client: &str) -> Merged {
    if client == base || client == server {
        return Merged::Clean(server.to_owned());
    }
    if server == base {
        return Merged::Clean(client.to_owned());
    }
    match diffy::merge(base, server, client) {
        Ok(merged) => Merged::Clean(merged),
        Err(_) => Merged::Conflict,
    }
}

/// A title is one line: it merges when only one side changed it (or both the same way).
pub(crate) fn merge_title(base: &str, server: &str, client: &str) -> Merged {
    if client == base || client == server {
        Merged::Clean(server.to_owned())
    } else if server == base {
        Merged::Clean(client.to_owned())
    } else {
        Merged::Conflict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# Title\n\nFirst paragraph.\n\nSecond paragraph.\n\nThird paragraph.\n";

    #[test]
    fn edits_to_different_paragraphs_merge() {
        let server = BASE.replace("First paragraph.", "First paragraph, edited on A.");
        let client = BASE.replace("Third paragraph.", "Third paragraph, edited on B.");
        let Merged::Clean(merged) = merge_text(BASE, &server, &client) else {
            panic!("should merge");
        };
        assert!(merged.contains("edited on A") && merged.contains("edited on B"));
        assert!(merged.contains("Second paragraph."));
    }

    #[test]
    fn edits_to_adjacent_paragraphs_merge_across_the_blank_line() {
        let server = BASE.replace("First paragraph.", "First, by A.");
        let client = BASE.replace("Second paragraph.", "Second, by B.");
        assert_eq!(
            merge_text(BASE, &server, &client),
            Merged::Clean(
                "# Title\n\nFirst, by A.\n\nSecond, by B.\n\nThird paragraph.\n".to_owned()
            )
        );
    }

    #[test]
    fn the_same_line_changed_twice_is_a_conflict() {
        let server = BASE.replace("Second paragraph.", "Second, by A.");
        let client = BASE.replace("Second paragraph.", "Second, by B.");
        assert_eq!(merge_text(BASE, &server, &client), Merged::Conflict);
    }

    #[test]
    fn one_sided_and_identical_changes_need_no_merge() {
        let changed = BASE.replace("Third", "3rd");
        assert_eq!(
            merge_text(BASE, BASE, &changed),
            Merged::Clean(changed.clone())
        );
        assert_eq!(
            merge_text(BASE, &changed, BASE),
            Merged::Clean(changed.clone())
        );
        assert_eq!(
            merge_text(BASE, &changed, &changed),
            Merged::Clean(changed.clone())
        );
    }

    #[test]
    fn titles_merge_only_one_sided() {
        assert_eq!(merge_title("a", "b", "a"), Merged::Clean("b".into()));
        assert_eq!(merge_title("a", "a", "c"), Merged::Clean("c".into()));
        assert_eq!(merge_title("a", "b", "b"), Merged::Clean("b".into()));
        assert_eq!(merge_title("a", "b", "c"), Merged::Conflict);
    }
}
