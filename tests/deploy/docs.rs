//! The README and `docs/` checked against the tree: the README stays a front door (at most 250
//! lines), every relative link in it and in `docs/*.md` reaches an existing file (and heading,
//! when it names one), every `deploy/` path they mention exists, and every Spin version they name
//! is the one `runtime-compose.yml` runs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The README's budget: what a newcomer needs in the first ten minutes; the reference is in docs/.
const README_MAX_LINES: usize = 250;

/// `README.md` and every `docs/*.md`, README first.
fn doc_files() -> Vec<PathBuf> {
    let root = crate::support::root();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    let mut files = vec![root.join("README.md")];
    files.extend(docs);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of `text` outside fenced code blocks, with inline code spans removed.
fn prose_lines(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
            lines.push(prose);
        }
    }
    lines
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces become `-`.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks), duplicates numbered as GitHub does.
fn anchors(text: &str) -> HashSet<String> {
    let mut fenced = false;
    let mut seen = HashSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let base = slug(line.trim_start_matches('#').trim());
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The targets of the Markdown links (`[text](target)`, images too) in the prose of `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            targets.push(rest[..end].trim().to_string());
        }
    }
    targets
}

#[test]
fn readme_is_a_front_door() {
    let readme = read(&crate::support::root().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; keep it to {README_MAX_LINES} and move reference material to docs/"
    );
    for command in [
        "cargo run --release -p edge-host -- up --build",
        "scripts/test.sh",
    ] {
        assert!(readme.contains(command), "the README holds `{command}`");
    }
    for doc in [
        "docs/API.md",
        "docs/OPERATIONS.md",
        "docs/DEPLOY.md",
        "docs/TESTING.md",
        "docs/LOADGEN.md",
        "docs/BENCHMARKS.md",
        "docs/DESIGN.md",
        "docs/DEPENDENCIES.md",
        "docs/console.png",
    ] {
        assert!(
            readme.contains(&format!("]({doc}")),
            "the README links {doc}"
        );
    }
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = read(&file);
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            checked += 1;
            if !dest.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
                continue;
            }
            if let Some(anchor) = anchor
                && dest.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&dest)).contains(anchor)
            {
                broken.push(format!("{}: {target} (no such heading)", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 20,
        "the README and docs/ link each other ({checked} relative links found)"
    );
}

/// `X.Y.Z` of every "Spin X.Y.Z" in `text`.
fn spin_versions(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("Spin ") {
        let rest = &text[i + 5..];
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let v = v.trim_end_matches('.');
        if v.split('.').count() == 3 && v.split('.').all(|p| !p.is_empty()) {
            found.push(v.to_string());
        }
    }
    found
}

#[test]
fn compose_image_and_readme_name_the_same_spin_version() {
    let c = crate::compose();
    let image = c["services"]["app"]["image"].as_str().unwrap();
    let (repo, tag) = image.rsplit_once(':').unwrap();
    assert_eq!(repo, "ghcr.io/spinframework/spin");
    let version = tag.strip_prefix('v').expect("a pinned vX.Y.Z tag");
    let readme = read(&crate::support::root().join("README.md"));
    assert!(
        spin_versions(&readme).iter().any(|v| v == version),
        "the README names Spin {version}, the version runtime-compose.yml runs"
    );
    for file in doc_files() {
        for v in spin_versions(&read(&file)) {
            assert_eq!(
                v,
                version,
                "every Spin version {} names is the compose one",
                file.display()
            );
        }
    }
}

/// The `deploy/…` paths `text` mentions.
fn deploy_paths(text: &str) -> Vec<String> {
    text.match_indices("deploy/")
        .map(|(i, _)| {
            let path: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
                .collect();
            path.trim_end_matches('.').to_string()
        })
        .collect()
}

#[test]
fn readme_deploy_paths_exist() {
    let root = crate::support::root();
    for file in doc_files() {
        for path in deploy_paths(&read(&file)) {
            assert!(
                root.join(&path).exists(),
                "{} mentions {path}, which exists",
                file.display()
            );
        }
    }
    for file in ["README.md", "docs/DEPLOY.md"] {
        assert!(
            !deploy_paths(&read(&root.join(file))).is_empty(),
            "{file} points at deploy/"
        );
    }
}
