//! Course authors see their edits at once: the labs folder is watched (inotify, through the
//! `notify` crate), and a change to a lab's files reads that lab again ([`LabCatalog::reload`]).
//! Its running session serves the new version and tells its pages, which load themselves again;
//! an edit that cannot be read is shown in the lab's pages with its line, while the last good
//! version keeps serving.
//!
//! Editors write a file in several steps (truncate, write, rename a swap file): changes are
//! gathered for [`SETTLE`] after the first one, then each lab they touched is read once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::class::Worlds;
use crate::lab::catalog::Reloaded;

/// How long after a change more changes are waited for before the labs are read.
pub const SETTLE: Duration = Duration::from_millis(200);

/// Watches the labs folder until `shutdown`. A folder that cannot be watched is logged and
/// the labs are served as read at start-up.
pub fn watch_labs(worlds: Arc<Worlds>, shutdown: CancellationToken, tasks: &TaskTracker) {
    let dir = worlds.catalog().dir().to_owned();
    let (changes, mut inbox) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only writes count: reading the files (another grouplab starting, an editor opening
        // one) must not reload anything.
        if let Ok(event) = event
            && changes_content(&event.kind)
        {
            // The receiver is gone only when the server is shutting down.
            let _ = changes.send(event.paths);
        }
    })
    .and_then(|mut watcher| {
        watcher.watch(&dir, RecursiveMode::Recursive)?;
        Ok(watcher)
    });
    let watcher = match watcher {
        Ok(watcher) => watcher,
        Err(err) => {
            warn!(%err, dir = %dir.display(), "the labs folder cannot be watched: edits show after a restart");
            return;
        }
    };
    tasks.spawn(async move {
        // Dropping the watcher stops it: it lives as long as this task.
        let _watcher = watcher;
        loop {
            let mut labs = BTreeSet::new();
            tokio::select! {
                () = shutdown.cancelled() => break,
                paths = inbox.recv() => match paths {
                    Some(paths) => labs.extend(lab_ids(&dir, &paths)),
                    None => break,
                },
            }
            let settled = tokio::time::sleep(SETTLE);
            tokio::pin!(settled);
            loop {
                tokio::select! {
                    () = &mut settled => break,
                    Some(paths) = inbox.recv() => labs.extend(lab_ids(&dir, &paths)),
                }
            }
            for id in labs {
                let Some(outcome) = worlds.catalog().reload(&id) else {
                    continue;
                };
                match &outcome {
                    Reloaded::Unchanged => continue,
                    Reloaded::Changed(_) => info!(lab = %id, "lab reloaded"),
                    Reloaded::Broken { problem } => {
                        warn!(lab = %id, %problem, "an edit broke a lab")
                    }
                }
                worlds.reloaded(&id, &outcome);
            }
        }
    });
}

/// Whether an event can change what a file holds: created, written, renamed or removed; not
/// opened, read, closed after reading, or its times or permissions touched.
fn changes_content(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// The labs (folder names directly under `dir`) that changed paths belong to.
fn lab_ids<'a>(dir: &'a Path, paths: &'a [PathBuf]) -> impl Iterator<Item = String> + 'a {
    paths.iter().filter_map(move |path| {
        let first = path.strip_prefix(dir).ok()?.components().next()?;
        let name = first.as_os_str().to_str()?;
        // Hidden files and editors' swap files at the top level are not labs.
        (!name.starts_with('.') && path.strip_prefix(dir).ok()?.components().count() > 1)
            .then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_count_as_changes() {
        use notify::event::{CreateKind, DataChange, MetadataKind};
        assert!(changes_content(&EventKind::Modify(ModifyKind::Data(
            DataChange::Content
        ))));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
        assert!(changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(
            AccessMode::Read
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!changes_content(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
    }

    #[test]
    fn changes_are_attributed_to_the_lab_folder_they_are_in() {
        let dir = Path::new("/labs");
        let paths = [
            PathBuf::from("/labs/04-consumer-groups/lab.toml"),
            PathBuf::from("/labs/05-fan-out/.lab.toml.swp"),
            PathBuf::from("/labs/README.md"),
            PathBuf::from("/labs/.hidden/x"),
            PathBuf::from("/elsewhere/06/lab.toml"),
        ];
        let ids: Vec<String> = lab_ids(dir, &paths).collect();
        assert_eq!(ids, ["04-consumer-groups", "05-fan-out"]);
    }
}
