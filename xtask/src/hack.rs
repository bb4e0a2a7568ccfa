//! The feature hack: one set of features per shared dependency, whichever build compiles it.
//!
//! Cargo unifies a dependency's features over the packages and targets of one build only. The
//! run command builds the server and the consumer, and the test command builds every test: the
//! tests enable other features of shared dependencies (the browser tests' `fantoccini` turns on
//! `syn`'s `fold` and `visit`, `time`'s `macros`, …), so the test command compiled 161 crates
//! again that the run command had just built. `grouplab-hack` (`hack/Cargo.toml`) depends on
//! every dependency whose features differ between those builds, or between its host and target
//! builds in one of them, with the features all of them need, and the server and the consumer
//! depend on it: every build then compiles each shared dependency once, the same way. xtask is
//! built alone by `cargo xtask`, and its tests run apart, so it stays out of this.
//!
//! `cargo xtask hack` writes its dependencies from what cargo says each build compiles (its unit
//! graph: `cargo build --unit-graph`, an unstable option read with `RUSTC_BOOTSTRAP=1`, which
//! compiles nothing); `cargo xtask lint` fails when they are out of date.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// The builds whose shared dependencies must agree, as cargo arguments: what the run command
/// builds, and what the test command builds. xtask is a build of its own (`cargo xtask` builds it
/// first, alone, and the test command tests it apart): it shares no artefact with them.
const BUILDS: &[&[&str]] = &[
    &[
        "build",
        "--package",
        "grouplab-server",
        "--package",
        "grouplab-consumer",
        "--bins",
    ],
    &[
        "test",
        "--workspace",
        "--exclude",
        "grouplab-frontend",
        "--exclude",
        "xtask",
        "--no-run",
    ],
];

/// Where the hack's dependencies are written.
const MANIFEST: &str = "hack/Cargo.toml";
/// The line after which the manifest is generated.
const GENERATED: &str = "# Written by `cargo xtask hack`: do not edit below this line.";

/// A dependency as one build compiles it: for the target, or for the host (build scripts and
/// procedural macros, whose dependencies cargo resolves apart).
type Unit = (String, String, Side);

/// The features one build gives a package, on one side.
type Seen<'a> = (Side, &'a BTreeSet<String>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Target,
    Host,
}

/// Rewrites the hack's dependencies until every build agrees; returns whether anything changed.
pub fn write(root: &Path) -> anyhow::Result<bool> {
    let path = root.join(MANIFEST);
    let original = std::fs::read_to_string(&path).context("cannot read hack/Cargo.toml")?;
    // From nothing, so that a dependency no build needs any more leaves the list.
    std::fs::write(&path, render(&original, &BTreeMap::new())?)?;
    // Adding features to one dependency can change which features others get: a few rounds.
    for _ in 0..6 {
        let manifest = std::fs::read_to_string(&path)?;
        // Cargo.lock takes the hack's new dependencies (versions it already has) as they come.
        let needed = needed(root, "--offline")?;
        let wanted = merge(listed(&manifest), needed);
        let rewritten = render(&manifest, &wanted)?;
        if rewritten == manifest {
            return Ok(rewritten != original);
        }
        std::fs::write(&path, rewritten)?;
    }
    bail!("the hack's features did not settle after 6 rounds; see {MANIFEST}")
}

/// Fails if the hack's dependencies are not what `write` would make them.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let manifest =
        std::fs::read_to_string(root.join(MANIFEST)).context("cannot read hack/Cargo.toml")?;
    let listed = listed(&manifest);
    let needed = needed(root, "--locked")?;
    let missing: Vec<String> = needed
        .iter()
        .filter(|(unit, features)| {
            listed
                .get(*unit)
                .is_none_or(|have| !features.is_subset(have))
        })
        .map(|((name, version, side), features)| {
            format!("{name} {version} ({side:?}): {features:?}")
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "the run, xtask and test builds compile these dependencies with different features, so the test command would compile them again: run `cargo xtask hack` and commit hack/Cargo.toml\n  {}",
            missing.join("\n  ")
        );
    }
    Ok(())
}

/// Every dependency (and side) that some build compiles with other features than another, or
/// that is compiled for the host and for the target, with the features of all of them together.
fn needed(root: &Path, lock: &str) -> anyhow::Result<BTreeMap<Unit, BTreeSet<String>>> {
    let builds: Vec<BTreeMap<Unit, BTreeSet<String>>> = BUILDS
        .iter()
        .map(|args| unit_features(root, args, lock))
        .collect::<anyhow::Result<_>>()?;
    // Per package: the features each build gives it, on each side.
    let mut all: BTreeMap<(String, String), Vec<Seen>> = BTreeMap::new();
    for build in &builds {
        for ((name, version, side), features) in build {
            all.entry((name.clone(), version.clone()))
                .or_default()
                .push((*side, features));
        }
    }
    // A package compiled with other features by another build, or for the host and the target
    // alike (build scripts and procedural macros share many crates with the binaries), gets the
    // features of them all, on every side it is compiled for: one compilation then serves all,
    // since the host and the target share the dev profile's settings for dependencies.
    let mut needed = BTreeMap::new();
    for ((name, version), seen) in all {
        let sides: BTreeSet<Side> = seen.iter().map(|(side, _)| *side).collect();
        let alike = seen.iter().all(|(_, features)| *features == seen[0].1);
        if sides.len() == 1 && alike {
            continue;
        }
        let union: BTreeSet<String> = seen.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
        for side in sides {
            needed.insert((name.clone(), version.clone(), side), union.clone());
        }
    }
    Ok(needed)
}

/// The features each registry dependency is compiled with in one build, per side.
fn unit_features(
    root: &Path,
    args: &[&str],
    lock: &str,
) -> anyhow::Result<BTreeMap<Unit, BTreeSet<String>>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args(args)
        .args([lock, "--unit-graph", "-Z", "unstable-options"])
        // The unit graph is unstable: cargo shows it to a stable toolchain when told to. Nothing
        // is compiled with it.
        .env("RUSTC_BOOTSTRAP", "1")
        .current_dir(root)
        .output()
        .with_context(|| format!("could not run {cargo}"))?;
    if !output.status.success() {
        bail!(
            "`cargo {} --unit-graph` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let graph: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo's unit graph is not JSON")?;
    let units = graph["units"]
        .as_array()
        .context("cargo's unit graph has no units")?;
    // Host units: procedural macros and build scripts, and everything they depend on.
    let mut host = vec![false; units.len()];
    let mut stack: Vec<usize> = units
        .iter()
        .enumerate()
        .filter(|(_, unit)| {
            let kind = &unit["target"]["kind"];
            kind[0] == "proc-macro" || (kind[0] == "custom-build" && unit["mode"] == "build")
        })
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut host[i], true) {
            continue;
        }
        for dep in units[i]["dependencies"].as_array().into_iter().flatten() {
            if let Some(index) = dep["index"].as_u64() {
                stack.push(index as usize);
            }
        }
    }
    let mut found: BTreeMap<Unit, BTreeSet<String>> = BTreeMap::new();
    for (i, unit) in units.iter().enumerate() {
        let id = unit["pkg_id"].as_str().unwrap_or_default();
        let kind = &unit["target"]["kind"][0];
        // Registry dependencies' libraries (and procedural macros) only: the workspace's own
        // crates and build scripts follow from them.
        if !id.starts_with("registry+") || unit["mode"] != "build" || kind == "custom-build" {
            continue;
        }
        let Some((name, version)) = id.rsplit('#').next().and_then(|p| p.split_once('@')) else {
            continue;
        };
        // Build metadata (`+spec-1.1.0`) plays no part in a version requirement.
        let version = version.split('+').next().unwrap_or(version);
        let side = if host[i] { Side::Host } else { Side::Target };
        let features = unit["features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned));
        found
            .entry((name.to_owned(), version.to_owned(), side))
            .or_default()
            .extend(features);
    }
    Ok(found)
}

/// What the manifest lists now.
fn listed(manifest: &str) -> BTreeMap<Unit, BTreeSet<String>> {
    let mut found = BTreeMap::new();
    let mut side = Side::Target;
    for line in manifest.lines() {
        match line.trim() {
            "[dependencies]" => side = Side::Target,
            "[build-dependencies]" => side = Side::Host,
            _ => {}
        }
        // The three fields `render` writes, each found by what precedes it on the line.
        let after = |marker: &str, end: char| {
            let start = line.find(marker)? + marker.len();
            let rest = &line[start..];
            Some(rest[..rest.find(end)?].to_owned())
        };
        let (package, version, features) = (
            after("package = \"", '"'),
            after("version = \"=", '"'),
            after(", features = [", ']'),
        );
        if let (Some(package), Some(version), Some(features)) = (package, version, features) {
            let features = features
                .split(',')
                .map(|f| f.trim().trim_matches('"').to_owned())
                .filter(|f| !f.is_empty())
                .collect();
            found.insert((package, version, side), features);
        }
    }
    found
}

fn merge(
    mut listed: BTreeMap<Unit, BTreeSet<String>>,
    needed: BTreeMap<Unit, BTreeSet<String>>,
) -> BTreeMap<Unit, BTreeSet<String>> {
    for (unit, features) in needed {
        listed.entry(unit).or_default().extend(features);
    }
    listed
}

/// The manifest with its generated part made from `wanted`.
fn render(manifest: &str, wanted: &BTreeMap<Unit, BTreeSet<String>>) -> anyhow::Result<String> {
    let Some(end) = manifest.find(GENERATED) else {
        bail!("{MANIFEST} lacks the line `{GENERATED}`");
    };
    let mut out = manifest[..end + GENERATED.len()].to_owned();
    out.push('\n');
    for (section, side) in [
        ("dependencies", Side::Target),
        ("build-dependencies", Side::Host),
    ] {
        out.push_str(&format!("\n[{section}]\n"));
        for ((name, version, _), features) in wanted.iter().filter(|((_, _, s), _)| *s == side) {
            let alias = format!("{name}-{}", version.replace(['.', '+'], "-"));
            let features: Vec<String> = features.iter().map(|f| format!("\"{f}\"")).collect();
            out.push_str(&format!(
                "{alias} = {{ package = \"{name}\", version = \"={version}\", default-features = false, features = [{}] }}\n",
                features.join(", ")
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hack_reads_back_what_it_writes() {
        let mut wanted = BTreeMap::new();
        wanted.insert(
            ("syn".to_owned(), "2.0.1".to_owned(), Side::Host),
            BTreeSet::from(["fold".to_owned(), "full".to_owned()]),
        );
        wanted.insert(
            ("time".to_owned(), "0.3.4".to_owned(), Side::Target),
            BTreeSet::from(["macros".to_owned()]),
        );
        let manifest = render(
            &format!("[package]\nname = \"h\"\n\n{GENERATED}\n"),
            &wanted,
        )
        .expect("renders");
        assert_eq!(listed(&manifest), wanted);
        assert_eq!(render(&manifest, &wanted).expect("renders"), manifest);
    }
}
