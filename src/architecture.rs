//! The dependency rule, checked: every top-level module may name (`crate::x`) only the modules
//! its row of [`ALLOWED`] lists, so dependencies point one way (docs/ARCHITECTURE.md shows the
//! graph). Test code (`#[cfg(test)]` modules, `tests.rs` files) may reach further.

/// Each top-level module and the modules it may use. Leaves first; a module may only use
/// modules listed before it, which keeps the graph acyclic (checked below).
pub const ALLOWED: &[(&str, &[&str])] = &[
    ("secret", &[]),
    ("body", &[]),
    ("metrics", &[]),
    ("failure", &[]),
    ("audit", &["failure"]),
    ("hash", &["failure"]),
    ("legacy", &["hash", "secret", "metrics", "failure"]),
    ("provider", &["secret", "metrics", "failure"]),
    ("ledger", &["secret", "metrics", "failure"]),
    (
        "migrate",
        &[
            "audit", "hash", "legacy", "provider", "ledger", "secret", "metrics", "failure",
        ],
    ),
    (
        "handoff",
        &[
            "migrate", "legacy", "ledger", "provider", "audit", "hash", "secret", "metrics",
            "failure",
        ],
    ),
    ("proxy", &["body", "metrics", "failure"]),
    (
        "signin",
        &["migrate", "proxy", "body", "audit", "metrics", "failure"],
    ),
    (
        "config",
        &[
            "secret", "hash", "legacy", "provider", "ledger", "migrate", "handoff", "audit",
            "proxy", "signin", "failure",
        ],
    ),
    (
        "server",
        &[
            "config", "signin", "proxy", "migrate", "ledger", "provider", "legacy", "hash",
            "audit", "metrics", "body", "secret", "failure",
        ],
    ),
    ("logging", &["config"]),
    (
        "testkit",
        &[
            "hash", "secret", "provider", "legacy", "config", "body", "metrics", "failure",
        ],
    ),
    (
        "demo",
        &[
            "testkit", "server", "config", "hash", "provider", "legacy", "migrate", "secret",
            "logging", "failure",
        ],
    ),
    (
        "cli",
        &[
            "demo", "server", "config", "logging", "hash", "legacy", "provider", "ledger",
            "migrate", "handoff", "audit", "secret", "failure",
        ],
    ),
    ("architecture", &[]),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::ALLOWED;

    /// The `.rs` files below `dir`, test-only files left out.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(path);
            }
        }
    }

    /// `text` without its `#[cfg(test)]` modules.
    fn without_test_modules(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find("#[cfg(test)]") {
            out.push_str(&rest[..at]);
            let after = &rest[at..];
            let Some(open) = after.find(['{', ';']) else {
                return out;
            };
            if after.as_bytes()[open] == b';' {
                rest = &after[open + 1..];
                continue;
            }
            let mut depth = 0usize;
            let mut end = after.len();
            for (i, c) in after[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &after[end..];
        }
        out.push_str(rest);
        out
    }

    /// The top-level modules `text` names through `crate::x` or `crate::{x, y::z}`.
    fn used_modules(text: &str) -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        used.insert(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                    used.insert(name);
                }
            }
        }
        used
    }

    #[test]
    fn every_module_uses_only_what_the_rule_allows() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut broken = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs");
            if matches!(module, "lib" | "main") {
                continue;
            }
            let Some(may_use) = allowed.get(module) else {
                broken.push(format!(
                    "{}: module `{module}` has no row in architecture::ALLOWED",
                    rel.display()
                ));
                continue;
            };
            let code: String = std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            let text = without_test_modules(&code);
            for used in used_modules(&text) {
                if used != module && !may_use.contains(&used.as_str()) {
                    broken.push(format!(
                        "{}: `{module}` uses `crate::{used}`, which the rule does not allow",
                        rel.display()
                    ));
                }
            }
        }
        assert!(broken.is_empty(), "{}", broken.join("\n"));
    }

    #[test]
    fn the_rule_points_one_way() {
        for (i, (module, uses)) in ALLOWED.iter().enumerate() {
            let earlier: Vec<&str> = ALLOWED[..i].iter().map(|(m, _)| *m).collect();
            for used in *uses {
                assert!(
                    earlier.contains(used),
                    "`{module}` may use `{used}`, which is not listed before it"
                );
            }
        }
    }

    #[test]
    fn the_reader_sees_grouped_paths_and_skips_test_modules() {
        let text = "use crate::{config::X, hash};\nuse crate::body::Body;\n#[cfg(test)]\nmod tests {\n    use crate::cli;\n    fn f() { let _ = \"{}\"; }\n}\nfn g() -> crate::proxy::Y {}\n";
        let used = used_modules(&without_test_modules(text));
        let want: BTreeSet<String> = ["config", "hash", "body", "proxy"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(used, want);
    }
}
