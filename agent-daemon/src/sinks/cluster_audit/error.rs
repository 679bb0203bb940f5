//! What can go wrong reading the cluster's audit store. Every message starts with where the
//! source was given (`--source postgres://...`, or the `[audit] source` of a configuration
//! file), so that the user knows which setting to fix.
use std::path::PathBuf;

use crate::identity::InvestigationId;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{origin}: {problem}")]
    BadUrl { origin: String, problem: String },
    #[error(
        "{origin}: the URL holds a password; give it in a file (--source-password-file, or \
         [audit] source_password_file) or in $PGPASSWORD instead: a URL shows in `ps`, shell \
         history and logs"
    )]
    PasswordInUrl { origin: String },
    #[error("{origin}: password file {path}: {problem}")]
    PasswordFile { origin: String, path: PathBuf, problem: String },
    #[error("{origin}: CA file {path}: {problem}")]
    CaFile { origin: String, path: PathBuf, problem: String },
    #[error("{origin}: cannot start the client: {problem}")]
    Runtime { origin: String, problem: String },
    #[error("{origin}: cannot connect: {problem}")]
    Connect { origin: String, problem: String },
    #[error("{origin}: no paddock schema in database {database}: has an [[export]] written to it?")]
    NoSchema { origin: String, database: String },
    #[error("{origin}: query failed: {problem}")]
    Query { origin: String, problem: String },
    #[error("{origin}: no investigation {id} in the cluster's audit store")]
    UnknownInvestigation { origin: String, id: InvestigationId },
    #[error("{origin}: investigation {id} has no run {run} in the cluster's audit store")]
    UnknownRun { origin: String, id: InvestigationId, run: String },
    #[error(
        "{origin}: run {run} of {id} is stored by more than one node or store file: name one \
         of {}", candidates.join(", ")
    )]
    AmbiguousRun { origin: String, id: InvestigationId, run: String, candidates: Vec<String> },
    #[error(
        "parameter run: {given:?} must be RUN, NODE/RUN or NODE/STORE_ID/RUN (as `paddock audit \
         list --source ...` shows them)"
    )]
    BadRun { given: String },
    #[error(
        "parameter cursor: {given:?} is not a cursor of this source: pass back the `next` value as it is"
    )]
    BadCursor { given: String },
    #[error("{origin}: run {run}: column {column} holds {value:?}: {problem}")]
    BadRow { origin: String, run: String, column: &'static str, value: String, problem: String },
    #[error("{origin}: event {node}/{seq} has a body that is not a valid event: {problem}")]
    BadBody { origin: String, node: String, seq: i64, problem: String },
}
