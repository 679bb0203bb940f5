//! The process tree of one run, from its fork, exec, exit and verdict events: who started
//! whom, what each ran, how each ended, and which were killed.
use std::{collections::HashMap, fmt};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AuditError, AuditStore, InvestigationFilter, Outcome, query::InvestigationRow};
use crate::{
    events::{Event, EventKind},
    identity::InvestigationId,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessTree {
    pub investigation: InvestigationId,
    pub run: i64,
    pub outcome: Outcome,
    /// Every process, depth first: each parent just before its children, siblings in the
    /// order they appeared. Flat (with `depth`), so a deep chain of forks costs no recursion.
    pub processes: Vec<ProcessNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessNode {
    pub pid: u32,
    /// The parent's pid; 0 where unknown.
    pub parent: u32,
    /// 0 for a process whose parent is not in the tree.
    pub depth: usize,
    pub comm: String,
    pub execs: Vec<RunExec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed: Option<Killed>,
    pub children: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunExec {
    pub time: DateTime<Utc>,
    pub path: String,
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Killed {
    /// The reason of the kill verdict.
    pub reason: String,
    /// The verdict named this process; else it died of SIGKILL after a kill verdict.
    pub named: bool,
}

const SIGKILL: i32 = 9;

/// Processes as their events come, indexed by pid; a pid reused after an exit is a new node.
#[derive(Default)]
struct Builder {
    nodes: Vec<(ProcessNode, Option<usize>)>,
    by_pid: HashMap<u32, usize>,
    kill_reason: Option<String>,
}

impl Builder {
    /// The live process `pid`, made (under `parent`, if known) when there is none.
    fn node(&mut self, pid: u32, parent: u32, comm: &str) -> usize {
        if let Some(&i) = self.by_pid.get(&pid)
            && self.nodes[i].0.exit.is_none()
        {
            return i;
        }
        let up = self.by_pid.get(&parent).copied().filter(|_| parent != pid);
        let node = ProcessNode {
            pid,
            parent,
            depth: 0,
            comm: comm.to_owned(),
            execs: Vec::new(),
            exit: None,
            killed: None,
            children: Vec::new(),
        };
        self.nodes.push((node, up));
        self.by_pid.insert(pid, self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    fn add(&mut self, event: &Event) {
        let pid = event.pid;
        match &event.kind {
            EventKind::Fork { child_pid } => {
                let parent = self.node(pid, event.ppid, &event.comm);
                let child = self.node(*child_pid, pid, &event.comm);
                if self.nodes[child].1.is_none() && child != parent {
                    self.nodes[child].1 = Some(parent);
                    self.nodes[child].0.parent = pid;
                }
            }
            EventKind::Exec { path, argv, .. } => {
                let i = self.node(pid, event.ppid, &event.comm);
                let node = &mut self.nodes[i].0;
                node.comm.clone_from(&event.comm);
                node.execs.push(RunExec {
                    time: event.time,
                    path: path.clone(),
                    argv: argv.clone(),
                });
            }
            EventKind::Exit { exit_code, signal } => {
                let i = self.node(pid, event.ppid, &event.comm);
                let node = &mut self.nodes[i].0;
                node.exit = match (exit_code, signal) {
                    (_, Some(signal)) => Some(Exit::Signal(*signal)),
                    (Some(code), None) => Some(Exit::Code(*code)),
                    (None, None) => None,
                };
                if *signal == Some(SIGKILL)
                    && node.killed.is_none()
                    && let Some(reason) = &self.kill_reason
                {
                    node.killed = Some(Killed { reason: reason.clone(), named: false });
                }
            }
            EventKind::Verdict { outcome: Outcome::Killed, reason, .. } => {
                self.kill_reason.get_or_insert_with(|| reason.clone());
                if pid != 0 {
                    let i = self.node(pid, event.ppid, &event.comm);
                    self.nodes[i].0.killed = Some(Killed { reason: reason.clone(), named: true });
                }
            }
            _ => {}
        }
    }

    /// Depth first from each root, without recursion.
    fn finish(self) -> Vec<ProcessNode> {
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        let mut roots = Vec::new();
        for (i, (_, up)) in self.nodes.iter().enumerate() {
            match up {
                Some(up) => children[*up].push(i),
                None => roots.push(i),
            }
        }
        let mut nodes: Vec<Option<ProcessNode>> =
            self.nodes.into_iter().map(|n| Some(n.0)).collect();
        let mut out = Vec::with_capacity(nodes.len());
        // Roots first; then whatever they did not reach (a loop of bad parent links).
        let starts: Vec<usize> = roots.into_iter().chain(0..nodes.len()).collect();
        for start in starts {
            let mut stack = vec![(start, 0)];
            while let Some((i, depth)) = stack.pop() {
                let Some(mut node) = nodes[i].take() else { continue };
                node.depth = depth;
                node.children =
                    children[i].iter().filter_map(|c| nodes[*c].as_ref().map(|n| n.pid)).collect();
                stack.extend(children[i].iter().rev().map(|c| (*c, depth + 1)));
                out.push(node);
            }
        }
        out
    }
}

impl AuditStore {
    /// The process tree of the latest run of `investigation`.
    pub fn tree(&self, investigation: &InvestigationId) -> Result<ProcessTree, AuditError> {
        let filter =
            InvestigationFilter { id: Some(investigation.clone()), limit: 1, ..Default::default() };
        match self.list_investigations(&filter)?.into_iter().next() {
            Some(row) => self.tree_of(row),
            None => Err(AuditError::UnknownInvestigation(investigation.clone())),
        }
    }

    /// The process tree of `investigation`'s run `run`, or of its latest run; a run of
    /// another investigation is an unknown run.
    pub fn investigation_tree(
        &self,
        investigation: &InvestigationId,
        run: Option<i64>,
    ) -> Result<ProcessTree, AuditError> {
        let Some(run) = run else { return self.tree(investigation) };
        let row = self.run(run)?;
        if row.id != *investigation {
            return Err(AuditError::UnknownRun(run));
        }
        self.tree_of(row)
    }

    fn tree_of(&self, row: InvestigationRow) -> Result<ProcessTree, AuditError> {
        let events = self.process_events(row.run)?;
        Ok(ProcessTree::build(row, events.iter().map(|(_, event)| event)))
    }
}

impl ProcessTree {
    /// The tree of run `row` from its process events (fork, exec, exit, verdict; others
    /// are ignored), in the order they were stored.
    pub fn build<'a>(row: InvestigationRow, events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut builder = Builder::default();
        for event in events {
            builder.add(event);
        }
        ProcessTree {
            investigation: row.id,
            run: row.run,
            outcome: row.outcome,
            processes: builder.finish(),
        }
    }
}

/// Arguments longer than this are cut, with `...`.
const ARGS_WIDTH: usize = 80;
/// Deeper processes are indented as this deep, and their depth written out.
const MAX_INDENT: usize = 40;

impl fmt::Display for ProcessTree {
    /// One line per process, indented under its parent:
    /// `4244 curl [exec /usr/bin/curl -s http://x] KILLED (verdict: exec of ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.processes.is_empty() {
            return writeln!(f, "(no process events in run {})", self.run);
        }
        for p in &self.processes {
            if p.depth > MAX_INDENT {
                write!(f, "{:indent$}(depth {}) ", "", p.depth, indent = 2 * MAX_INDENT)?;
            } else {
                write!(f, "{:indent$}", "", indent = 2 * p.depth)?;
            }
            write!(f, "{} {}", p.pid, p.comm)?;
            for exec in &p.execs {
                write!(f, " [exec {}", exec.path)?;
                let mut args = String::new();
                for arg in exec.argv.iter().skip(1) {
                    args.push(' ');
                    if arg.is_empty() || arg.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        args.push_str(&format!("{arg:?}"));
                    } else {
                        args.push_str(arg);
                    }
                }
                match args.char_indices().nth(ARGS_WIDTH) {
                    Some((cut, _)) => write!(f, "{}...]", &args[..cut])?,
                    None => write!(f, "{args}]")?,
                }
            }
            match (&p.killed, p.exit) {
                (Some(k), _) if k.named => write!(f, " KILLED (verdict: {})", k.reason)?,
                (Some(k), _) => write!(f, " KILLED (signal 9 after verdict: {})", k.reason)?,
                (None, Some(Exit::Code(code))) => write!(f, " exit {code}")?,
                (None, Some(Exit::Signal(signal))) => write!(f, " signal {signal}")?,
                (None, None) if self.outcome == Outcome::Running => write!(f, " running")?,
                (None, None) => {}
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
