//! `cargo xtask lint`'s layer check: no two top-level modules of `agent-daemon` import each
//! other, directly or around a circle (`docs/design.md`, "Layers and their rules"). It reads
//! every `crate::` path outside tests (files named `*tests*.rs`, `*_props.rs`, `testutil.rs`,
//! `tests/` folders, and a trailing `#[cfg(test)] mod tests { .. }`), takes the first name
//! of each (inside `crate::{ .. }` lists too), and looks for strongly connected components.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::Context as _;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Where each import came from: (from, to) -> files.
type Why = BTreeMap<(String, String), BTreeSet<String>>;

fn is_test_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.contains("tests")
        || name.ends_with("_props.rs")
        || name == "testutil.rs"
        || rel.split('/').any(|part| part == "tests")
}

/// The first names of the paths in a `{ .. }` use list (its text without the braces).
fn first_names(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    // The name being read at depth 0, while it can still be a path's first.
    let mut token = String::new();
    let mut first = true;
    for c in list.chars().chain([',']) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth != 0 => {}
            c if c.is_alphanumeric() || c == '_' => {
                if first {
                    token.push(c);
                }
            }
            ',' => {
                if first && !token.is_empty() {
                    out.push(std::mem::take(&mut token));
                }
                token.clear();
                first = true;
            }
            c if c.is_whitespace() && token.is_empty() => {}
            _ => {
                if first && !token.is_empty() {
                    out.push(std::mem::take(&mut token));
                }
                first = false;
            }
        }
    }
    out
}

/// The text of the `{ .. }` list starting at `open` (a `{`), without its braces.
fn braced(text: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    &text[open + 1..]
}

/// The modules `text` imports from the crate.
fn imports(text: &str) -> BTreeSet<String> {
    let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if rest.starts_with('{') {
            found.extend(first_names(braced(rest, 0)));
        } else {
            let name: String =
                rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            found.insert(name);
        }
    }
    found
}

fn walk(dir: &Path, root: &Path, graph: &mut Graph, why: &mut Why) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
        if path.is_dir() {
            walk(&path, root, graph, why)?;
            continue;
        }
        if !rel.ends_with(".rs") || is_test_file(&rel) {
            continue;
        }
        let top = rel.split('/').next().unwrap_or(&rel).trim_end_matches(".rs").to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for to in imports(&text) {
            why.entry((top.clone(), to.clone())).or_default().insert(rel.clone());
            graph.entry(top.clone()).or_default().insert(to);
        }
    }
    Ok(())
}

/// The groups of modules that import each other around a circle.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    // Two modules are in one circle when each reaches the other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for (m, r) in &reached {
        if !r.contains(*m) || groups.iter().any(|g| g.contains(m)) {
            continue;
        }
        let group = reached
            .iter()
            .filter(|(o, ro)| r.contains(**o) && ro.contains(*m))
            .map(|(o, _)| (*o).clone())
            .collect();
        groups.push(group);
    }
    groups
}

pub fn check(src: &Path) -> anyhow::Result<()> {
    let (mut graph, mut why) = (Graph::new(), Why::new());
    walk(src, src, &mut graph, &mut why)?;
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (from, to) in graph.iter_mut() {
        to.retain(|m| modules.contains(m) && m != from);
    }
    let found = cycles(&graph);
    if found.is_empty() {
        return Ok(());
    }
    let mut said = String::new();
    for group in &found {
        said += &format!("\n  modules {group:?} import each other:");
        for a in group {
            for b in group.iter().filter(|b| graph[a].contains(*b)) {
                let files = &why[&(a.clone(), b.clone())];
                said += &format!("\n    {a} -> {b} in {files:?}");
            }
        }
    }
    anyhow::bail!("import cycles in {}:{said}", src.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_lists_give_their_first_names_only() {
        let text = "use crate::{a::{b, c::d}, e, f::g};\nuse crate::h::i;\n";
        assert_eq!(imports(text), ["a", "e", "f", "h"].map(String::from).into());
    }

    #[test]
    fn a_circle_is_found_and_a_line_is_not() {
        let graph = |edges: &[(&str, &str)]| {
            let mut g = Graph::new();
            for (a, b) in edges {
                g.entry(a.to_string()).or_default().insert(b.to_string());
                g.entry(b.to_string()).or_default();
            }
            g
        };
        assert!(cycles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
        assert_eq!(
            cycles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
            [vec!["a".to_string(), "b".into(), "c".into()]]
        );
    }

    #[test]
    fn agent_daemon_has_no_import_cycle() {
        check(&crate::util::root().join("agent-daemon/src")).unwrap();
    }
}
