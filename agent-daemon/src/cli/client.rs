//! Talking to the daemon from the command line (blocking: the client commands need no
//! runtime).
use std::{
    io::{BufReader, ErrorKind},
    os::unix::net::UnixStream,
    path::Path,
};

use crate::api::protocol::{Reply, Request, read_line, write_line};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no paddock daemon answers at {socket} (is `paddock daemon` running? {source})")]
    NoDaemon { socket: String, source: std::io::Error },
    #[error("lost the daemon at {socket}: {source}")]
    Io { socket: String, source: std::io::Error },
    #[error("the daemon closed the connection")]
    Closed,
    #[error("{0}")]
    Daemon(String),
}

pub struct Client {
    socket: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let name = socket.display().to_string();
        let stream = UnixStream::connect(socket).map_err(|source| {
            let source = match source.kind() {
                ErrorKind::NotFound => std::io::Error::new(ErrorKind::NotFound, "no such socket"),
                _ => source,
            };
            ClientError::NoDaemon { socket: name.clone(), source }
        })?;
        let writer = stream
            .try_clone()
            .map_err(|source| ClientError::Io { socket: name.clone(), source })?;
        Ok(Client { socket: name, reader: BufReader::new(stream), writer })
    }

    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        write_line(&mut self.writer, request)
            .map_err(|source| ClientError::Io { socket: self.socket.clone(), source })
    }

    /// The next reply; a daemon-side error becomes `ClientError::Daemon`.
    pub fn receive(&mut self) -> Result<Option<Reply>, ClientError> {
        match read_line(&mut self.reader) {
            Ok(Some(Reply::Error { message })) => Err(ClientError::Daemon(message)),
            Ok(reply) => Ok(reply),
            Err(source) => Err(ClientError::Io { socket: self.socket.clone(), source }),
        }
    }

    pub fn expect_reply(&mut self) -> Result<Reply, ClientError> {
        self.receive()?.ok_or(ClientError::Closed)
    }
}
