//! Learners' progress, kept in SQLite so it survives a page reload and a server restart.
//!
//! Progress is keyed by a namespace (one per learner; today every page shares `default`) and a lab.
//! Calls are short single statements; they run on tokio's blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex};

use grouplab_protocol::EpochMillis;
use rusqlite::{Connection, params};

/// What was stored for one learner in one lab.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredProgress {
    /// `(step index, passed at)` for every passed step.
    pub passed: Vec<(usize, EpochMillis)>,
    pub hints_opened: u32,
    pub solution_revealed: bool,
}

/// What a learner did in one lab, with when, for the export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabHistory {
    /// When they first opened it (since they last cleared its progress); `None` for progress
    /// kept from before grouplab noted it.
    pub opened_at: Option<EpochMillis>,
    /// `(step index, passed at)` for every passed step, in step order.
    pub passed: Vec<(usize, EpochMillis)>,
    /// When each hint was opened, in order.
    pub hints_at: Vec<EpochMillis>,
    pub solution_at: Option<EpochMillis>,
    /// Whether hints or the solution were opened before grouplab noted when: what was open
    /// before a pass is then not known.
    pub reveals_untimed: bool,
    /// The steps the class's instructor passed for the learner, in step order.
    pub given: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("The progress database could not be used: {0}")]
pub struct ProgressError(String);

impl From<rusqlite::Error> for ProgressError {
    fn from(err: rusqlite::Error) -> Self {
        Self(err.to_string())
    }
}

/// The progress database.
#[derive(Clone)]
pub struct ProgressStore {
    /// A std Mutex is fine: each use is one short statement on the blocking pool, never across an await.
    db: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS step_passed (
    namespace TEXT NOT NULL,
    lab TEXT NOT NULL,
    step INTEGER NOT NULL,
    passed_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, lab, step)
);
CREATE TABLE IF NOT EXISTS lab_created_topics (
    namespace TEXT NOT NULL,
    lab TEXT NOT NULL,
    topic TEXT NOT NULL,
    PRIMARY KEY (namespace, lab, topic)
);
CREATE TABLE IF NOT EXISTS lab_opened (
    namespace TEXT NOT NULL,
    lab TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, lab)
);
CREATE TABLE IF NOT EXISTS lab_moments (
    namespace TEXT NOT NULL,
    lab TEXT NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lab_moments_by_lab ON lab_moments (namespace, lab);
CREATE TABLE IF NOT EXISTS lab_reveals (
    namespace TEXT NOT NULL,
    lab TEXT NOT NULL,
    hints_opened INTEGER NOT NULL DEFAULT 0,
    solution_revealed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, lab)
);
";

impl ProgressStore {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self, ProgressError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ProgressError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Connection::open(path)?;
        keep_private(path)?;
        db.execute_batch("PRAGMA journal_mode=WAL;")?;
        db.execute_batch(SCHEMA)?;
        add_column(
            &db,
            "step_passed",
            "by_instructor",
            "INTEGER NOT NULL DEFAULT 0",
        )?;
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// How many steps of each lab a namespace has passed, by lab id.
    pub async fn passed_per_lab(
        &self,
        namespace: &str,
    ) -> Result<std::collections::HashMap<String, usize>, ProgressError> {
        let namespace = namespace.to_owned();
        self.with_db(move |db| {
            let mut statement = db.prepare(
                "SELECT lab, COUNT(*) FROM step_passed WHERE namespace = ?1 GROUP BY lab",
            )?;
            let rows = statement.query_map(params![namespace], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut passed = std::collections::HashMap::new();
            for row in rows {
                let (lab, count) = row?;
                passed.insert(lab, count as usize);
            }
            Ok(passed)
        })
        .await
    }

    pub async fn load(&self, namespace: &str, lab: &str) -> Result<StoredProgress, ProgressError> {
        let (namespace, lab) = (namespace.to_owned(), lab.to_owned());
        self.with_db(move |db| {
            let mut passed = Vec::new();
            let mut statement = db.prepare(
                "SELECT step, passed_at FROM step_passed WHERE namespace = ?1 AND lab = ?2 ORDER BY step",
            )?;
            let rows = statement.query_map(params![namespace, lab], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (step, at) = row?;
                passed.push((step as usize, at as EpochMillis));
            }
            let reveals = db
                .query_row(
                    "SELECT hints_opened, solution_revealed FROM lab_reveals WHERE namespace = ?1 AND lab = ?2",
                    params![namespace, lab],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, bool>(1)?)),
                )
                .ok();
            let (hints, solution) = reveals.unwrap_or((0, false));
            Ok(StoredProgress {
                passed,
                hints_opened: hints as u32,
                solution_revealed: solution,
            })
        })
        .await
    }

    /// Keeps a step's pass; `by_instructor` when the class's instructor passed it for the learner.
    pub async fn record_passed(
        &self,
        namespace: &str,
        lab: &str,
        step: usize,
        at: EpochMillis,
        by_instructor: bool,
    ) -> Result<(), ProgressError> {
        let (namespace, lab) = (namespace.to_owned(), lab.to_owned());
        self.with_db(move |db| {
            db.execute(
                "INSERT OR IGNORE INTO step_passed (namespace, lab, step, passed_at, by_instructor) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![namespace, lab, step as i64, at as i64, by_instructor],
            )?;
            Ok(())
        })
        .await
    }

    /// Notes when a learner first opened a lab (kept until they clear its progress).
    pub async fn record_opened(
        &self,
        namespace: &str,
        lab: &str,
        at: EpochMillis,
    ) -> Result<(), ProgressError> {
        let (namespace, lab) = (namespace.to_owned(), lab.to_owned());
        self.with_db(move |db| {
            db.execute(
                "INSERT OR IGNORE INTO lab_opened (namespace, lab, first_at) VALUES (?1, ?2, ?3)",
                params![namespace, lab, at as i64],
            )?;
            Ok(())
        })
        .await
    }

    /// Saves how many hints are open and whether the solution is, and notes at `at` each hint
    /// opened and the solution revealed since the last save (for the export).
    pub async fn record_reveals(
        &self,
        namespace: &str,
        lab: &str,
        hints_opened: u32,
        solution_revealed: bool,
        at: EpochMillis,
    ) -> Result<(), ProgressError> {
        let (namespace, lab) = (namespace.to_owned(), lab.to_owned());
        self.with_db(move |db| {
            let (hints_before, solution_before) = db
                .query_row(
                    "SELECT hints_opened, solution_revealed FROM lab_reveals WHERE namespace = ?1 AND lab = ?2",
                    params![namespace, lab],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, bool>(1)?)),
                )
                .unwrap_or((0, false));
            for _ in hints_before..i64::from(hints_opened) {
                db.execute(
                    "INSERT INTO lab_moments (namespace, lab, kind, at) VALUES (?1, ?2, 'hint', ?3)",
                    params![namespace, lab, at as i64],
                )?;
            }
            if solution_revealed && !solution_before {
                db.execute(
                    "INSERT INTO lab_moments (namespace, lab, kind, at) VALUES (?1, ?2, 'solution', ?3)",
                    params![namespace, lab, at as i64],
                )?;
            }
            db.execute(
                "INSERT INTO lab_reveals (namespace, lab, hints_opened, solution_revealed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (namespace, lab) DO UPDATE SET hints_opened = ?3, solution_revealed = ?4",
                params![namespace, lab, i64::from(hints_opened), solution_revealed],
            )?;
            Ok(())
        })
        .await
    }

    /// Remembers that this lab created `topic`, so that Reset may delete it, also after a restart.
    pub async fn record_created_topic(
        &self,
        namespace: &str,
        lab: &str,
        topic: &str,
    ) -> Result<(), ProgressError> {
        let (namespace, lab, topic) = (namespace.to_owned(), lab.to_owned(), topic.to_owned());
        self.with_db(move |db| {
            db.execute(
                "INSERT OR IGNORE INTO lab_created_topics (namespace, lab, topic) VALUES (?1, ?2, ?3)",
                params![namespace, lab, topic],
            )?;
            Ok(())
        })
        .await
    }

    /// The topics this lab created and has not deleted since.
    pub async fn created_topics(
        &self,
        namespace: &str,
        lab: &str,
    ) -> Result<Vec<String>, ProgressError> {
        let (namespace, lab) = (namespace.to_owned(), lab.to_owned());
        self.with_db(move |db| {
            let mut statement = db.prepare(
                "SELECT topic FROM lab_created_topics WHERE namespace = ?1 AND lab = ?2 ORDER BY topic",
            )?;
            let topics = statement
                .query_map(params![namespace, lab], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(topics)
        })
        .await
    }

    /// Forgets the topics a reset deleted.
    pub async fn forget_created_topics(
        &self,
        namespace: &str,
        lab: &str,
    ) -> Result<(), ProgressError> {
        let (namespace, lab) = (namespace.to_owned(), lab.to_owned());
        self.with_db(move |db| {
            db.execute(
                "DELETE FROM lab_created_topics WHERE namespace = ?1 AND lab = ?2",
                params![namespace, lab],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn clear(&self, namespace: &str, lab: &str) -> Result<(), ProgressError> {
        let (namespace, lab) = (namespace.to_owned(), lab.to_owned());
        self.with_db(move |db| {
            db.execute(
                "DELETE FROM step_passed WHERE namespace = ?1 AND lab = ?2",
                params![namespace, lab],
            )?;
            for table in ["lab_reveals", "lab_moments", "lab_opened"] {
                db.execute(
                    &format!("DELETE FROM {table} WHERE namespace = ?1 AND lab = ?2"),
                    params![namespace, lab],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Everything stored about every lab of `namespace`, for the export: by lab id.
    pub async fn history(
        &self,
        namespace: &str,
    ) -> Result<std::collections::BTreeMap<String, LabHistory>, ProgressError> {
        let namespace = namespace.to_owned();
        self.with_db(move |db| {
            let mut labs = std::collections::BTreeMap::<String, LabHistory>::new();
            let mut statement = db.prepare(
                "SELECT lab, step, passed_at, by_instructor FROM step_passed WHERE namespace = ?1 ORDER BY lab, step",
            )?;
            let rows = statement.query_map(params![namespace], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            })?;
            for row in rows {
                let (lab, step, at, given) = row?;
                let history = labs.entry(lab).or_default();
                history.passed.push((step as usize, at as EpochMillis));
                if given {
                    history.given.push(step as usize);
                }
            }
            let mut statement =
                db.prepare("SELECT lab, first_at FROM lab_opened WHERE namespace = ?1")?;
            let rows = statement.query_map(params![namespace], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (lab, at) = row?;
                labs.entry(lab).or_default().opened_at = Some(at as EpochMillis);
            }
            let mut statement = db.prepare(
                "SELECT lab, kind, at FROM lab_moments WHERE namespace = ?1 ORDER BY at",
            )?;
            let rows = statement.query_map(params![namespace], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (lab, kind, at) = row?;
                let history = labs.entry(lab).or_default();
                match kind.as_str() {
                    "hint" => history.hints_at.push(at as EpochMillis),
                    "solution" => history.solution_at = Some(at as EpochMillis),
                    _ => {}
                }
            }
            let mut statement = db.prepare(
                "SELECT lab, hints_opened, solution_revealed FROM lab_reveals WHERE namespace = ?1",
            )?;
            let rows = statement.query_map(params![namespace], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, bool>(2)?))
            })?;
            for row in rows {
                let (lab, hints, solution) = row?;
                let history = labs.entry(lab).or_default();
                history.reveals_untimed = hints as usize > history.hints_at.len()
                    || (solution && history.solution_at.is_none());
            }
            Ok(labs)
        })
        .await
    }

    async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, ProgressError> + Send + 'static,
    ) -> Result<T, ProgressError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let db = db
                .lock()
                .map_err(|_| ProgressError("the database lock was poisoned".into()))?;
            work(&db)
        })
        .await
        .map_err(|e| ProgressError(e.to_string()))?
    }
}

/// Adds a column that a database made by an older grouplab lacks.
fn add_column(
    db: &Connection,
    table: &str,
    column: &str,
    definition: &str,
) -> Result<(), ProgressError> {
    let mut statement = db.prepare(&format!("PRAGMA table_info({table})"))?;
    let mut names = statement.query_map([], |row| row.get::<_, String>(1))?;
    if !names.any(|name| name.is_ok_and(|name| name == column)) {
        db.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column} {definition}"
        ))?;
    }
    Ok(())
}

/// Makes the database readable by its owner only: in a class it keeps each learner's Redis and
/// RabbitMQ password. SQLite gives its `-wal` and `-shm` files the database's mode when it
/// makes them; ones made before are narrowed too.
pub fn keep_private(path: &Path) -> Result<(), ProgressError> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(ProgressError(format!(
                    "cannot make {} private: {err}",
                    file.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn progress_survives_reopening_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/progress.sqlite3");
        {
            let store = ProgressStore::open(&path).expect("open");
            store
                .record_passed("default", "lab", 0, 100, false)
                .await
                .expect("record");
            store
                .record_passed("default", "lab", 2, 300, true)
                .await
                .expect("record");
            // Passing again keeps the first time.
            store
                .record_passed("default", "lab", 0, 999, false)
                .await
                .expect("record");
            store
                .record_opened("default", "lab", 50)
                .await
                .expect("opened");
            store
                .record_reveals("default", "lab", 1, false, 150)
                .await
                .expect("reveal");
            store
                .record_reveals("default", "lab", 2, true, 250)
                .await
                .expect("reveal");
            // Saving the same again notes nothing new.
            store
                .record_reveals("default", "lab", 2, true, 260)
                .await
                .expect("reveal");
            store
                .record_passed("other", "lab", 1, 5, false)
                .await
                .expect("record");
        }
        let store = ProgressStore::open(&path).expect("reopen");
        let progress = store.load("default", "lab").await.expect("load");
        assert_eq!(
            progress,
            StoredProgress {
                passed: vec![(0, 100), (2, 300)],
                hints_opened: 2,
                solution_revealed: true
            }
        );
        assert_eq!(
            store.history("default").await.expect("history").get("lab"),
            Some(&LabHistory {
                opened_at: Some(50),
                passed: vec![(0, 100), (2, 300)],
                hints_at: vec![150, 250],
                solution_at: Some(250),
                reveals_untimed: false,
                given: vec![2],
            })
        );
        store.clear("default", "lab").await.expect("clear");
        assert!(store.history("default").await.expect("history").is_empty());
        assert_eq!(
            store.load("default", "lab").await.expect("load"),
            StoredProgress::default()
        );
        assert_eq!(
            store.load("other", "lab").await.expect("load").passed,
            vec![(1, 5)]
        );
    }

    #[tokio::test]
    async fn a_database_from_before_instructors_passed_steps_is_read_and_extended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress.sqlite3");
        {
            let old = Connection::open(&path).expect("open");
            old.execute_batch(
                "CREATE TABLE step_passed (namespace TEXT NOT NULL, lab TEXT NOT NULL, step INTEGER NOT NULL, passed_at INTEGER NOT NULL, PRIMARY KEY (namespace, lab, step));
                 INSERT INTO step_passed VALUES ('default', 'lab', 0, 100);",
            )
            .expect("an old database");
        }
        let store = ProgressStore::open(&path).expect("an old database opens");
        store
            .record_passed("default", "lab", 1, 200, true)
            .await
            .expect("record");
        let history = store.history("default").await.expect("history");
        let lab = history.get("lab").expect("the lab");
        assert_eq!(lab.passed, vec![(0, 100), (1, 200)]);
        assert_eq!(lab.given, vec![1]);
        drop(store);
        ProgressStore::open(&path).expect("an extended database opens again");
    }

    #[tokio::test]
    async fn the_topics_a_lab_created_are_remembered_across_restarts_until_a_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress.sqlite3");
        {
            let store = ProgressStore::open(&path).expect("open");
            for topic in ["b", "a", "a"] {
                store
                    .record_created_topic("default", "lab", topic)
                    .await
                    .expect("record");
            }
            store
                .record_created_topic("default", "other", "c")
                .await
                .expect("record");
        }
        let store = ProgressStore::open(&path).expect("reopen");
        let created = store.created_topics("default", "lab").await.expect("read");
        assert_eq!(created, ["a", "b"]);
        store
            .forget_created_topics("default", "lab")
            .await
            .expect("forget");
        assert!(
            store
                .created_topics("default", "lab")
                .await
                .expect("read")
                .is_empty()
        );
        assert_eq!(
            store
                .created_topics("default", "other")
                .await
                .expect("read"),
            ["c"]
        );
    }
}
