//! PostgreSQL's errors sorted into the bounded reasons of
//! `paddock_export_failures_total{reason}`, with a message that says what to fix.
use tokio_postgres::error::SqlState;

use super::super::{ExportError, Reason};

/// `e`, met while doing `stage`, as a reason and a message (the server's own message, its
/// detail and hint, or the client's cause).
pub fn classify(e: &tokio_postgres::Error, stage: Reason) -> ExportError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let reason = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Reason::Auth
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            Reason::Permission
        } else if *code == SqlState::UNDEFINED_TABLE
            || *code == SqlState::INVALID_SCHEMA_NAME
            || *code == SqlState::UNDEFINED_COLUMN
            || *code == SqlState::UNDEFINED_FUNCTION
        {
            Reason::Schema
        } else if *code == SqlState::INVALID_CATALOG_NAME
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::TOO_MANY_CONNECTIONS
        {
            Reason::Connect
        } else {
            stage
        };
        let mut message = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), code.code());
        if let Some(detail) = db.detail() {
            message += &format!("; {detail}");
        }
        if let Some(hint) = db.hint() {
            message += &format!("; hint: {hint}");
        }
        match reason {
            Reason::Auth => message += " (check the role in url and its password in password_file)",
            Reason::Permission => {
                message += " (the role needs to own schema paddock, or the privileges \
                            docs/audit-store.md lists)"
            }
            _ => {}
        }
        return ExportError::new(reason, message);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text += &format!(": {said}");
        }
        source = cause.source();
    }
    if text.contains("password missing") {
        return ExportError::new(
            Reason::Auth,
            "the server asks for a password and no password_file is set".into(),
        );
    }
    let reason = if e.is_closed() { Reason::Connect } else { stage };
    let text = if e.is_closed() { format!("the connection closed: {text}") } else { text };
    ExportError::new(reason, text)
}
