//! The learner's progress in a lab: read back when the session starts, Clear progress, Open hint
//! and Reveal solution (hints and the solution reach the page only once opened), and the
//! checkpoints, evaluated step by step.

use grouplab_protocol::{Notice, ProgressView, ServerEvent};
use tracing::warn;

use super::actor::Session;
use grouplab_backends::clock::now_ms;
use grouplab_model::checks::evaluate;

/// What a learner reads when the progress database fails; the error itself goes to the log.
const PROGRESS_STORE_TROUBLE: &str = "grouplab keeps progress in a small database in its data folder (`--data-dir`, `.grouplab` by default), and could not write it. Check that the disk has space and the folder is writable; the details are in grouplab's log.";

impl Session {
    /// Reads back what the learner did in this lab before: passed steps, opened hints, the
    /// revealed solution, and the topics the lab created.
    pub(super) async fn load_progress(&mut self) {
        self.note_opened().await;
        match self
            .deps
            .progress
            .load(&self.namespace, &self.lab.content.id)
            .await
        {
            Ok(stored) => {
                let solution = stored.solution_revealed.then(|| self.solution()).flatten();
                let progress = &mut self.view.progress;
                for (step, at) in stored.passed {
                    if let Some(status) = progress.steps.get_mut(step) {
                        status.passed_at = Some(at);
                    }
                }
                progress.hints = self
                    .lab
                    .hints_html
                    .iter()
                    .take(stored.hints_opened as usize)
                    .cloned()
                    .collect();
                if stored.solution_revealed {
                    progress.solution = solution;
                }
            }
            Err(err) => warn!(%err, "progress could not be loaded"),
        }
        match self
            .deps
            .progress
            .created_topics(&self.namespace, &self.lab.content.id)
            .await
        {
            Ok(created) => {
                self.topics.extend(created.iter().cloned());
                self.created_topics = created.into_iter().collect();
            }
            Err(err) => warn!(%err, "the topics this lab created could not be read"),
        }
    }

    pub(super) async fn clear_progress(&mut self) -> Result<(), Notice> {
        if let Err(err) = self
            .deps
            .progress
            .clear(&self.namespace, &self.lab.content.id)
            .await
        {
            warn!(%err, "progress could not be cleared");
            return Err(Notice::error(
                "Progress could not be cleared",
                PROGRESS_STORE_TROUBLE,
            ));
        }
        // Its clock starts again, as if opened now.
        self.note_opened().await;
        self.activity.cleared += 1;
        self.emit(ServerEvent::Progress(ProgressView::new(
            self.lab.content.steps.len(),
        )));
        self.progress_dirty = true;
        Ok(())
    }

    /// Notes that the lab is open now, unless an earlier opening is kept (for the results'
    /// time on the first step).
    async fn note_opened(&self) {
        if let Err(err) = self
            .deps
            .progress
            .record_opened(&self.namespace, &self.lab.content.id, now_ms())
            .await
        {
            warn!(%err, "the lab's opening could not be noted");
        }
    }

    pub(super) async fn open_hint(&mut self) -> Result<(), Notice> {
        let mut progress = self.view.progress.clone();
        let Some(next) = self.lab.hints_html.get(progress.hints.len()) else {
            return Err(Notice::info(
                "No more hints",
                "Every hint of this lab is open already.",
            ));
        };
        progress.hints.push(next.clone());
        self.save_reveals(&progress).await?;
        self.emit(ServerEvent::Progress(progress));
        Ok(())
    }

    /// The lab's solution as this learner runs it: with the broker's names on a shared cluster.
    fn solution(&self) -> Option<grouplab_protocol::Solution> {
        self.lab.solution.as_ref().map(|solution| {
            crate::lab::names::solution_with_prefix(
                solution,
                &self.lab.content.setup,
                self.deps.cluster.prefix(),
            )
        })
    }

    pub(super) async fn reveal_solution(&mut self) -> Result<(), Notice> {
        let mut progress = self.view.progress.clone();
        progress.solution = self.solution();
        self.save_reveals(&progress).await?;
        self.emit(ServerEvent::Progress(progress));
        Ok(())
    }

    async fn save_reveals(&self, progress: &ProgressView) -> Result<(), Notice> {
        self.deps
            .progress
            .record_reveals(
                &self.namespace,
                &self.lab.content.id,
                progress.hints.len() as u32,
                progress.solution.is_some(),
                now_ms(),
            )
            .await
            .map_err(|err| {
                warn!(%err, "progress could not be saved");
                Notice::error("Your progress could not be saved", PROGRESS_STORE_TROUBLE)
            })
    }

    /// Checks steps in order: a step is checked once every step before it has passed, and stays passed.
    pub(super) fn evaluate_progress(&mut self) {
        let mut progress = self.view.progress.clone();
        let now = now_ms();
        let mut newly_passed = Vec::new();
        let mut blocked = false;
        for (index, checks) in self.lab.checks.iter().enumerate() {
            let Some(status) = progress.steps.get_mut(index) else {
                break;
            };
            if status.passed_at.is_some() {
                continue;
            }
            if blocked {
                status.detail.clear();
                continue;
            }
            self.run.history.now = now;
            let verdicts: Vec<_> = checks
                .iter()
                .map(|c| evaluate(c, &self.view, &self.run.history))
                .collect();
            if verdicts.iter().all(|v| v.passed) {
                status.passed_at = Some(now);
                newly_passed.push(index);
            } else {
                blocked = true;
            }
            status.detail = verdicts
                .iter()
                .map(|v| v.detail.as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
        if progress != self.view.progress {
            for step in newly_passed {
                let store = self.deps.progress.clone();
                let (namespace, lab) = (self.namespace.clone(), self.lab.content.id.clone());
                self.deps.tasks.spawn(async move {
                    if let Err(err) = store
                        .record_passed(&namespace, &lab, step, now, false)
                        .await
                    {
                        warn!(%err, "a passed step could not be saved");
                    }
                });
            }
            self.emit(ServerEvent::Progress(progress));
        }
    }
}
