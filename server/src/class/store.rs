//! A class's learners, kept in SQLite beside their progress so that a restart keeps them.
//!
//! A learner is known by an opaque random cookie, of which only a SHA-256 digest is stored, so
//! that the database does not hold anyone's key; revoking a learner deletes their digests. Each
//! learner keeps a rejoin code (for another device, or after clearing cookies), the port of their
//! own embedded broker, and a secret for their own Redis.

use std::path::Path;
use std::sync::{Arc, Mutex};

use grouplab_protocol::EpochMillis;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use super::codes;
use crate::config::PortRange;

/// One learner of the class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learner {
    /// The learner's namespace: every session, progress row and broker of theirs is keyed by it.
    pub id: String,
    pub name: String,
    pub rejoin_code: String,
    /// Where the learner's own embedded broker listens.
    pub broker_port: u16,
    /// The learner's password for their own Redis.
    pub secret: String,
    pub joined_at: EpochMillis,
}

/// Why a join (or a rejoin) did not let a learner in, in the learner's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error(
        "Type the name the class will know you by (up to 32 letters, digits, spaces, `.`, `-`, `_` or `'`, starting with a letter or digit)."
    )]
    BadName,
    #[error(
        "Someone in this class is already called “{0}”. Add an initial or choose another name; if it is you on another device, use your rejoin code instead."
    )]
    NameTaken(String),
    #[error("The class is full ({0} learners). Ask your instructor.")]
    ClassFull(usize),
    #[error(
        "That code is not this class's code. Check it with your instructor, or open the link they shared."
    )]
    WrongCode,
    #[error(
        "That rejoin code belongs to nobody in this class. Check it (it is on your lab pages), or join again with your name."
    )]
    WrongRejoinCode,
    #[error("{0}")]
    Store(String),
}

impl From<rusqlite::Error> for JoinError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Store(format!("The class's database could not be used: {err}"))
    }
}

/// The class's database.
#[derive(Clone)]
pub struct ClassStore {
    /// A std Mutex is fine: each use is a short transaction on the blocking pool.
    db: Arc<Mutex<Connection>>,
    class: Arc<str>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS classes (
    name TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS learners (
    id TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    name TEXT NOT NULL,
    rejoin_code TEXT NOT NULL UNIQUE,
    broker_port INTEGER NOT NULL,
    secret TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    revoked_at INTEGER,
    UNIQUE (class, name COLLATE NOCASE),
    UNIQUE (class, broker_port)
);
CREATE TABLE IF NOT EXISTS learner_cookies (
    digest TEXT PRIMARY KEY,
    learner TEXT NOT NULL,
    issued_at INTEGER NOT NULL
);
";

const LEARNER_COLUMNS: &str = "id, name, rejoin_code, broker_port, secret, joined_at";

fn learner(row: &rusqlite::Row<'_>) -> rusqlite::Result<Learner> {
    Ok(Learner {
        id: row.get(0)?,
        name: row.get(1)?,
        rejoin_code: row.get(2)?,
        broker_port: row.get(3)?,
        secret: row.get(4)?,
        joined_at: row.get::<_, i64>(5)? as EpochMillis,
    })
}

/// The digest kept of a cookie.
fn digest(cookie: &str) -> String {
    Sha256::digest(cookie.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A display name as it is kept: trimmed, inner spaces collapsed; `None` if it is not one.
pub fn display_name(typed: &str) -> Option<String> {
    let name = typed.split_whitespace().collect::<Vec<_>>().join(" ");
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '\'');
    // A name that starts with `-` would be a formula to a spreadsheet opening the results.
    let first_ok = name.chars().next().is_some_and(char::is_alphanumeric);
    (first_ok && name.chars().count() <= 32 && name.chars().all(allowed)).then_some(name)
}

impl ClassStore {
    /// The classes kept in the database file at `path`, which must exist (for an export).
    pub fn classes_in(path: &Path) -> Result<Vec<String>, JoinError> {
        let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        db.execute_batch(SCHEMA)?;
        let mut statement = db.prepare("SELECT name FROM classes ORDER BY created_at, name")?;
        let names = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    }

    /// Opens (or creates) the class `class` in the database file at `path`.
    pub fn open(path: &Path, class: &str) -> Result<Self, JoinError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| JoinError::Store(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Connection::open(path)?;
        crate::lab::progress::keep_private(path)
            .map_err(|err| JoinError::Store(err.to_string()))?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch("PRAGMA journal_mode=WAL;")?;
        db.execute_batch(SCHEMA)?;
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
            class: Arc::from(class),
        })
    }

    pub fn class(&self) -> &str {
        &self.class
    }

    async fn with_db<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Connection, &str) -> Result<T, JoinError> + Send + 'static,
    ) -> Result<T, JoinError> {
        let db = Arc::clone(&self.db);
        let class = Arc::clone(&self.class);
        tokio::task::spawn_blocking(move || {
            let mut db = db
                .lock()
                .map_err(|_| JoinError::Store("the class's database lock was poisoned".into()))?;
            call(&mut db, &class)
        })
        .await
        .map_err(|e| JoinError::Store(format!("a class database task failed: {e}")))?
    }

    /// The class's join code, made the first time the class is served and kept after.
    pub async fn join_code(&self, now: EpochMillis) -> Result<String, JoinError> {
        self.with_db(move |db, class| {
            let kept: Option<String> = db
                .query_row(
                    "SELECT code FROM classes WHERE name = ?1",
                    params![class],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(code) = kept {
                return Ok(code);
            }
            let code = codes::class_code();
            db.execute(
                "INSERT INTO classes (name, code, created_at) VALUES (?1, ?2, ?3)",
                params![class, code, now as i64],
            )?;
            Ok(code)
        })
        .await
    }

    /// Adds a learner called `typed` (with the first free port of `ports`, at most `max` in the
    /// class) and returns them with the cookie that now identifies them.
    pub async fn join(
        &self,
        typed: &str,
        ports: PortRange,
        max: usize,
        now: EpochMillis,
    ) -> Result<(Learner, String), JoinError> {
        let name = display_name(typed).ok_or(JoinError::BadName)?;
        self.with_db(move |db, class| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM learners WHERE class = ?1 AND name = ?2 COLLATE NOCASE)",
                params![class, name],
                |row| row.get(0),
            )?;
            if taken {
                return Err(JoinError::NameTaken(name));
            }
            let mut used = Vec::new();
            {
                // A learner who was shut out frees their place and their port.
                let mut statement = tx.prepare(
                    "SELECT broker_port FROM learners WHERE class = ?1 AND revoked_at IS NULL",
                )?;
                for port in statement.query_map(params![class], |row| row.get::<_, u16>(0))? {
                    used.push(port?);
                }
            }
            let limit = max.min(ports.len());
            if used.len() >= limit {
                return Err(JoinError::ClassFull(limit));
            }
            let port = (ports.first..=ports.last)
                .find(|port| !used.contains(port))
                .ok_or(JoinError::ClassFull(limit))?;
            let learner = Learner {
                id: codes::learner_id(),
                name,
                rejoin_code: codes::rejoin_code(),
                broker_port: port,
                secret: codes::secret(),
                joined_at: now,
            };
            tx.execute(
                "INSERT INTO learners (id, class, name, rejoin_code, broker_port, secret, joined_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    learner.id,
                    class,
                    learner.name,
                    learner.rejoin_code,
                    learner.broker_port,
                    learner.secret,
                    now as i64
                ],
            )?;
            let cookie = issue_cookie(&tx, &learner.id, now)?;
            tx.commit()?;
            Ok((learner, cookie))
        })
        .await
    }

    /// The learner a rejoin code belongs to, with a new cookie for this device.
    pub async fn rejoin(
        &self,
        code: &str,
        now: EpochMillis,
    ) -> Result<(Learner, String), JoinError> {
        let code = codes::normalise(code);
        self.with_db(move |db, class| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found = tx
                .query_row(
                    &format!(
                        "SELECT {LEARNER_COLUMNS} FROM learners
                         WHERE class = ?1 AND rejoin_code = ?2 AND revoked_at IS NULL"
                    ),
                    params![class, code],
                    learner,
                )
                .optional()?
                .ok_or(JoinError::WrongRejoinCode)?;
            let cookie = issue_cookie(&tx, &found.id, now)?;
            tx.commit()?;
            Ok((found, cookie))
        })
        .await
    }

    /// The learner a cookie identifies, unless it was never issued or was revoked.
    pub async fn learner_by_cookie(&self, cookie: &str) -> Result<Option<Learner>, JoinError> {
        let digest = digest(cookie);
        self.with_db(move |db, class| {
            Ok(db
                .query_row(
                    &format!(
                        "SELECT {} FROM learners JOIN learner_cookies ON learner_cookies.learner = learners.id
                         WHERE learner_cookies.digest = ?1 AND learners.class = ?2 AND learners.revoked_at IS NULL",
                        LEARNER_COLUMNS
                            .split(", ")
                            .map(|column| format!("learners.{column}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    params![digest, class],
                    learner,
                )
                .optional()?)
        })
        .await
    }

    /// Every learner of the class who was not revoked, in the order they joined.
    pub async fn learners(&self) -> Result<Vec<Learner>, JoinError> {
        self.with_db(move |db, class| {
            let mut statement = db.prepare(&format!(
                "SELECT {LEARNER_COLUMNS} FROM learners
                 WHERE class = ?1 AND revoked_at IS NULL ORDER BY joined_at, id"
            ))?;
            let learners = statement
                .query_map(params![class], learner)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(learners)
        })
        .await
    }

    /// Shuts a learner out: their cookies and rejoin code stop working, and their place and port
    /// go to whoever joins next. Their name stays taken, so that nobody is mistaken for them. Returns whether there was such a learner.
    pub async fn revoke(&self, id: &str, now: EpochMillis) -> Result<bool, JoinError> {
        let id = id.to_owned();
        self.with_db(move |db, class| {
            let tx = db.transaction()?;
            // The port is released (made negative and unique), the name stays taken.
            let changed = tx.execute(
                "UPDATE learners SET revoked_at = ?3, broker_port = -rowid
                 WHERE id = ?1 AND class = ?2 AND revoked_at IS NULL",
                params![id, class, now as i64],
            )?;
            if changed > 0 {
                tx.execute(
                    "DELETE FROM learner_cookies WHERE learner = ?1",
                    params![id],
                )?;
            }
            tx.commit()?;
            Ok(changed > 0)
        })
        .await
    }
}

fn issue_cookie(
    tx: &rusqlite::Transaction<'_>,
    learner: &str,
    now: EpochMillis,
) -> Result<String, JoinError> {
    let cookie = codes::cookie();
    tx.execute(
        "INSERT INTO learner_cookies (digest, learner, issued_at) VALUES (?1, ?2, ?3)",
        params![digest(&cookie), learner, now as i64],
    )?;
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::{ClassStore, JoinError, display_name};
    use crate::config::PortRange;

    const PORTS: PortRange = PortRange {
        first: 9100,
        last: 9102,
    };

    fn store(dir: &tempfile::TempDir, class: &str) -> ClassStore {
        ClassStore::open(&dir.path().join("class.sqlite3"), class).expect("the store opens")
    }

    #[test]
    fn names_are_tidied_or_refused() {
        assert_eq!(
            display_name("  Ada   Lovelace "),
            Some("Ada Lovelace".into())
        );
        assert_eq!(
            display_name("Zoë O'Neil-Smith"),
            Some("Zoë O'Neil-Smith".into())
        );
        for bad in [
            "",
            "   ",
            "<script>",
            "a\u{7}b",
            "x;rm -rf",
            &"a".repeat(33),
        ] {
            assert_eq!(display_name(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_learner_joins_comes_back_and_can_be_shut_out() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let class = store(&dir, "kafka-101");
        let code = class.join_code(1).await.expect("a code");
        assert_eq!(class.join_code(2).await.expect("the same code"), code);

        let (ada, cookie) = class.join("Ada", PORTS, 60, 10).await.expect("Ada joins");
        assert_eq!(ada.broker_port, 9100);
        let (bob, bob_cookie) = class.join("Bob", PORTS, 60, 11).await.expect("Bob joins");
        assert_eq!(bob.broker_port, 9101);
        assert_ne!(ada.id, bob.id);
        assert_ne!(ada.rejoin_code, bob.rejoin_code);

        // Names are unique without regard to case.
        assert_eq!(
            class.join(" ada ", PORTS, 60, 12).await,
            Err(JoinError::NameTaken("ada".into()))
        );
        assert_eq!(
            class.learner_by_cookie(&cookie).await.expect("a lookup"),
            Some(ada.clone())
        );
        assert_eq!(
            class.learner_by_cookie("guessed").await.expect("a lookup"),
            None
        );

        // A rejoin gives a second device a cookie of its own; both work.
        let (again, second) = class
            .rejoin(&ada.rejoin_code.to_lowercase().replace('-', " "), 20)
            .await
            .expect("the rejoin code works, however it is typed");
        assert_eq!(again, ada);
        assert_ne!(second, cookie);
        assert_eq!(
            class.rejoin("ZZZZZ-ZZZZZ", 21).await,
            Err(JoinError::WrongRejoinCode)
        );

        // Revoked: no cookie or rejoin code of Ada's works; Bob's still does; her name stays taken.
        assert!(class.revoke(&ada.id, 30).await.expect("a revoke"));
        assert_eq!(
            class.learner_by_cookie(&cookie).await.expect("a lookup"),
            None
        );
        assert_eq!(
            class.learner_by_cookie(&second).await.expect("a lookup"),
            None
        );
        assert_eq!(
            class.rejoin(&ada.rejoin_code, 31).await,
            Err(JoinError::WrongRejoinCode)
        );
        assert_eq!(
            class
                .learner_by_cookie(&bob_cookie)
                .await
                .expect("a lookup"),
            Some(bob)
        );
        assert!(matches!(
            class.join("Ada", PORTS, 60, 32).await,
            Err(JoinError::NameTaken(_))
        ));

        // The port range is the class's size; Ada's place and port were freed.
        let (cy, _) = class.join("Cy", PORTS, 60, 40).await.expect("Cy joins");
        assert_eq!(cy.broker_port, 9100, "Cy takes the port Ada had");
        class
            .join("Di", PORTS, 60, 41)
            .await
            .expect("Di takes the last port");
        assert_eq!(
            class.join("Ed", PORTS, 60, 42).await,
            Err(JoinError::ClassFull(3))
        );
        assert_eq!(class.learners().await.expect("the roster").len(), 3);
    }

    #[tokio::test]
    async fn classes_in_one_database_are_apart_and_last_a_restart() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (ada, cookie) = store(&dir, "monday")
            .join("Ada", PORTS, 60, 1)
            .await
            .expect("Ada joins");
        let tuesday = store(&dir, "tuesday");
        assert_eq!(
            tuesday.learner_by_cookie(&cookie).await.expect("a lookup"),
            None
        );
        tuesday
            .join("Ada", PORTS, 60, 2)
            .await
            .expect("another class's Ada");
        // Opened again, as after a restart.
        let monday = store(&dir, "monday");
        assert_eq!(
            monday.learner_by_cookie(&cookie).await.expect("a lookup"),
            Some(ada)
        );
    }
}
