//! The core's modules depend on each other without cycles: the shared vocabulary (element,
//! kernels, error, control, memory, input, pool, vmath) imports none of the rest, and no two
//! modules import each other, directly or through others. Read from the source: every
//! `crate::module` path in code (comments and doc comments excluded) of a top-level module or its
//! sub-modules, tests excluded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn code_deps(text: &str, me: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(k) = rest.find("crate::") {
        rest = &rest[k + 7..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() && name != me {
            out.insert(name);
        }
    }
    out
}

fn walk(dir: &Path, top: &str, deps: &mut BTreeMap<String, BTreeSet<String>>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            walk(&path, top, deps);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            deps.entry(top.to_string()).or_default().extend(code_deps(&text, top));
        }
    }
}

#[test]
fn modules_depend_on_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("an entry").path();
        let name = path.file_stem().expect("a name").to_string_lossy().to_string();
        if name == "lib" {
            continue;
        }
        if path.is_dir() {
            walk(&path, &name, &mut deps);
        } else {
            let text = std::fs::read_to_string(&path).expect("a source file");
            deps.entry(name.clone()).or_default().extend(code_deps(&text, &name));
        }
    }
    let modules: BTreeSet<String> = deps.keys().cloned().collect();
    for (m, d) in &deps {
        for x in d {
            assert!(
                modules.contains(x),
                "{m} refers to crate::{x}, which is not a module: use the module path"
            );
        }
    }
    // depth-first search for a cycle
    fn visit(m: &str, deps: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(m) {
            return;
        }
        if let Some(k) = stack.iter().position(|s| s == m) {
            panic!("modules import each other: {} -> {m}", stack[k..].join(" -> "));
        }
        stack.push(m.to_string());
        for d in &deps[m] {
            visit(d, deps, stack, done);
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        visit(m, &deps, &mut Vec::new(), &mut done);
    }
    for leaf in [
        "element", "kernels", "error", "control", "memory", "input", "pool", "vmath",
    ] {
        let inner: Vec<&String> = deps[leaf]
            .iter()
            .filter(|d| {
                ![
                    "element", "kernels", "error", "control", "memory", "input", "pool", "vmath",
                ]
                .contains(&d.as_str())
            })
            .collect();
        assert!(inner.is_empty(), "the leaf module {leaf} imports {inner:?}");
    }
}
