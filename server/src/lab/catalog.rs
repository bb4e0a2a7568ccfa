//! Lab content: reading the `labs/` folder.
//!
//! Each lab is a folder holding `lab.toml` and the code files it names (the format is described in
//! `labs/README.md`). Labs are read at start-up, and a lab is read again when its files change
//! ([`crate::watch`]). A lab that cannot be read is listed with what is wrong, so a course author
//! sees the problem in the page; the other labs still work. An edit that breaks a lab that was
//! read before keeps the last good version serving, with the problem beside it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use grouplab_protocol::{
    BOOTSTRAP_PLACEHOLDER, Backend, CodeBlock, ConsumerSettings, ConsumerSnippet, LabContent,
    LabSetup, LabSummary, Solution, StepContent, validate_name, validate_partitions,
};
use serde::Deserialize;

use grouplab_model::checks::Check;

/// A lab ready to serve: its page content and the checks of each step.
#[derive(Debug)]
pub struct Lab {
    /// What every page of the lab gets.
    pub content: LabContent,
    /// What a learner gets only by opening it, one by one (see `ProgressView`).
    pub hints_html: Vec<String>,
    pub solution: Option<Solution>,
    /// The checks of each step, in step order.
    pub checks: Vec<Vec<Check>>,
    pub summary: String,
}

impl Lab {
    /// Whether two readings of a lab serve the same thing.
    fn same_as(&self, other: &Lab) -> bool {
        self.content == other.content
            && self.hints_html == other.hints_html
            && self.solution == other.solution
            && self.checks == other.checks
            && self.summary == other.summary
    }
}

/// Every lab found in the labs folder, in folder-name order.
#[derive(Debug, Default)]
pub struct LabCatalog {
    dir: PathBuf,
    /// A std RwLock is fine: held for a lookup or a swap, never across an await.
    entries: RwLock<Vec<Entry>>,
}

#[derive(Debug)]
enum Entry {
    /// A lab that can be served; `problem` is set when a later edit could not be read.
    Ready {
        lab: Arc<Lab>,
        problem: Option<String>,
    },
    Broken {
        id: String,
        problem: String,
    },
}

impl Entry {
    fn id(&self) -> &str {
        match self {
            Entry::Ready { lab, .. } => &lab.content.id,
            Entry::Broken { id, .. } => id,
        }
    }
}

/// What reading a lab again gave.
#[derive(Debug)]
pub enum Reloaded {
    /// The files were written, but the lab reads the same as before (a save without changes).
    Unchanged,
    /// A new version to serve.
    Changed(Arc<Lab>),
    /// The edit cannot be read: the problem, with its line when the file says; the last good
    /// version, if any, keeps serving.
    Broken { problem: String },
}

/// Why a lab could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct LabError {
    pub path: PathBuf,
    pub message: String,
}

impl LabCatalog {
    /// Reads every lab folder below `dir`. Only a missing or unreadable `dir` is an error.
    pub fn load(dir: &Path) -> Result<Self, LabError> {
        let read = std::fs::read_dir(dir).map_err(|e| LabError {
            path: dir.to_owned(),
            message: format!("the labs folder cannot be read ({e}); start grouplab from the project folder or pass --labs-dir"),
        })?;
        let mut folders: Vec<PathBuf> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("lab.toml").is_file())
            .collect();
        folders.sort();
        // Reading a lab is mostly highlighting its code, which is CPU-bound: one thread per core,
        // each taking every n-th lab, then the labs back in their folders' order.
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, folders.len().max(1));
        let folders = &folders;
        let mut read: Vec<(usize, Entry)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|first| {
                    scope.spawn(move || {
                        (first..folders.len())
                            .step_by(threads)
                            .map(|i| (i, read_entry(&folders[i])))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p))
                })
                .collect()
        });
        read.sort_by_key(|(i, _)| *i);
        let entries = read.into_iter().map(|(_, entry)| entry).collect();
        Ok(Self {
            dir: dir.to_owned(),
            entries: RwLock::new(entries),
        })
    }

    /// The folder the labs are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the lab in folder `id` again, after its files changed. `None` when the folder holds
    /// no `lab.toml` and never did.
    pub fn reload(&self, id: &str) -> Option<Reloaded> {
        let folder = self.dir.join(id);
        let known = self.read().iter().any(|e| e.id() == id);
        if !folder.join("lab.toml").is_file() && !known {
            return None;
        }
        let loaded = if folder.join("lab.toml").is_file() {
            load_lab(id, &folder).map_err(|e| e.to_string())
        } else {
            Err(format!(
                "{}: lab.toml is gone; the last version read keeps serving until grouplab restarts",
                folder.join("lab.toml").display()
            ))
        };
        let mut entries = match self.entries.write() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        };
        let at = entries.iter().position(|e| e.id() == id);
        let (entry, outcome) = match (loaded, at.map(|i| &entries[i])) {
            (
                Ok(lab),
                Some(Entry::Ready {
                    lab: old,
                    problem: None,
                }),
            ) if lab.same_as(old) => return Some(Reloaded::Unchanged),
            (Ok(lab), _) => {
                let lab = Arc::new(lab);
                (
                    Entry::Ready {
                        lab: Arc::clone(&lab),
                        problem: None,
                    },
                    Reloaded::Changed(lab),
                )
            }
            (Err(problem), Some(Entry::Ready { lab, .. })) => (
                Entry::Ready {
                    lab: Arc::clone(lab),
                    problem: Some(problem.clone()),
                },
                Reloaded::Broken { problem },
            ),
            (Err(problem), _) => (
                Entry::Broken {
                    id: id.to_owned(),
                    problem: problem.clone(),
                },
                Reloaded::Broken { problem },
            ),
        };
        match at {
            Some(index) => entries[index] = entry,
            None => {
                let index = entries.partition_point(|e| e.id() < id);
                entries.insert(index, entry);
            }
        }
        Some(outcome)
    }

    /// What is wrong with the latest edit of a lab that still serves its last good version.
    pub fn problem(&self, id: &str) -> Option<String> {
        self.read().iter().find_map(|entry| match entry {
            Entry::Ready { lab, problem } if lab.content.id == id => problem.clone(),
            _ => None,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        match self.entries.read() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn summaries(&self) -> Vec<LabSummary> {
        self.read()
            .iter()
            .map(|entry| match entry {
                Entry::Ready { lab, .. } => LabSummary {
                    id: lab.content.id.clone(),
                    title: lab.content.title.clone(),
                    difficulty: lab.content.difficulty.clone(),
                    minutes: lab.content.minutes,
                    summary: lab.summary.clone(),
                    problem: None,
                    steps: lab.content.steps.len(),
                    passed: 0,
                },
                Entry::Broken { id, problem } => LabSummary {
                    id: id.clone(),
                    title: id.clone(),
                    difficulty: String::new(),
                    minutes: 0,
                    summary: String::new(),
                    problem: Some(problem.clone()),
                    steps: 0,
                    passed: 0,
                },
            })
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Lab>> {
        self.read().iter().find_map(|entry| match entry {
            Entry::Ready { lab, .. } if lab.content.id == id => Some(Arc::clone(lab)),
            _ => None,
        })
    }

    /// The problems of labs that could not be read, as `(id, problem)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.read()
            .iter()
            .filter_map(|entry| match entry {
                Entry::Broken { id, problem } => Some((id.clone(), problem.clone())),
                Entry::Ready { .. } => None,
            })
            .collect()
    }
}

/// `lab.toml`, as written by a course author.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    title: String,
    difficulty: String,
    minutes: u32,
    summary: String,
    objectives: Vec<String>,
    #[serde(default)]
    intro: String,
    setup: SetupFile,
    starter: Option<CodeFile>,
    #[serde(default)]
    consumers: Vec<ConsumerFile>,
    #[serde(default)]
    hints: Vec<String>,
    solution: Option<SolutionFile>,
    steps: Vec<StepFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupFile {
    #[serde(default)]
    broker: Backend,
    topic: String,
    /// A Redis stream has no partitions: a Redis lab leaves this out.
    #[serde(default = "one_partition")]
    partitions: i32,
    group: String,
    #[serde(default)]
    other_groups: Vec<String>,
    #[serde(default)]
    other_topics: Vec<String>,
    /// RabbitMQ: one of `other_topics`, where the lab's queue dead-letters rejected messages.
    #[serde(default)]
    dead_letter_queue: Option<String>,
    /// Shows the latest crash on each broker side by side.
    #[serde(default)]
    compare_crashes: bool,
    #[serde(default)]
    consumer: ConsumerSettings,
}

fn one_partition() -> i32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeFile {
    file: String,
    language: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumerFile {
    label: String,
    file: String,
    language: String,
    install: String,
    run: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SolutionFile {
    file: String,
    language: String,
    #[serde(default)]
    notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    title: String,
    body: String,
    checks: Vec<Check>,
}

/// One lab folder read: the lab, or why it is listed as broken.
fn read_entry(folder: &Path) -> Entry {
    let id = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match load_lab(&id, folder) {
        Ok(lab) => Entry::Ready {
            lab: Arc::new(lab),
            problem: None,
        },
        Err(err) => {
            tracing::warn!(%err, "a lab could not be read");
            Entry::Broken {
                id,
                problem: err.to_string(),
            }
        }
    }
}

fn load_lab(id: &str, folder: &Path) -> Result<Lab, LabError> {
    let path = folder.join("lab.toml");
    let fail = |message: String| LabError {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
    let file: LabFile = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;

    validate_name("topic", &file.setup.topic).map_err(&fail)?;
    validate_name("group", &file.setup.group).map_err(&fail)?;
    for topic in &file.setup.other_topics {
        validate_name("topic", topic).map_err(&fail)?;
    }
    for group in &file.setup.other_groups {
        validate_name("group", group).map_err(&fail)?;
    }
    if let Some(problem) = file.setup.consumer.problem() {
        return Err(fail(format!("[setup.consumer]: {problem}")));
    }
    validate_partitions(file.setup.partitions).map_err(&fail)?;
    if file.setup.broker != Backend::Kafka && file.setup.partitions != 1 {
        return Err(fail(format!(
            "{} has no partitions: leave `partitions` out of [setup]",
            file.setup.broker.label()
        )));
    }
    if let Some(queue) = &file.setup.dead_letter_queue {
        if file.setup.broker != Backend::RabbitMq {
            return Err(fail(
                "`dead_letter_queue` is for RabbitMQ labs; on other brokers, a consumer's dead-letter topic is a setting of [setup.consumer]".into(),
            ));
        }
        if !file.setup.other_topics.contains(queue) {
            return Err(fail(format!(
                "the dead-letter queue `{queue}` must also be listed in `other_topics`, so that it is created and reset with the lab"
            )));
        }
    }
    if file.steps.is_empty() {
        return Err(fail("a lab needs at least one [[steps]]".into()));
    }
    for (n, step) in file.steps.iter().enumerate() {
        if step.checks.is_empty() {
            return Err(fail(format!(
                "step {} (\"{}\") has no checks: add at least one [[steps.checks]]",
                n + 1,
                step.title
            )));
        }
    }

    let code = |file_name: &str, language: &str| -> Result<CodeBlock, LabError> {
        if file_name.contains('/') || file_name.contains('\\') || file_name.starts_with('.') {
            return Err(fail(format!(
                "`{file_name}` must be a file name in the lab's folder, not a path"
            )));
        }
        let code = std::fs::read_to_string(folder.join(file_name))
            .map_err(|e| fail(format!("cannot read `{file_name}`: {e}")))?;
        Ok(CodeBlock {
            language: language.to_owned(),
            file_name: file_name.to_owned(),
            html: crate::lab::highlight::to_html(&code, file_name, language).unwrap_or_default(),
            code,
        })
    };
    let starter = file
        .starter
        .as_ref()
        .map(|s| code(&s.file, &s.language))
        .transpose()?;
    let solution = file
        .solution
        .as_ref()
        .map(|s| code(&s.file, &s.language))
        .transpose()?;
    let consumers = file
        .consumers
        .iter()
        .map(|c| {
            if !c.run.contains(BOOTSTRAP_PLACEHOLDER) {
                return Err(fail(format!(
                    "the run line of consumer \"{}\" must contain {BOOTSTRAP_PLACEHOLDER}, where the page puts the broker's address",
                    c.label
                )));
            }
            Ok(ConsumerSnippet {
                label: c.label.clone(),
                install: c.install.clone(),
                run: c.run.clone(),
                code: code(&c.file, &c.language)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let checks = file.steps.iter().map(|s| s.checks.clone()).collect();
    let steps = file
        .steps
        .iter()
        .map(|step| StepContent {
            title: step.title.clone(),
            body_html: markdown(&step.body),
            checkpoint: step
                .checks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();

    Ok(Lab {
        content: LabContent {
            id: id.to_owned(),
            title: file.title,
            difficulty: file.difficulty,
            minutes: file.minutes,
            objectives: file.objectives,
            intro_html: markdown(&file.intro),
            steps,
            starter,
            consumers,
            hint_count: file.hints.len() as u32,
            has_solution: solution.is_some(),
            setup: LabSetup {
                broker: file.setup.broker,
                topic: file.setup.topic,
                partitions: file.setup.partitions,
                group: file.setup.group,
                other_groups: file.setup.other_groups,
                other_topics: file.setup.other_topics,
                dead_letter_queue: file.setup.dead_letter_queue,
                compare_crashes: file.setup.compare_crashes,
                consumer: file.setup.consumer,
            },
        },
        checks,
        hints_html: file.hints.iter().map(|h| markdown(h)).collect(),
        solution: solution.map(|code| Solution {
            code,
            notes_html: file
                .solution
                .as_ref()
                .map(|s| markdown(&s.notes))
                .unwrap_or_default(),
        }),
        summary: file.summary,
    })
}

/// Renders a lab's Markdown to HTML. Lab files are written by course authors and trusted like code.
fn markdown(text: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(text, pulldown_cmark::Options::ENABLE_TABLES);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs")
    }

    #[test]
    fn every_lab_in_the_repository_loads_and_its_checks_parse() {
        let catalog = LabCatalog::load(&labs_dir()).expect("the labs folder reads");
        assert_eq!(catalog.problems(), Vec::<(String, String)>::new());
        let summaries = catalog.summaries();
        assert!(!summaries.is_empty(), "no labs found");
        for summary in summaries {
            let lab = catalog.get(&summary.id).expect("a listed lab is served");
            assert_eq!(lab.checks.len(), lab.content.steps.len());
            assert!(lab.checks.iter().all(|c| !c.is_empty()));
            assert!(!lab.hints_html.is_empty(), "{} has no hints", summary.id);
            assert!(lab.solution.is_some(), "{} has no solution", summary.id);
        }
    }

    #[test]
    fn labs_are_listed_in_their_folders_order_though_read_in_parallel() {
        let catalog = LabCatalog::load(&labs_dir()).expect("the labs folder reads");
        let listed: Vec<String> = catalog.summaries().into_iter().map(|s| s.id).collect();
        let mut folders: Vec<String> = std::fs::read_dir(labs_dir())
            .expect("the labs folder reads")
            .filter_map(Result::ok)
            .filter(|e| e.path().join("lab.toml").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        assert!(folders.len() > 2, "too few labs to tell an order");
        assert_eq!(listed, folders);
    }

    fn write_lab(dir: &Path, id: &str, toml: &str) {
        let folder = dir.join(id);
        std::fs::create_dir_all(&folder).expect("create lab folder");
        std::fs::write(folder.join("lab.toml"), toml).expect("write lab.toml");
    }

    const GOOD: &str = r#"
title = "T"
difficulty = "easy"
minutes = 5
summary = "S"
objectives = ["O"]
hints = ["first", "second *hint*"]
[setup]
topic = "t"
partitions = 2
group = "g"
[[steps]]
title = "Create"
body = "Create `t`."
[[steps.checks]]
kind = "topic_exists"
topic = "t"
partitions = 2
"#;

    #[test]
    fn an_edit_reloads_a_lab_and_a_broken_edit_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_lab(dir.path(), "01-good", GOOD);
        let catalog = LabCatalog::load(dir.path()).expect("load");
        // Saved without a change (or merely read): nothing to reload.
        assert!(matches!(
            catalog.reload("01-good"),
            Some(Reloaded::Unchanged)
        ));

        write_lab(
            dir.path(),
            "01-good",
            &GOOD.replace("title = \"T\"", "title = \"Better\""),
        );
        match catalog.reload("01-good") {
            Some(Reloaded::Changed(lab)) => assert_eq!(lab.content.title, "Better"),
            other => panic!("expected a new version, got {other:?}"),
        }
        assert_eq!(
            catalog.get("01-good").map(|l| l.content.title.clone()),
            Some("Better".into())
        );

        // A typo on line 3: the problem names the line, and "Better" keeps serving.
        write_lab(
            dir.path(),
            "01-good",
            &GOOD.replace("minutes = 5", "minutes = five"),
        );
        match catalog.reload("01-good") {
            Some(Reloaded::Broken { problem }) => {
                assert!(problem.contains("line 4"), "{problem}");
            }
            other => panic!("expected a broken edit, got {other:?}"),
        }
        assert_eq!(
            catalog.get("01-good").map(|l| l.content.title.clone()),
            Some("Better".into())
        );
        assert!(catalog.problem("01-good").is_some());
        assert!(
            catalog.problems().is_empty(),
            "a lab that serves is not listed as broken"
        );

        // A new folder appears in the list, in order; an unknown empty folder is ignored.
        write_lab(dir.path(), "00-first", GOOD);
        assert!(matches!(
            catalog.reload("00-first"),
            Some(Reloaded::Changed(_))
        ));
        let ids: Vec<String> = catalog.summaries().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["00-first", "01-good"]);
        std::fs::create_dir_all(dir.path().join("99-empty")).expect("mkdir");
        assert!(catalog.reload("99-empty").is_none());
    }

    #[track_caller]
    fn check_broken(toml: &str, expected: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        write_lab(dir.path(), "01-good", GOOD);
        write_lab(dir.path(), "02-bad", toml);
        let catalog = LabCatalog::load(dir.path()).expect("load");
        assert!(
            catalog.get("01-good").is_some(),
            "a broken lab must not hide the good ones"
        );
        assert!(catalog.get("02-bad").is_none());
        let problems = catalog.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].1.contains(expected),
            "{:?} lacks {expected:?}",
            problems[0].1
        );
    }

    #[test]
    fn broken_labs_are_listed_with_their_problem() {
        check_broken("title = ", "lab.toml");
        check_broken(
            &GOOD.replace("topic_exists", "topic_is_there"),
            "unknown variant `topic_is_there`",
        );
        check_broken(
            &GOOD.replace("partitions = 2\ngroup", "partitions = 0\ngroup"),
            "between 1 and 64",
        );
        check_broken(
            &GOOD.replace(
                "topic = \"t\"\npartitions = 2\ngroup",
                "topic = \"a b\"\npartitions = 2\ngroup",
            ),
            "contains ` `",
        );
        check_broken(
            &format!("{GOOD}[starter]\nfile = \"missing.py\"\nlanguage = \"python\"\n"),
            "cannot read `missing.py`",
        );
        check_broken(
            &format!("{GOOD}[starter]\nfile = \"../../etc/passwd\"\nlanguage = \"python\"\n"),
            "not a path",
        );
        check_broken(
            &GOOD.replace(
                "[[steps.checks]]\nkind = \"topic_exists\"\ntopic = \"t\"\npartitions = 2\n",
                "checks = []\n",
            ),
            "has no checks",
        );
        // A RabbitMQ queue has no partitions, and a dead-letter queue is a RabbitMQ lab's own queue.
        check_broken(
            &GOOD.replace("[setup]\n", "[setup]\nbroker = \"rabbitmq\"\n"),
            "RabbitMQ has no partitions",
        );
        let rabbit = GOOD.replace(
            "[setup]\ntopic = \"t\"\npartitions = 2\n",
            "[setup]\nbroker = \"rabbitmq\"\ntopic = \"t\"\n",
        );
        check_broken(
            &rabbit.replace(
                "group = \"g\"\n",
                "group = \"g\"\ndead_letter_queue = \"t.dead\"\n",
            ),
            "must also be listed in `other_topics`",
        );
        check_broken(
            &GOOD.replace(
                "group = \"g\"\n",
                "group = \"g\"\nother_topics = [\"t.dead\"]\ndead_letter_queue = \"t.dead\"\n",
            ),
            "for RabbitMQ labs",
        );
    }

    #[test]
    fn markdown_is_rendered_once_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_lab(dir.path(), "01-good", GOOD);
        let catalog = LabCatalog::load(dir.path()).expect("load");
        let lab = catalog.get("01-good").expect("loads");
        assert_eq!(
            lab.content.steps[0].body_html,
            "<p>Create <code>t</code>.</p>\n"
        );
        assert_eq!(lab.hints_html[1], "<p>second <em>hint</em></p>\n");
        assert_eq!(
            lab.content.steps[0].checkpoint,
            "topic `t` exists with 2 partitions"
        );
    }

    #[test]
    fn a_missing_labs_folder_says_what_to_do() {
        let err = LabCatalog::load(Path::new("/no/such/folder")).expect_err("must fail");
        assert!(err.to_string().contains("--labs-dir"), "{err}");
    }
}
